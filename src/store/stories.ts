import { hash } from 'node:crypto';
import { chunksOf, defineScript, FIELDS_PER_CALL, isCluster, runCommands, type RedisClient } from './redis.ts';
import type { Story, StorySource, ItemIdentity } from '../model.ts';
import { createNearLog, type NearItem, type NearLog } from './near-log.ts';

/**
 * Owns story records ({st:<id>}) with their sources, each feed's seen-item index ({f:<id>}), the cross-feed
 * link index ({l:<shard>}), the near-duplicate log ({nd}, see near-log.ts), and the per-topic story log used by digests.
 *
 * Indexes are hashes in time generations rather than one key per entry: one ingest of a whole feed costs a
 * few commands per index, not a few per item, and a generation expires as a whole (bounded memory, no sweeps).
 */
export const storyKey = (prefix: string, id: string) => `${prefix}:{st:${id}}:story`;
export const sourcesKey = (prefix: string, id: string) => `${prefix}:{st:${id}}:sources`;
// Index fields, not secrets: 96 bits of SHA-1 keep collisions out of reach at any feed volume, at a fraction of the cost.
const sha = (value: string) => hash('sha1', value, 'base64url').slice(0, 16);
export const topicLogKey = (prefix: string, topicId: string) => `${prefix}:{t:${topicId}}:log`;

const DAY_MS = 86_400_000;
/** Digests look back at most this far; older log entries are trimmed. */
export const TOPIC_LOG_RETENTION_MS = 8 * DAY_MS;
/**
 * Story records and their sources are kept 8 days after they were created or last changed: as far back as
 * digests, previews and digest pages look (TOPIC_LOG_RETENTION_MS, RECENT_RETENTION_MS); readers of an older id
 * already treat it as gone. Without it every story ever ingested stayed in Redis, whose policy is noeviction.
 * The seen index outlives them, so an item a feed still lists afterwards is not new again.
 */
const STORY_TTL_MS = TOPIC_LOG_RETENTION_MS;
/** Seen items and links are remembered for one to two 30-day generations. */
const SEEN_GEN_MS = 30 * DAY_MS;
const seenKey = (prefix: string, feedId: string, gen: number) => `${prefix}:{f:${feedId}}:seen:${gen}`;
const LINK_SHARDS = 16;
const linkKey = (prefix: string, shard: number, gen: number) => `${prefix}:links:{l:${shard}}:${gen}`;
/** The shard of a link index field (`l:<sha>`): its first hash character. */
const linkShard = (link: string) => link.charCodeAt(2) % LINK_SHARDS;
/** A link shard's current and previous generation keys, the pair every link script takes. */
const linkKeys = (prefix: string, shard: number, gen: number): [string, string] => [linkKey(prefix, shard, gen), linkKey(prefix, shard, gen - 1)];
/** New stories written per call on a single Redis (see packedCalls): a call holds Redis well under a millisecond. */
const CREATE_CHUNK = 50;
/** In the last minutes of a generation the claims also read the next one: pollers' clocks differ. */
const NEAR_MIDNIGHT_MS = 5 * 60_000;
/** Whether `now` is in the last NEAR_MIDNIGHT_MS of its generation (`genMs` long): the next one is read too. */
const nearGenerationEnd = (now: number, genMs: number) => (Math.floor(now / genMs) + 1) * genMs - now <= NEAR_MIDNIGHT_MS;

/** Adds a feed to a story's sources (kept when present) and keeps the sources as long as the story. */
const addSourceCmds = (prefix: string, storyId: string, feedId: string, sourceJson: string): Cmd[] => [
  ['hsetnx', sourcesKey(prefix, storyId), feedId, sourceJson],
  ['pexpire', sourcesKey(prefix, storyId), STORY_TTL_MS],
];

/**
 * heraldJoinStory's arguments after its keys: the record's id, feed, content hash and JSON (written when the
 * story's own record never was), and the joining feed's source JSON. Field names and the TTL are in the script:
 * every argument costs the client about half a microsecond to encode, as much as a new story's other writes.
 */
const createArgs = (s: Story, contentHash: string, sourceJson: string): string[] =>
  [s.id, s.feedId, contentHash, JSON.stringify(storedOf(s)), sourceJson];

/**
 * For an edited item: KEYS[1] the story; ARGV[1] the content hash the edit was decided against, ARGV[2] the new
 * one, ARGV[3] the new JSON, ARGV[4] the TTL (ms). Writes only while the record still has ARGV[1], answering 1:
 * a racing fetch that wrote another version in between wins, and this one (perhaps older) is not put back over it.
 */
const UPDATE_RECORD = `
if redis.call('HGET', KEYS[1], 'contentHash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[3], 'contentHash', ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1`;

/**
 * KEYS: per story, its record; ARGV[1] the feed, then per story its id, content hash and JSON. Kept
 * STORY_TTL_MS. Writes a record only when there is none, and answers per story 1 if it did, else 0.
 * The creating feed's source is the record itself (its feed and link, see parseStory): only feeds merged in later
 * are written to the story's sources. Writing the first source too cost Redis two more calls and a key per new
 * story, about a third of this script's work, for a copy of what the record holds.
 * A record that already exists (a poller that crashed after creating it, a WebSub delivery racing a poll, an
 * import of a known story) is left as it is: the racing fetch may carry an older version of the item, and
 * rewriting the record with it put that version back for good (see ingestBatch's seen index).
 * One call writes all of a feed's new stories on a single Redis (packedCalls): a call per story cost the client
 * about 13 µs per story more (a command each to build, encode and answer) and Redis a few µs more.
 */
