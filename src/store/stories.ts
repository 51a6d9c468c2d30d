import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Story, StorySource } from '../model.ts';

/**
 * Owns story records ({st:<id>}) with their sources, each feed's seen-item index ({f:<id>}), the cross-feed
 * link index and near-duplicate buckets, and the per-topic story log used by digests.
 */
export const storyKey = (prefix: string, id: string) => `${prefix}:{st:${id}}:story`;
const sourcesKey = (prefix: string, id: string) => `${prefix}:{st:${id}}:sources`;
const sha = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 32);
/** One feed's index of what it already carried: guid, canonical link and content hash, each to a story id. */
const seenKey = (prefix: string, feedId: string, kind: 'guid' | 'link' | 'content', value: string) =>
  `${prefix}:{f:${feedId}}:seen:${kind}:${sha(value)}`;
/** Across feeds: the same canonical article URL is the same story whichever feed carried it. */
const linkKey = (prefix: string, canonical: string) => `${prefix}:links:${sha(canonical)}`;
const bucketKey = (prefix: string, band: string) => `${prefix}:neardup:${band}`;
export const topicLogKey = (prefix: string, topicId: string) => `${prefix}:{t:${topicId}}:log`;

/** Writes the whole record and its first source at once, only when absent: a half-written story cannot exist. */
const CREATE_STORY = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return 1`;

const SEEN_TTL_SECONDS = 60 * 60 * 24 * 30;
/** Near-duplicates are looked for among stories of the last three days: the same event, not the same topic. */
const NEAR_DUP_TTL_SECONDS = 60 * 60 * 24 * 3;
/** Digests look back at most this far; older log entries are trimmed. */
export const TOPIC_LOG_RETENTION_MS = 8 * 24 * 60 * 60 * 1000;

function toStory(h: Record<string, string>, sources?: Record<string, string>): Story | null {
  if (!h.id) return null;
  const srcs: StorySource[] = Object.entries(sources ?? {}).map(([feedId, j]) => ({ feedId, url: (JSON.parse(j) as { url: string }).url }));
  return {
    id: h.id,
    feedId: h.feedId ?? '',
    guid: h.guid || null,
    url: h.url ?? '',
    title: h.title ?? '',
    summary: h.summary ?? '',
    categories: h.categories ? (JSON.parse(h.categories) as string[]) : [],
    publishedAt: Number(h.publishedAt),
    firstSeenAt: Number(h.firstSeenAt),
    language: h.language || null,
    author: h.author || null,
    image: h.image || null,
    sources: srcs.length > 0 ? srcs : [{ feedId: h.feedId ?? '', url: h.url ?? '' }],
    updatedAt: h.updatedAt ? Number(h.updatedAt) : null,
  };
}

export interface IngestCandidate {
  story: Story;
  canonicalUrl: string | null;
  contentHash: string;
  /** MinHash signature (encoded) and its LSH band buckets. */
  signature: string;
  bands: string[];
}

export type IngestOutcome =
  | { outcome: 'created'; id: string }
  /** Same item as before (guid, link or content seen in this feed). */
  | { outcome: 'duplicate'; id: string }
  /** Same guid or link, new title or summary: the story was updated in place. */
  | { outcome: 'updated'; id: string }
  /** Another feed's story of the same event: this feed was added to its sources. */
  | { outcome: 'merged'; id: string; similarity: number };

export interface IngestOptions {
  threshold: number;
  /** Similarity of two encoded signatures (MinHash estimate). */
  similarity: (a: string, b: string) => number;
  now: number;
}

type Cmd = [string, ...(string | number)[]];

export function createStoryStore(redis: Redis, prefix: string) {
  /** Runs commands in one round trip; returns each reply (errors thrown). */
  const batch = async (cmds: Cmd[]): Promise<unknown[]> => {
    if (cmds.length === 0) return [];
    const res = (await redis.pipeline(cmds).exec()) ?? [];
    return res.map(([err, v]) => {
      if (err) throw err;
      return v;
    });
  };

  const store = {
    /**
     * Decides, for a whole fetched feed at once (a handful of round trips, not a handful per item), what each
     * normalized item is: a new story; one this feed already carried (updated in place when the publisher
     * changed its title or summary); or another feed's story of the same event (same canonical link, else a
     * near-duplicate of title and summary) to which this feed is added as a source.
     */
    async ingestBatch(cands: readonly IngestCandidate[], opts: IngestOptions): Promise<IngestOutcome[]> {
      const out: (IngestOutcome | null)[] = cands.map(() => null);
      const keysOf = cands.map((c) => ({
        guid: c.story.guid ? seenKey(prefix, c.story.feedId, 'guid', c.story.guid) : null,
        link: c.canonicalUrl ? seenKey(prefix, c.story.feedId, 'link', c.canonicalUrl) : null,
        content: seenKey(prefix, c.story.feedId, 'content', c.contentHash),
      }));
      const present = keysOf.map((k) => [k.guid, k.link, k.content].filter((x): x is string => x !== null));
      const owners = (await batch(keysOf.map((k) => ['mget', k.guid ?? k.content, k.link ?? k.content, k.content]))) as (string | null)[][];

      // Known to this feed: same guid (else same link) is the same item, perhaps edited; same content is a repeat.
      const identity = owners.map((o, i) => (keysOf[i]!.guid ? o[0] : null) ?? (keysOf[i]!.link ? o[1] : null) ?? null);
      // Only the feed that created a story edits it; a feed merged in as a source does not rewrite its text.
      const owned = (await batch(identity.map((id): Cmd => (id ? ['hmget', storyKey(prefix, id), 'contentHash', 'feedId'] : ['echo', ''])))) as (string | null)[][];
      const hashes = owned.map((h, i) => (Array.isArray(h) && h[1] === cands[i]!.story.feedId ? h[0] : null));
      const writes: Cmd[] = [];
      const inBatch = new Map<string, string>();
      cands.forEach((c, i) => {
        const id = identity[i];
        const known = id ?? owners[i]![2] ?? null;
        if (known === null) return;
        for (const k of present[i]!) writes.push(['set', k, known, 'EX', SEEN_TTL_SECONDS, 'NX']);
        if (id && hashes[i] && hashes[i] !== c.contentHash) {
          writes.push(['hset', storyKey(prefix, id), 'title', c.story.title, 'summary', c.story.summary, 'categories', JSON.stringify(c.story.categories), 'contentHash', c.contentHash, 'updatedAt', String(opts.now), 'signature', c.signature]);
          out[i] = { outcome: 'updated', id };
        } else {
          out[i] = { outcome: 'duplicate', id: known };
        }
      });
      // Duplicates inside this one document: the first occurrence wins.
      const fresh: number[] = [];
      cands.forEach((c, i) => {
        if (out[i]) return;
        const prior = present[i]!.map((k) => inBatch.get(k)).find((x) => x !== undefined);
        if (prior) {
          out[i] = { outcome: 'duplicate', id: prior };
          return;
        }
        for (const k of present[i]!) inBatch.set(k, c.story.id);
        fresh.push(i);
      });

      // Across feeds, exact: the canonical article URL is claimed by the first story that carries it.
      const withLink = fresh.filter((i) => cands[i]!.canonicalUrl);
      const linkReplies = await batch(
        withLink.flatMap((i): Cmd[] => {
          const key = linkKey(prefix, cands[i]!.canonicalUrl!);
          return [['set', key, cands[i]!.story.id, 'EX', SEEN_TTL_SECONDS, 'NX'], ['get', key]];
        }),
      );
      const target = new Map<number, { id: string; similarity: number }>();
      withLink.forEach((i, j) => {
        const owner = linkReplies[j * 2 + 1] as string | null;
        if (owner && owner !== cands[i]!.story.id) target.set(i, { id: owner, similarity: 1 });
      });

      // Across feeds, near: stories of other feeds sharing a MinHash band, checked against the threshold.
      const near = fresh.filter((i) => !target.has(i));
      const bandReplies = (await batch(near.flatMap((i) => cands[i]!.bands.map((b): Cmd => ['smembers', bucketKey(prefix, b)])))) as string[][];
      const candidatesOf = new Map<number, string[]>();
      const allIds = new Set<string>();
      near.forEach((i, j) => {
        const n = cands[i]!.bands.length;
        const ids = [...new Set(bandReplies.slice(j * n, (j + 1) * n).flat())].filter((id) => id !== cands[i]!.story.id).slice(0, 200);
        candidatesOf.set(i, ids);
        for (const id of ids) allIds.add(id);
      });
      const idList = [...allIds];
      const sigReplies = (await batch(idList.map((id): Cmd => ['hmget', storyKey(prefix, id), 'signature', 'feedId']))) as (string | null)[][];
      const sigOf = new Map(idList.map((id, k) => [id, sigReplies[k]!]));
      for (const i of near) {
        let best: { id: string; similarity: number } | null = null;
        for (const id of candidatesOf.get(i) ?? []) {
          const [sig, feedId] = sigOf.get(id) ?? [];
          if (!sig || feedId === cands[i]!.story.feedId) continue;
          const sim = opts.similarity(cands[i]!.signature, sig);
          if (sim >= opts.threshold && (!best || sim > best.similarity)) best = { id, similarity: sim };
        }
        if (best) target.set(i, best);
      }

      const creates: number[] = [];
      for (const i of fresh) {
        const c = cands[i]!;
        const t = target.get(i);
        if (t) {
          for (const k of present[i]!) writes.push(['set', k, t.id, 'EX', SEEN_TTL_SECONDS, 'NX']);
          writes.push(['hsetnx', sourcesKey(prefix, t.id), c.story.feedId, JSON.stringify({ url: c.story.url, at: opts.now })]);
          out[i] = { outcome: 'merged', id: t.id, similarity: t.similarity };
          continue;
        }
        const s = c.story;
        for (const k of present[i]!) writes.push(['set', k, s.id, 'EX', SEEN_TTL_SECONDS, 'NX']);
        writes.push([
          'eval', CREATE_STORY, 2, storyKey(prefix, s.id), sourcesKey(prefix, s.id),
          s.feedId, JSON.stringify({ url: s.url, at: opts.now }),
          'id', s.id, 'feedId', s.feedId, 'guid', s.guid ?? '', 'url', s.url, 'title', s.title, 'summary', s.summary,
          'categories', JSON.stringify(s.categories), 'publishedAt', String(s.publishedAt), 'firstSeenAt', String(s.firstSeenAt),
          'language', s.language ?? '', 'author', s.author ?? '', 'image', s.image ?? '',
          'canonicalUrl', c.canonicalUrl ?? '', 'contentHash', c.contentHash, 'signature', c.signature,
        ]);
        creates.push(writes.length - 1);
        for (const b of c.bands) {
          writes.push(['sadd', bucketKey(prefix, b), s.id]);
          writes.push(['expire', bucketKey(prefix, b), NEAR_DUP_TTL_SECONDS]);
        }
        out[i] = { outcome: 'created', id: s.id };
      }
      const replies = await batch(writes);
      // A story that already existed (a poller that crashed after creating it) is not new.
      for (const i of fresh) {
        const o = out[i]!;
        if (o.outcome !== 'created') continue;
        const at = creates.shift()!;
        if (replies[at] !== 1) out[i] = { outcome: 'duplicate', id: o.id };
      }
      return out as IngestOutcome[];
    },

    async markClassified(id: string, at: number) {
      await redis.hset(storyKey(prefix, id), 'classifiedAt', String(at));
    },

    async isClassified(id: string): Promise<boolean> {
      return (await redis.hexists(storyKey(prefix, id), 'classifiedAt')) === 1;
    },

    async get(id: string): Promise<Story | null> {
      const [h, sources] = await Promise.all([redis.hgetall(storyKey(prefix, id)), redis.hgetall(sourcesKey(prefix, id))]);
      return toStory(h, sources);
    },

    async getMany(ids: string[]): Promise<Story[]> {
      if (ids.length === 0) return [];
      const pipe = redis.pipeline();
      for (const id of ids) {
        pipe.hgetall(storyKey(prefix, id));
        pipe.hgetall(sourcesKey(prefix, id));
      }
      const res = (await pipe.exec()) ?? [];
      const out: Story[] = [];
      for (let i = 0; i < res.length; i += 2) {
        const s = toStory(res[i]![1] as Record<string, string>, res[i + 1]![1] as Record<string, string>);
        if (s) out.push(s);
      }
      return out;
    },

    /** Logs the story under each topic it matched: digests read these logs (fan-out on read). */
    async logForTopics(storyId: string, topicIds: string[], at: number) {
      const pipe = redis.pipeline();
      for (const topicId of topicIds) {
        const key = topicLogKey(prefix, topicId);
        pipe.zadd(key, at, storyId);
        pipe.zremrangebyscore(key, '-inf', at - TOPIC_LOG_RETENTION_MS);
      }
      await pipe.exec();
    },

    /** Story ids logged under the topic in (from, to]. */
    async loggedBetween(topicId: string, from: number, to: number): Promise<string[]> {
      return redis.zrangebyscore(topicLogKey(prefix, topicId), `(${from}`, to);
    },
  };
  return store;
}
export type StoryStore = ReturnType<typeof createStoryStore>;
