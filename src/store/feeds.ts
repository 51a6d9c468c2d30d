import type { Redis } from 'ioredis';
import type { FeedConfig } from '../config/catalog.ts';

/** Owns the feed registry, the next-check schedule and each feed's fetch state. */
const registryKey = (prefix: string) => `${prefix}:feeds`;
const dueKey = (prefix: string) => `${prefix}:feeds:due`;
const stateKey = (prefix: string, feedId: string) => `${prefix}:{f:${feedId}}:state`;

export interface FeedState {
  etag: string | null;
  lastModified: string | null;
  lastStatus: number | null;
  lastError: string | null;
  lastSuccessAt: number | null;
  lastCheckAt: number | null;
  consecutiveFailures: number;
}

const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));

export function createFeedStore(redis: Redis, prefix: string) {
  return {
    /** Adds feeds from config; a feed already known keeps its schedule. */
    async sync(feeds: readonly FeedConfig[], now: number) {
      if (feeds.length === 0) return;
      const pipe = redis.pipeline();
      for (const f of feeds) {
        pipe.hset(registryKey(prefix), f.id, JSON.stringify(f));
        pipe.zadd(dueKey(prefix), 'NX', now, f.id);
      }
      await pipe.exec();
    },
    async get(feedId: string): Promise<FeedConfig | null> {
      const j = await redis.hget(registryKey(prefix), feedId);
      return j ? (JSON.parse(j) as FeedConfig) : null;
    },
    async list(): Promise<FeedConfig[]> {
      return Object.values(await redis.hgetall(registryKey(prefix))).map((j) => JSON.parse(j) as FeedConfig);
    },
    async due(now: number, limit: number): Promise<string[]> {
      return redis.zrangebyscore(dueKey(prefix), '-inf', now, 'LIMIT', 0, limit);
    },
    async scheduleNext(feedId: string, at: number) {
      await redis.zadd(dueKey(prefix), at, feedId);
    },
    async state(feedId: string): Promise<FeedState> {
      const h = await redis.hgetall(stateKey(prefix, feedId));
      return {
        etag: h.etag || null,
        lastModified: h.lastModified || null,
        lastStatus: num(h.lastStatus),
        lastError: h.lastError || null,
        lastSuccessAt: num(h.lastSuccessAt),
        lastCheckAt: num(h.lastCheckAt),
        consecutiveFailures: Number(h.consecutiveFailures ?? 0),
      };
    },
    async recordSuccess(feedId: string, r: { status: number; etag: string | null; lastModified: string | null }, now: number) {
      await redis.hset(stateKey(prefix, feedId), {
        etag: r.etag ?? '',
        lastModified: r.lastModified ?? '',
        lastStatus: String(r.status),
        lastError: '',
        lastSuccessAt: String(now),
        lastCheckAt: String(now),
        consecutiveFailures: '0',
      });
    },
    async recordFailure(feedId: string, error: string, status: number | null, now: number) {
      const key = stateKey(prefix, feedId);
      await redis
        .multi()
        .hset(key, { lastError: error.slice(0, 500), lastStatus: status === null ? '' : String(status), lastCheckAt: String(now) })
        .hincrby(key, 'consecutiveFailures', 1)
        .exec();
    },
  };
}
export type FeedStore = ReturnType<typeof createFeedStore>;