const CREATE_STORIES = `
local out = {}
for k = 1, #KEYS do
  local a = 3 * k - 1
  if redis.call('EXISTS', KEYS[k]) == 1 then
    out[#out + 1] = 0
  else
    redis.call('HSET', KEYS[k], 'id', ARGV[a], 'feedId', ARGV[1], 'contentHash', ARGV[a + 1], 'json', ARGV[a + 2])
    redis.call('PEXPIRE', KEYS[k], ${STORY_TTL_MS})
    out[#out + 1] = 1
  end
end
return out`;

/** How long a story an item merged into may go unwritten before that item is made the story (see JOIN_STORY). */
const JOIN_SETTLE_MS = 60_000;

/**
 * An item joins another feed's story (a near-duplicate, or the same link): KEYS[1] that story, KEYS[2] its
 * sources; ARGV createArgs of the joining item with the story's id first, ARGV[6] now (ms). Answers 1 when the
 * story exists: the item's feed is added to its sources (kept when present) and both live on. The story's
 * claims (its near-duplicate registration, its link) are written a round trip before its record, so a poller
 * that died in between left an id with no story: items joining it were never classified nor sent. When there is
 * no record, the item's source is written with its time and 0 answered: the caller leaves the item out of its
 * feed's seen index, so the next fetch decides it again (a record still being written lands meanwhile). A join
 * JOIN_SETTLE_MS after the first that still finds no record writes the record from this item and answers 2.
 */
const JOIN_STORY = `
local prev = redis.call('HGET', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  if not prev then redis.call('HSET', KEYS[2], ARGV[2], ARGV[5]) end
  redis.call('PEXPIRE', KEYS[1], ${STORY_TTL_MS})
  redis.call('PEXPIRE', KEYS[2], ${STORY_TTL_MS})
  return 1
end
if not prev then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ${STORY_TTL_MS})
  return 0
end
local ok, src = pcall(cjson.decode, prev)
local at = ok and type(src) == 'table' and tonumber(src.at) or nil
if at and tonumber(ARGV[6]) - at < ${JOIN_SETTLE_MS} then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'feedId', ARGV[2], 'contentHash', ARGV[3], 'json', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ${STORY_TTL_MS})
redis.call('PEXPIRE', KEYS[2], ${STORY_TTL_MS})
return 2`;

/**
 * Link claims, for one or more link shards: per shard, KEYS its current generation, its previous one, and its
 * next one in the last minutes of the current one (else the current again); ARGV[1] the TTL (ms), then per shard
 * the number of its claims followed by their field/owner pairs. Each field keeps its first owner; answers the
 * owners, in order. The next generation is read because pollers' clocks differ: one already past the rollover
 * claims a link there, and one a second behind, reading only its own two, claimed it again (two stories of one
 * article). All shards in one call on a single Redis (see packedCalls): a feed's links fall into most of the 16
 * shards, and a call per shard cost the client a command each.
 */
const CLAIM = `
local out, a = {}, 2
for k = 1, #KEYS, 3 do
  local cur, prev, nxt = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local last = a + 2 * tonumber(ARGV[a])
  for i = a + 1, last, 2 do
    local owner = redis.call('HGET', prev, ARGV[i])
    if not owner and nxt ~= cur then owner = redis.call('HGET', nxt, ARGV[i]) end
    if not owner then
      -- A new link (the usual case) is claimed in one call: HSETNX says whether this caller's owner stands.
      if redis.call('HSETNX', cur, ARGV[i], ARGV[i + 1]) == 1 then owner = ARGV[i + 1] else owner = redis.call('HGET', cur, ARGV[i]) end
    end
    out[#out + 1] = owner
  end
  redis.call('PEXPIRE', cur, tonumber(ARGV[1]))
  a = last + 1
end
return out`;

/**
 * Scripts whose keys come in entries, one entry's keys in one slot (a story and its sources; a link shard's
 * generations): on a single Redis one call carries many entries, whose slots differ (see packedCalls).
 */
export const PACKED_SCRIPTS = {
  heraldCreateStories: { lua: CREATE_STORIES, keysPerEntry: 1 },
  heraldClaim: { lua: CLAIM, keysPerEntry: 3 },
} as const;

/**
 * KEYS[1] current generation, KEYS[2] previous; ARGV field/from/to triples: a field still owned by `from` in
 * either generation is handed to `to` (CLAIM reads the previous generation first, so both are checked).
 */
const REPOINT = `
for i = 1, #ARGV, 3 do
  for k = 1, 2 do
    if redis.call('HGET', KEYS[k], ARGV[i]) == ARGV[i + 1] then redis.call('HSET', KEYS[k], ARGV[i], ARGV[i + 2]) end
  end
end
return 0`;

