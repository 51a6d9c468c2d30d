import type { RedisClient } from './redis.ts';

/**
 * Owns the log of recently classified stories, which the custom-alert preview replays a query against.
 * One sorted set (story id by classification time), trimmed by age and length so it stays bounded.
 */
export const recentStoriesKey = (prefix: string) => `${prefix}:{recent}:stories`;

export const RECENT_RETENTION_MS = 8 * 24 * 60 * 60 * 1000;
export const RECENT_MAX = 50_000;

export function createRecentStories(redis: RedisClient, prefix: string) {
  const key = recentStoriesKey(prefix);
  return {
    async add(storyId: string, at: number) {
      await redis
        .multi()
        .zadd(key, at, storyId)
        .zremrangebyscore(key, '-inf', at - RECENT_RETENTION_MS)
        // Keep the newest RECENT_MAX: rank 0 is the oldest.
        .zremrangebyrank(key, 0, -RECENT_MAX - 1)
        .exec();
    },

    /** Ids by classification time, newest first, from position `offset` (for scans in batches). */
    async page(offset: number, limit: number): Promise<string[]> {
      return redis.zrevrange(key, offset, offset + limit - 1);
    },

    /** Ids of stories classified in [from, to], newest first, at most `limit`. */
    async between(from: number, to: number, limit: number): Promise<string[]> {
      return redis.zrevrangebyscore(key, to, from, 'LIMIT', 0, limit);
    },
  };
}
export type RecentStories = ReturnType<typeof createRecentStories>;
