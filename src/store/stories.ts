import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Story } from '../model.ts';

/** Owns story records ({st:<id>}), the dedup index, and the per-topic story log used by digests. */
export const storyKey = (prefix: string, id: string) => `${prefix}:{st:${id}}:story`;
const dedupKey = (prefix: string, kind: 'guid' | 'link', value: string) =>
  `${prefix}:dedup:${kind}:${createHash('sha256').update(value).digest('hex').slice(0, 32)}`;
export const topicLogKey = (prefix: string, topicId: string) => `${prefix}:{t:${topicId}}:log`;

/** Story ids are derived from what identifies the item, so two pollers seeing it agree on the id. */
export const storyIdFor = (identity: string) => createHash('sha256').update(identity).digest('hex').slice(0, 20);

/** Writes the whole record at once, only when absent: a half-written story cannot exist. */
const CREATE_STORY = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`;

const DEDUP_TTL_SECONDS = 60 * 60 * 24 * 30;
/** Digests look back at most this far; older log entries are trimmed. */
export const TOPIC_LOG_RETENTION_MS = 8 * 24 * 60 * 60 * 1000;

function toStory(h: Record<string, string>): Story | null {
  if (!h.id) return null;
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
  };
}

export function createStoryStore(redis: Redis, prefix: string) {
  return {
    /**
     * Records the story unless one with the same guid, or else the same link, is already known.
     * Each dedup key is claimed with SET NX holding the story id, so two pollers racing on one item agree,
     * and a poller that crashed half-way finds its own claim again and finishes the job.
     */
    async addIfNew(story: Story): Promise<{ created: boolean; id: string }> {
      const claims = [story.guid ? dedupKey(prefix, 'guid', story.guid) : null, dedupKey(prefix, 'link', story.url)];
      for (const key of claims) {
        if (!key) continue;
        const claimed = await redis.set(key, story.id, 'EX', DEDUP_TTL_SECONDS, 'NX');
        if (claimed === null) {
          const owner = await redis.get(key);
          if (owner !== null && owner !== story.id) return { created: false, id: owner };
        }
      }
      const created = (await redis.eval(
        CREATE_STORY,
        1,
        storyKey(prefix, story.id),
        'id', story.id,
        'feedId', story.feedId,
        'guid', story.guid ?? '',
        'url', story.url,
        'title', story.title,
        'summary', story.summary,
        'categories', JSON.stringify(story.categories),
        'publishedAt', String(story.publishedAt),
        'firstSeenAt', String(story.firstSeenAt),
      )) as number;
      return { created: created === 1, id: story.id };
    },

    async markClassified(id: string, at: number) {
      await redis.hset(storyKey(prefix, id), 'classifiedAt', String(at));
    },

    async isClassified(id: string): Promise<boolean> {
      return (await redis.hexists(storyKey(prefix, id), 'classifiedAt')) === 1;
    },

    async get(id: string): Promise<Story | null> {
      return toStory(await redis.hgetall(storyKey(prefix, id)));
    },

    async getMany(ids: string[]): Promise<Story[]> {
      if (ids.length === 0) return [];
      const pipe = redis.pipeline();
      for (const id of ids) pipe.hgetall(storyKey(prefix, id));
      const res = (await pipe.exec()) ?? [];
      return res.map(([, h]) => toStory(h as Record<string, string>)).filter((s): s is Story => s !== null);
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
}
export type StoryStore = ReturnType<typeof createStoryStore>;