/** KEYS[1] current generation, KEYS[2] previous: each field's owner, from the previous generation marked with '~'. */
const SEEN = `
local cur = redis.call('HMGET', KEYS[1], unpack(ARGV))
local prev = redis.call('HMGET', KEYS[2], unpack(ARGV))
for i = 1, #ARGV do
  if not cur[i] and prev[i] then cur[i] = '~' .. prev[i] end
end
return cur`;

/**
 * A new guid on a known link is the same item when the publisher changed its guid scheme; a link that other
 * guids of the same document still carry names none of them (a feed linking every item to its home page). Such
 * a link, looked up for an item with a guid, is dropped from the item's keys (not an identity, not claimed, not
 * recorded): when it is known as the story of an item this document still lists by its guid, or when several
 * guids of this document carry it. Without this, every new item of such a feed was taken for an edit of the
 * first one, and new items of one fetch for duplicates of each other.
 */
function dropSharedLinks(fields: { guid: string | null; link: string | null }[], owner: ReadonlyMap<string, string>) {
  const listed = new Set<string>();
  for (const f of fields) {
    const id = f.guid ? owner.get(f.guid) : undefined;
    if (id !== undefined) listed.add(id);
  }
  const guidsOf = new Map<string, Set<string>>();
  for (const f of fields) {
    if (!f.guid || !f.link) continue;
    const guids = guidsOf.get(f.link) ?? new Set<string>();
    guids.add(f.guid);
    guidsOf.set(f.link, guids);
  }
  for (const f of fields) {
    if (!f.guid || !f.link) continue;
    const known = owner.get(f.link);
    if (guidsOf.get(f.link)!.size > 1 || (known !== undefined && listed.has(known))) f.link = null;
  }
}


/** The story's own fields, stored as one JSON value: one argument to write instead of two per field. */
type StoredStory = Omit<Story, 'sources' | 'id' | 'feedId'>;

/** A story record that cannot be read back (hand-edited or half-written): retrying will not mend it. */
export class CorruptStoryError extends Error {
  constructor(readonly storyId: string, cause: unknown) {
    super(`story ${storyId} is corrupt in Redis: ${(cause as Error).message}`);
    this.name = 'CorruptStoryError';
  }
}

function toStory(h: Record<string, string>, sources?: Record<string, string>): Story | null {
  try {
    return parseStory(h, sources);
  } catch (err) {
    throw new CorruptStoryError(h.id ?? '?', err);
  }
}

function parseStory(h: Record<string, string>, sources?: Record<string, string>): Story | null {
  if (!h.id) return null;
  const srcs: StorySource[] = Object.entries(sources ?? {}).map(([feedId, j]) => ({ feedId, url: (JSON.parse(j) as { url: string }).url }));
  const f = h.json ? (JSON.parse(h.json) as StoredStory) : null;
  const url = f?.url ?? h.url ?? '';
  return {
    id: h.id,
    feedId: h.feedId ?? '',
    guid: f ? f.guid : h.guid || null,
    url,
    title: f?.title ?? h.title ?? '',
    summary: f?.summary ?? h.summary ?? '',
    categories: f?.categories ?? (h.categories ? (JSON.parse(h.categories) as string[]) : []),
    publishedAt: f?.publishedAt ?? Number(h.publishedAt),
    firstSeenAt: f?.firstSeenAt ?? Number(h.firstSeenAt),
    language: f?.language ?? null,
    author: f?.author ?? null,
    image: f?.image ?? null,
    // The creating feed's source is the record itself (CREATE_STORIES); records from before that list it here too.
    sources: srcs.some((src) => src.feedId === (h.feedId ?? '')) ? srcs : [{ feedId: h.feedId ?? '', url }, ...srcs],
    updatedAt: f?.updatedAt ?? null,
  };
}

const storedOf = (s: Story): StoredStory => ({
  guid: s.guid, url: s.url, title: s.title, summary: s.summary, categories: s.categories, publishedAt: s.publishedAt,
  firstSeenAt: s.firstSeenAt, language: s.language ?? null, author: s.author ?? null, image: s.image ?? null, updatedAt: null,
});

/** An item to ingest: its identity (the link as published is recorded as this feed's source on a merge), and lazily its story. */
export interface IngestCandidate extends ItemIdentity {
  /** The normalized story, built only for items that are new or changed, or why there is none. */
  story(): Story | { skip: string };
  /**
   * MinHash signature (encodeSignature: 8 hex characters per row), computed only for new items, and the names of
   * its LSH buckets when they are not the signature's own bands (see NearItem).
   */
  fingerprint(): { signature: string; bands?: string[] };
}

export type IngestOutcome =
  | { outcome: 'created'; id: string }
  /** Same item as before (guid, link or content seen in this feed). */
  | { outcome: 'duplicate'; id: string }
  /** Same guid or link, new title or summary: the story was updated in place. */
  | { outcome: 'updated'; id: string }
  /** Another feed's story of the same event: this feed was added to its sources. */
  | { outcome: 'merged'; id: string; similarity: number }
  /** The item has no text once normalized. */
  | { outcome: 'skipped'; reason: string };

export interface IngestOptions {
  /** Fraction of equal signature rows (the MinHash estimate of Jaccard similarity) at which two items are one story. */
  threshold: number;
  now: number;
  /**
   * Hands the stories to classify (new ones, and existing ones never classified) to the next stage. Called after
   * their records are written and before the items are recorded as seen: a poller that dies in between, or a
   * hand-over that fails, leaves the items unseen, so the re-run finds their stories unclassified and hands
   * them over again instead of taking them for known items.
   */
  handOver?: (storyIds: string[]) => Promise<void>;
}

type Cmd = [string, ...(string | number)[]];

/** What one feed's ingest works with: the store's Redis and key prefix, and this poller's near-duplicate log. */
interface IngestContext {
  redis: RedisClient;
  prefix: string;
  nearLog: NearLog;
}

/** Script entries weigh one each unless a packed call says otherwise (see packedCalls). */
const unitWeight = () => 1;
/** A link claim entry weighs its number of links. */
const claimWeight = (e: { idx: readonly number[] }) => e.idx.length;

/**
 * Calls of a script that takes entries (PACKED_SCRIPTS): on a single Redis, as many entries per call as `limit`
 * (of their weight) allows, through the script's `<name>Packed` command, whose first argument is the number of
 * keys; on a cluster, where a script's keys must share a slot, one entry per call through `<name>`, whose
 * first argument is a key (ioredis' cluster auto-pipelining routes a command by its first argument, and sent
 * the number of keys to a node that did not hold them). Each call is the script's
 * keys, then `head`, then each entry's arguments. Returns the commands and, per command, its entries.
 */
function packedCalls<E extends { keys: readonly string[]; args: readonly (string | number)[] }>(
  redis: RedisClient, name: keyof typeof PACKED_SCRIPTS, head: readonly (string | number)[], entries: readonly E[], limit: number, weight: (e: E) => number = unitWeight,
): { cmds: Cmd[]; calls: E[][] } {
  const cmds: Cmd[] = [];
  const calls: E[][] = [];
  if (isCluster(redis)) {
    for (const e of entries) {
      cmds.push([name, ...e.keys, ...head, ...e.args]);
      calls.push([e]);
    }
    return { cmds, calls };
  }
  let load = limit;
  for (const e of entries) {
    if (load + weight(e) > limit) {
      calls.push([]);
      load = 0;
    }
    calls[calls.length - 1]!.push(e);
    load += weight(e);
  }
  for (const call of calls) {
    const keys: string[] = [];
    for (const e of call) keys.push(...e.keys);
    const cmd: Cmd = [`${name}Packed`, keys.length, ...keys, ...head];
    for (const e of call) cmd.push(...e.args);
    cmds.push(cmd);
  }
  return { cmds, calls };
}

/** An item's seen-index fields: its guid's, its link's (when looked up) and its text's. */
interface ItemFields {
  guid: string | null;
  link: string | null;
  content: string;
}

/** The fields an item has, in the order guid, link, content. */
function presentFields(f: ItemFields): string[] {
  const out: string[] = [];
  if (f.guid !== null) out.push(f.guid);
  if (f.link !== null) out.push(f.link);
  out.push(f.content);
  return out;
}

/**
 * One fetched feed's items through the store (ingestBatch). A class, and loops rather than callbacks: the
 * closures a function creates on every call die with the call, and V8 drops their optimized code at the next
 * full collection, so each of them was compiled again about once a second while polling (measured: most of
 * the compiler threads' time, which shares the cores with Redis).
 */
class FeedIngest {
  private readonly feedId: string;
  private readonly seenGen: number;
  private readonly out: (IngestOutcome | null)[];
  private readonly fields: ItemFields[] = [];
  /** Each looked-up field's owner (a story id), and the fields found in the current generation. */
  private readonly owner = new Map<string, string>();
  private readonly inCurrent = new Set<string>();
  private present: string[][] = [];
  /** Seen-index field/owner pairs to write. */
  private readonly seenWrites: string[] = [];
  /** Items joined to another story: the story and the similarity. */
  private readonly target = new Map<number, { id: string; similarity: number }>();

  constructor(private readonly ctx: IngestContext, private readonly cands: readonly IngestCandidate[], private readonly opts: IngestOptions) {
    this.feedId = cands[0]!.feedId;
    this.seenGen = Math.floor(opts.now / SEEN_GEN_MS);
    this.out = new Array<IngestOutcome | null>(cands.length).fill(null);
    // Items with a guid are looked up by guid and text first; their link is parsed only if that finds nothing.
    for (const c of cands) {
      this.fields.push({
        guid: c.guid ? `g:${sha(c.guid)}` : null,
        link: !c.guid && c.canonicalUrl ? `l:${sha(c.canonicalUrl)}` : null,
        content: `c:${c.contentHash}`,
      });
    }
  }

  private batch(cmds: Cmd[]): Promise<unknown[]> {
    return runCommands(this.ctx.redis, cmds);
  }

  /** Looks the fields up in this feed's seen index; one command for both generations: the fields travel once. */
  private async lookUp(list: string[]) {
    if (list.length === 0) return;
    const { prefix } = this.ctx;
    const cmds: Cmd[] = [];
    for (const c of chunksOf(list, FIELDS_PER_CALL)) cmds.push(['heraldSeen', seenKey(prefix, this.feedId, this.seenGen), seenKey(prefix, this.feedId, this.seenGen - 1), ...c]);
    const replies = (await this.batch(cmds)) as (string | null)[][];
    let i = 0;
    for (const reply of replies) {
      for (const o of reply) {
        const f = list[i++]!;
        if (!o) continue;
        if (o.startsWith('~')) this.owner.set(f, o.slice(1));
        else {
          this.owner.set(f, o);
          this.inCurrent.add(f);
        }
      }
    }
  }

  /** Entries found only in the previous generation are carried into the current one. */
  private remember(i: number, id: string, except?: string) {
    for (const f of this.present[i]!) if (!this.inCurrent.has(f) && f !== except) this.seenWrites.push(f, id);
  }

  /** The seen-index writes gathered so far, with the index's TTL. */
  private seenCmds(): Cmd[] {
    if (this.seenWrites.length === 0) return [];
    const key = seenKey(this.ctx.prefix, this.feedId, this.seenGen);
    const cmds: Cmd[] = [];
    for (const pairs of chunksOf(this.seenWrites, 2 * FIELDS_PER_CALL)) cmds.push(['hset', key, ...pairs]);
    cmds.push(['pexpire', key, 2 * SEEN_GEN_MS]);
    return cmds;
  }

  async run(): Promise<IngestOutcome[]> {
    const { cands, fields, owner, opts, out, target, feedId, seenGen } = this;
    const { prefix } = this.ctx;
    // Another poller's clock may be past the generation's rollover.
    const lateInGen = nearGenerationEnd(opts.now, SEEN_GEN_MS);
    const first = new Set<string>();
    for (const f of fields) for (const k of presentFields(f)) first.add(k);
    await this.lookUp([...first]);
    // A new guid on a known link is the same item (publishers do change guid schemes).
    const unresolved = new Set<string>();
    for (let i = 0; i < cands.length; i++) {
      const c = cands[i]!;
      const f = fields[i]!;
      if (f.guid && !owner.has(f.guid) && !owner.has(f.content) && c.canonicalUrl) {
        f.link = `l:${sha(c.canonicalUrl)}`;
        unresolved.add(f.link);
      }
    }
    await this.lookUp([...unresolved]);
    dropSharedLinks(fields, owner);
    const present: string[][] = (this.present = []);
    const identity: (string | null)[] = [];
    for (const f of fields) {
      present.push(presentFields(f));
      identity.push((f.guid ? owner.get(f.guid) : undefined) ?? (f.link ? owner.get(f.link) : undefined) ?? null);
    }
    // This exact text already seen for the item: unchanged, nothing to read. (A publisher reverting an edit
    // is taken as unchanged; the story keeps the edit.)
    const withIdentity: number[] = [];
    const reads: Cmd[] = [];
    for (let i = 0; i < cands.length; i++) {
      const id = identity[i];
      if (id === null || owner.get(fields[i]!.content) === id) continue;
      withIdentity.push(i);
      reads.push(['hmget', storyKey(prefix, id!), 'contentHash', 'feedId', 'json']);
    }
    // Only the feed that created a story edits it; a feed merged in as a source does not rewrite its text.
    const owned = (await this.batch(reads)) as (string | null)[][];
    const ownHash = new Map<number, string | null>();
    const ownJson = new Map<number, string | null>();
    for (let k = 0; k < withIdentity.length; k++) {
      const i = withIdentity[k]!;
      ownHash.set(i, owned[k]![1] === feedId ? (owned[k]![0] ?? null) : null);
      ownJson.set(i, owned[k]![2] ?? null);
    }

    const writes: Cmd[] = [];
    /** Edited items and the index of their write. */
    const updates: [number, number][] = [];
    for (let i = 0; i < cands.length; i++) {
      const c = cands[i]!;
      const id = identity[i];
      const known = id ?? owner.get(fields[i]!.content) ?? null;
      if (known === null) continue;
      const hash = ownHash.get(i);
      const edited = id && hash && hash !== c.contentHash ? c.story() : null;
      if (id && hash && edited && !('skip' in edited)) {
        // The new text is recorded as seen once the record is known to hold it (below).
        this.remember(i, known, fields[i]!.content);
        const prevStory = ownJson.get(i) ? (JSON.parse(ownJson.get(i)!) as StoredStory) : storedOf(edited);
        const next: StoredStory = { ...prevStory, title: edited.title, summary: edited.summary, categories: edited.categories, updatedAt: opts.now };
        writes.push(['heraldUpdateRecord', storyKey(prefix, id), hash, c.contentHash, JSON.stringify(next), STORY_TTL_MS]);
        updates.push([i, writes.length - 1]);
        out[i] = { outcome: 'updated', id };
      } else {
        this.remember(i, known);
        out[i] = { outcome: 'duplicate', id: known };
      }
    }
    // Duplicates inside this one document: the first occurrence wins.
    const inBatch = new Map<string, string>();
    const fresh: number[] = [];
    const built = new Map<number, Story>();
    for (let i = 0; i < cands.length; i++) {
      if (out[i]) continue;
      const c = cands[i]!;
      let prior: string | undefined;
      for (const k of present[i]!) if ((prior = inBatch.get(k)) !== undefined) break;
      if (prior) {
        out[i] = { outcome: 'duplicate', id: prior };
        continue;
      }
      const story = c.story();
      if ('skip' in story) {
        out[i] = { outcome: 'skipped', reason: story.skip };
        continue;
      }
      for (const k of present[i]!) inBatch.set(k, c.id);
      built.set(i, story);
      fresh.push(i);
    }

    // Across feeds, exact: the canonical article URL is claimed by the first story that carries it.
    const byShard = new Map<number, number[]>();
    for (const i of fresh) {
      const link = fields[i]!.link;
      if (!link) continue;
      const shard = linkShard(link);
      const idx = byShard.get(shard);
      if (idx) idx.push(i);
      else byShard.set(shard, [i]);
    }
    const claimEntries: { idx: number[]; keys: string[]; args: (string | number)[] }[] = [];
    for (const [shard, all] of byShard) {
      for (const idx of chunksOf(all, FIELDS_PER_CALL / 2)) {
        const args: (string | number)[] = [idx.length];
        for (const i of idx) args.push(fields[i]!.link!, cands[i]!.id);
        claimEntries.push({ idx, keys: [...linkKeys(prefix, shard, seenGen), linkKey(prefix, shard, lateInGen ? seenGen + 1 : seenGen)], args });
      }
    }
    const claims = packedCalls(this.ctx.redis, 'heraldClaim', [2 * SEEN_GEN_MS], claimEntries, FIELDS_PER_CALL / 2, claimWeight);
    const linkReplies = (await this.batch(claims.cmds)) as string[][];
    const ownLink = new Set<number>();
    const linkMerged: number[] = [];
    for (let k = 0; k < claims.calls.length; k++) {
      let j = 0;
      for (const { idx } of claims.calls[k]!) {
        for (const i of idx) {
          const o = linkReplies[k]![j++];
          if (o && o !== cands[i]!.id) {
            target.set(i, { id: o, similarity: 1 });
            linkMerged.push(i);
          } else if (o) ownLink.add(i);
        }
      }
    }

    // Across feeds, near: decided in this poller's replay of the near-duplicate log (see near-log.ts), for the
    // items no link claim merged.
    const near: number[] = [];
    const nearItems: NearItem[] = [];
    for (const i of fresh) {
      if (target.has(i)) continue;
      const c = cands[i]!;
      const { signature, bands } = c.fingerprint();
      near.push(i);
      nearItems.push({ id: c.id, signature, bands });
    }
    if (near.length > 0) {
      const rows = nearItems[0]!.signature.length / 8;
      const decided = await this.ctx.nearLog.decide(feedId, opts.now, Math.ceil(opts.threshold * rows), nearItems);
      for (let k = 0; k < decided.length; k++) {
        const d = decided[k]!;
        if (d.merged) target.set(near[k]!, { id: d.storyId, similarity: d.equalRows / rows });
      }
    }

    // An item merged as a near-duplicate claimed its link under its own id, a story that is never written:
    // the claim now names the story it joined, or the next item with that link would join no story at all.
    const repoint = new Map<number, string[]>();
    for (const i of ownLink) {
      const t = target.get(i);
      if (!t) continue;
      const link = fields[i]!.link!;
      const shard = linkShard(link);
      const triples = repoint.get(shard) ?? [];
      triples.push(link, cands[i]!.id, t.id);
      repoint.set(shard, triples);
    }
    for (const [shard, triples] of repoint) {
      for (const part of chunksOf(triples, 3 * (FIELDS_PER_CALL / 2))) writes.push(['heraldRepoint', ...linkKeys(prefix, shard, seenGen), ...part]);
    }
    /** New stories to write: the item, the story's key and its arguments (CREATE_STORIES). */
    const toCreate: { i: number; id: string; keys: [string]; args: string[] }[] = [];
    /** Merged items and the index of their join (JOIN_STORY): seen only once their story is known to exist. */
    const joins: [number, number][] = [];
    for (const i of fresh) {
      const c = cands[i]!;
      const t = target.get(i);
      if (t) {
        // A merge is a change: the story and its sources stay on.
        writes.push(['heraldJoinStory', storyKey(prefix, t.id), sourcesKey(prefix, t.id), ...createArgs({ ...built.get(i)!, id: t.id }, c.contentHash, JSON.stringify({ url: c.url, at: opts.now })), opts.now]);
        joins.push([i, writes.length - 1]);
        out[i] = { outcome: 'merged', id: t.id, similarity: t.similarity };
        continue;
      }
      const s = built.get(i)!;
      // The text is recorded as seen once the record is known to hold it (below).
      this.remember(i, s.id, fields[i]!.content);
      toCreate.push({ i, id: s.id, keys: [storyKey(prefix, s.id)], args: [s.id, c.contentHash, JSON.stringify(storedOf(s))] });
      out[i] = { outcome: 'created', id: s.id };
    }
    /** Per new story (in toCreate's order), the index of its call in `writes` and its place in that call's answer. */
    const creates: [number, number][] = [];
    const createCalls = packedCalls(this.ctx.redis, 'heraldCreateStories', [feedId], toCreate, CREATE_CHUNK);
    for (let c = 0; c < createCalls.cmds.length; c++) {
      writes.push(createCalls.cmds[c]!);
      for (let k = 0; k < createCalls.calls[c]!.length; k++) creates.push([writes.length - 1, k]);
    }
    // With stories created or edited, the seen index is written after them (and after the hand-over, see handOver).
    const creating = creates.length > 0;
    const later = creating || updates.length > 0 || joins.length > 0;
    const replies = await this.batch(later ? writes : [...writes, ...this.seenCmds()]);
    /** Stories written by a join that found none (their first item's poller died before writing them). */
    const madeByJoin: string[] = [];
    for (const [i, at] of joins) {
      const t = target.get(i)!;
      if (replies[at] === 0) continue;
      this.remember(i, t.id);
      if (replies[at] === 2) {
        madeByJoin.push(t.id);
        out[i] = { outcome: 'created', id: t.id };
      }
    }
    for (const [i, at] of updates) {
      const id = identity[i]!;
      if (replies[at] === 1) this.seenWrites.push(fields[i]!.content, id);
      // Another fetch wrote the record in between: its text stands, this one is compared again next time.
      else out[i] = { outcome: 'duplicate', id };
    }
    const moved: number[] = [];
    for (const i of ownLink) if (target.has(i)) moved.push(i);
    await this.settleLinkRaces(moved, linkMerged);
    // A story that already existed (a poller that crashed after creating it, a WebSub delivery racing a poll)
    // is not new; it is handed over again while it is not classified (the job id makes that a no-op while
    // the first hand-over's job is kept).
    const toClassify: string[] = [];
    const existed: string[] = [];
    for (let n = 0; n < toCreate.length; n++) {
      const { i, id } = toCreate[n]!;
      const [at, k] = creates[n]!;
      if ((replies[at] as number[])[k] === 1) {
        toClassify.push(id);
        this.seenWrites.push(fields[i]!.content, id);
      } else {
        // Its text is not recorded: the record may hold another version, which the next fetch compares.
        out[i] = { outcome: 'duplicate', id };
        existed.push(id);
      }
    }
    if (later) {
      toClassify.push(...madeByJoin);
      if (opts.handOver && (creating || madeByJoin.length > 0)) {
        const checks: Cmd[] = [];
        for (const id of existed) checks.push(['hexists', storyKey(prefix, id), 'classifiedAt']);
        const classified = (await this.batch(checks)) as number[];
        for (let k = 0; k < existed.length; k++) if (classified[k] !== 1) toClassify.push(existed[k]!);
        if (toClassify.length > 0) await opts.handOver(toClassify);
      }
      await this.batch(this.seenCmds());
    }
    return out as IngestOutcome[];
  }

  /**
   * Another feed's item may join one of ours by its link between our claim and its re-pointing (a feed
   * ingested at the same instant): its source went to our item's id, which is no story. Each side looks after
   * its own write, so one of them sees the other: the items merged as near-duplicates (`moved`, re-pointed by
   * now) bring any source written on their id to the story they joined; the items merged by link (`joined`)
   * whose story does not exist read the claim again and follow it when it has moved.
   */
  private async settleLinkRaces(moved: number[], joined: number[]) {
    const { cands, target, fields, out, feedId, opts } = this;
    const { prefix } = this.ctx;
    const fix: Cmd[] = [];
    // (A story of that id written by an earlier run keeps its sources.)
    const strayReads: Cmd[] = [];
    for (const i of moved) strayReads.push(['exists', storyKey(prefix, cands[i]!.id)], ['hgetall', sourcesKey(prefix, cands[i]!.id)]);
    const stray = (await this.batch(strayReads)) as unknown[];
    for (let k = 0; k < moved.length; k++) {
      const i = moved[k]!;
      if (stray[2 * k] !== 0) continue;
      const entries = Object.entries(stray[2 * k + 1] as Record<string, string>);
      for (const [feed, source] of entries) fix.push(...addSourceCmds(prefix, target.get(i)!.id, feed, source));
      if (entries.length > 0) fix.push(['unlink', sourcesKey(prefix, cands[i]!.id)]);
    }
    const existsReads: Cmd[] = [];
    for (const i of joined) existsReads.push(['exists', storyKey(prefix, target.get(i)!.id)]);
    const exists = (await this.batch(existsReads)) as number[];
    const missing: number[] = [];
    const claimReads: Cmd[] = [];
    for (let k = 0; k < joined.length; k++) {
      if (exists[k] !== 0) continue;
      const i = joined[k]!;
      const link = fields[i]!.link!;
      missing.push(i);
      claimReads.push(['heraldSeen', ...linkKeys(prefix, linkShard(link), this.seenGen), link]);
    }
    const claims = (await this.batch(claimReads)) as (string | null)[][];
    for (let k = 0; k < missing.length; k++) {
      const i = missing[k]!;
      const claimant = claims[k]![0]?.replace(/^~/, '');
      if (!claimant || claimant === target.get(i)!.id) continue;
      fix.push(...addSourceCmds(prefix, claimant, feedId, JSON.stringify({ url: cands[i]!.url, at: opts.now })));
      out[i] = { outcome: 'merged', id: claimant, similarity: 1 };
    }
    await this.batch(fix);
  }
}

export function createStoryStore(redis: RedisClient, prefix: string) {
  // EVALSHA: the scripts travel once per connection, not with every story.
  for (const [name, { lua, keysPerEntry }] of Object.entries(PACKED_SCRIPTS)) {
    redis.defineCommand(name, { numberOfKeys: keysPerEntry, lua });
    redis.defineCommand(`${name}Packed`, { lua });
  }
  const createStoriesScript = defineScript(redis, 'heraldCreateStories', PACKED_SCRIPTS.heraldCreateStories.keysPerEntry, CREATE_STORIES);
  redis.defineCommand('heraldSeen', { numberOfKeys: 2, lua: SEEN });
  redis.defineCommand('heraldJoinStory', { numberOfKeys: 2, lua: JOIN_STORY });
  redis.defineCommand('heraldRepoint', { numberOfKeys: 2, lua: REPOINT });
  redis.defineCommand('heraldUpdateRecord', { numberOfKeys: 1, lua: UPDATE_RECORD });
  const nearLog = createNearLog(redis, prefix);
  const ctx: IngestContext = { redis, prefix, nearLog };

  const store = {
    /**
     * Decides, for a whole fetched feed at once (a handful of round trips, not a handful per item), what each
     * normalized item is: a new story; one this feed already carried (updated in place when the publisher
     * changed its title or summary); or another feed's story of the same event (same canonical link, else a
     * near-duplicate of title and summary) to which this feed is added as a source.
     */
    ingestBatch(cands: readonly IngestCandidate[], opts: IngestOptions): Promise<IngestOutcome[]> {
      return cands.length === 0 ? Promise.resolve([]) : new FeedIngest(ctx, cands, opts).run();
    },

    /**
     * Records a story that did not come through a feed poll (an import, a test's fixture): created only when
     * absent, with its feed and any other `sources` it names, and none of the dedup indexes a poll maintains.
     */
    async put(story: Story): Promise<boolean> {
      const [created] = (await createStoriesScript(storyKey(prefix, story.id), story.feedId, story.id, '', JSON.stringify(storedOf(story)))) as number[];
      const others = (story.sources ?? []).filter((src) => src.feedId !== story.feedId);
      if (created === 1 && others.length > 0) {
        await runCommands(redis, others.flatMap((src) => addSourceCmds(prefix, story.id, src.feedId, JSON.stringify({ url: src.url, at: story.firstSeenAt }))));
      }
      return created === 1;
    },

    async markClassified(id: string, at: number) {
      await redis.hset(storyKey(prefix, id), 'classifiedAt', String(at));
    },

    async classifiedAt(id: string): Promise<number | null> {
      const v = await redis.hget(storyKey(prefix, id), 'classifiedAt');
      return v ? Number(v) : null;
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
      const res = await runCommands(redis, ids.flatMap((id): Cmd[] => [['hgetall', storyKey(prefix, id)], ['hgetall', sourcesKey(prefix, id)]]));
      const out: Story[] = [];
      for (let i = 0; i < res.length; i += 2) {
        const s = toStory(res[i] as Record<string, string>, res[i + 1] as Record<string, string>);
        if (s) out.push(s);
      }
      return out;
    },

    /**
     * Logs the story under each topic it matched: digests read these logs (fan-out on read). A log nothing is
     * written to for the retention holds only entries past it: it expires then (a topic taken out of the catalog,
     * an own alert whose removal stopped before forgetTopicLog), instead of staying for ever.
     * An entry keeps its first time (NX): a classification retried or run again (its worker died) logged the story
     * anew at its own clock, which moved it into the next digest window, and a digest that had listed it listed
     * it again.
     */
    async logForTopics(storyId: string, topicIds: string[], at: number) {
      await runCommands(redis, topicIds.flatMap((topicId): Cmd[] => {
        const key = topicLogKey(prefix, topicId);
        return [['zadd', key, 'NX', at, storyId], ['zremrangebyscore', key, '-inf', at - TOPIC_LOG_RETENTION_MS], ['pexpire', key, TOPIC_LOG_RETENTION_MS]];
      }));
    },

    /** Drops a topic's log: a deleted own alert gets no more entries, so nothing would ever trim it. */
    async forgetTopicLog(topicId: string) {
      await redis.unlink(topicLogKey(prefix, topicId));
    },

    /** How many stories were logged under the topic in [from, to) (matches per day on the console). */
    async countLogged(topicId: string, from: number, to: number): Promise<number> {
      return redis.zcount(topicLogKey(prefix, topicId), from, `(${to}`);
    },

    /**
     * The story that claimed this canonical link (link index of the last one to two generations), or null.
     * Items with a guid are not in that index: callers fall back to the recent stories.
     */
    async idForCanonicalUrl(canonical: string, now: number): Promise<string | null> {
      const link = `l:${sha(canonical)}`;
      const shard = linkShard(link);
      const gen = Math.floor(now / SEEN_GEN_MS);
      const [cur, prev] = await Promise.all(linkKeys(prefix, shard, gen).map((key) => redis.hget(key, link)));
      return cur ?? prev ?? null;
    },

    /** Story ids logged under the topic in (from, to]. */
    async loggedBetween(topicId: string, from: number, to: number): Promise<string[]> {
      return redis.zrangebyscore(topicLogKey(prefix, topicId), `(${from}`, to);
    },
  };
  return store;
}
export type StoryStore = ReturnType<typeof createStoryStore>;
