import { chunksOf, defineScript, FIELDS_PER_CALL, runCommands, type Command, type RedisClient } from './redis.ts';
import type { FeedConfig } from '../config/catalog.ts';

/** Owns the feed registry, the next-check schedule, each feed's fetch and health state, and per-host fetch slots. */
const registryKey = (prefix: string) => `${prefix}:feeds`;
const dueKey = (prefix: string) => `${prefix}:feeds:due`;
const stateKey = (prefix: string, feedId: string) => `${prefix}:{f:${feedId}}:state`;
const hostKey = (prefix: string, host: string) => `${prefix}:hosts:{h:${host}}:inflight`;
/** Set while a fetch of the feed runs (expires with its host lease, should its worker die). */
const fetchingKey = (prefix: string, feedId: string) => `${prefix}:{f:${feedId}}:fetching`;
/** New stories per UTC day (field: day number since the epoch), for the console's sparkline. */
const itemsKey = (prefix: string, feedId: string) => `${prefix}:{f:${feedId}}:items-per-day`;
const DAY_MS = 86_400_000;
/** Days of item counts kept per feed: the console shows a week. */
export const ITEMS_PER_DAY_RETENTION_DAYS = 14;
export const PAUSED_REASON = 'paused by the operator';

/** The host a feed's fetches count against (per-host slots). */
export const hostOf = (url: string) => {
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    return 'invalid';
  }
};

export interface WebSubState {
  hub: string;
  topic: string;
  secret: string;
  /** pending: asked the hub, waiting for its verification of intent; active: verified, lease running. */
  status: 'pending' | 'active' | 'denied';
  leaseUntil: number | null;
  requestedAt: number;
  reason?: string | null;
}

export interface FeedState {
  etag: string | null;
  lastModified: string | null;
  lastStatus: number | null;
  lastError: string | null;
  lastErrorCode: string | null;
  lastErrorAt: number | null;
  lastSuccessAt: number | null;
  lastCheckAt: number | null;
  consecutiveFailures: number;
  /** When the current run of failures began. */
  failingSince: number | null;
  disabledAt: number | null;
  disabledReason: string | null;
  nextCheckAt: number | null;
  /** Publication time of the newest item, and the feed's usual gap between items (median). */
  lastItemAt: number | null;
  cadenceMs: number | null;
  /** When a fetch last brought a new story: what staleness goes by for a feed whose items carry no dates. */
  lastNewItemAt: number | null;
  title: string | null;
  format: string | null;
  websub: WebSubState | null;
}

const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
const str = (v: string | undefined) => (v === undefined || v === '' ? null : v);

/** Takes a slot for the host unless `limit` unexpired leases are held; expired leases (crashed workers) are dropped. */
const ACQUIRE_HOST = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

export function createFeedStore(redis: RedisClient, prefix: string) {
  const acquireHostScript = defineScript(redis, 'heraldAcquireHost', 1, ACQUIRE_HOST);
  return {
    /**
     * Adds feeds from config. A known feed keeps its schedule and the URL a permanent redirect taught it,
     * unless the operator changed its URL in the file since (the configured URL is remembered to tell).
     */
    async sync(feeds: readonly FeedConfig[], now: number) {
      if (feeds.length === 0) return;
      const existing = await redis.hmget(registryKey(prefix), ...feeds.map((f) => f.id));
      // The registry and the schedule are two keys in two slots: no pipeline across them on a cluster.
      const cmds: Command[] = [];
      feeds.forEach((f, i) => {
        const known = existing[i] ? (JSON.parse(existing[i]!) as FeedConfig & { configuredUrl?: string }) : null;
        const fromFile = known && known.configuredUrl === f.url ? { ...f, url: known.url } : f;
        cmds.push(['hset', registryKey(prefix), f.id, JSON.stringify({ ...fromFile, configuredUrl: f.url })]);
        cmds.push(['zadd', dueKey(prefix), 'NX', now, f.id]);
      });
      await runCommands(redis, cmds);
    },
    /** Adds one feed (CLI); false when the id is taken. */
    async add(feed: FeedConfig, now: number): Promise<boolean> {
      const added = await redis.hsetnx(registryKey(prefix), feed.id, JSON.stringify(feed));
      if (added === 1) await redis.zadd(dueKey(prefix), now, feed.id);
      return added === 1;
    },
    async remove(feedId: string): Promise<boolean> {
      // Read before the feed goes: a fetch marks itself running only after it has read the feed (ingestFeed), so
      // one not marked here either finds no feed or is already past that read.
      const [feed, fetching] = await Promise.all([this.get(feedId), redis.exists(fetchingKey(prefix, feedId))]);
      const removed = await redis.hdel(registryKey(prefix), feedId);
      await redis.zrem(dueKey(prefix), feedId);
      await redis.del(stateKey(prefix, feedId), itemsKey(prefix, feedId));
      // The slot the poll tick took for a fetch still queued: that fetch will find no feed and free nothing, and the
      // host's other feeds waited out the lease (fetch timeout + a minute). A running fetch frees its slot as it ends.
      if (feed && !fetching) await this.releaseHost(hostOf(feed.url), feedId);
      return removed === 1;
    },
    async get(feedId: string): Promise<FeedConfig | null> {
      const j = await redis.hget(registryKey(prefix), feedId);
      return j ? (JSON.parse(j) as FeedConfig) : null;
    },
    async list(): Promise<FeedConfig[]> {
      return Object.values(await redis.hgetall(registryKey(prefix)))
        .map((j) => JSON.parse(j) as FeedConfig)
        .sort((a, b) => a.id.localeCompare(b.id));
    },
    async updateUrl(feedId: string, url: string) {
      const feed = await this.get(feedId);
      if (feed) await redis.hset(registryKey(prefix), feedId, JSON.stringify({ ...feed, url }));
    },
    /** Ids of feeds due by `now`, earliest first, from `offset` on. */
    async due(now: number, limit: number, offset = 0): Promise<string[]> {
      return redis.zrangebyscore(dueKey(prefix), '-inf', now, 'LIMIT', offset, limit);
    },
    /** The feeds with these ids, in order (null for an id no longer configured): one HMGET per thousand. */
    async getMany(feedIds: readonly string[]): Promise<(FeedConfig | null)[]> {
      const out: (FeedConfig | null)[] = [];
      for (const ids of chunksOf(feedIds, FIELDS_PER_CALL)) {
        for (const j of await redis.hmget(registryKey(prefix), ...ids)) out.push(j ? (JSON.parse(j) as FeedConfig) : null);
      }
      return out;
    },
    async scheduleNext(feedId: string, at: number) {
      await redis.zadd(dueKey(prefix), 'XX', at, feedId);
      await redis.hset(stateKey(prefix, feedId), 'nextCheckAt', String(at));
    },
    /** Takes the feed off the schedule (a disabled feed re-added by a config sync). */
    async unschedule(feedId: string) {
      await redis.zrem(dueKey(prefix), feedId);
    },
    async acquireHost(host: string, feedId: string, now: number, leaseMs: number, limit: number): Promise<boolean> {
      const ok = await acquireHostScript(hostKey(prefix, host), String(now), String(now + leaseMs), feedId, String(limit), String(leaseMs * 2));
      return ok === 1;
    },
    /** A fetch of the feed starts (see `remove`). */
    async markFetching(feedId: string, leaseMs: number) {
      await redis.set(fetchingKey(prefix, feedId), '1', 'PX', leaseMs);
    },
    /** The feed's fetch is over (or never started): its host slot and its running mark go. */
    async releaseHost(host: string, feedId: string) {
      await Promise.all([redis.zrem(hostKey(prefix, host), feedId), redis.del(fetchingKey(prefix, feedId))]);
    },
    async hostInflight(host: string): Promise<number> {
      return redis.zcard(hostKey(prefix, host));
    },
    async state(feedId: string): Promise<FeedState> {
      const h = await redis.hgetall(stateKey(prefix, feedId));
      return {
        etag: str(h.etag),
        lastModified: str(h.lastModified),
        lastStatus: num(h.lastStatus),
        lastError: str(h.lastError),
        lastErrorCode: str(h.lastErrorCode),
        lastErrorAt: num(h.lastErrorAt),
        lastSuccessAt: num(h.lastSuccessAt),
        lastCheckAt: num(h.lastCheckAt),
        consecutiveFailures: Number(h.consecutiveFailures ?? 0),
        failingSince: num(h.failingSince),
        disabledAt: num(h.disabledAt),
        disabledReason: str(h.disabledReason),
        nextCheckAt: num(h.nextCheckAt),
        lastItemAt: num(h.lastItemAt),
        cadenceMs: num(h.cadenceMs),
        lastNewItemAt: num(h.lastNewItemAt),
        title: str(h.title),
        format: str(h.format),
        websub: h.websub ? (JSON.parse(h.websub) as WebSubState) : null,
      };
    },
    async recordSuccess(
      feedId: string,
      r: { status: number; etag: string | null; lastModified: string | null; title?: string; format?: string; lastItemAt?: number | null; cadenceMs?: number | null },
      now: number,
    ) {
      const fields: Record<string, string> = {
        etag: r.etag ?? '',
        lastModified: r.lastModified ?? '',
        lastStatus: String(r.status),
        lastSuccessAt: String(now),
        lastCheckAt: String(now),
        consecutiveFailures: '0',
        failingSince: '',
        lastError: '',
        lastErrorCode: '',
      };
      if (r.title !== undefined) fields.title = r.title;
      if (r.format !== undefined) fields.format = r.format;
      if (r.lastItemAt) fields.lastItemAt = String(r.lastItemAt);
      if (r.cadenceMs) fields.cadenceMs = String(r.cadenceMs);
      await redis.hset(stateKey(prefix, feedId), fields);
    },
    /** Counts the failure and returns the feed's failure run (count and start). */
    async recordFailure(feedId: string, e: { code: string; message: string; status: number | null }, now: number): Promise<{ failures: number; failingSince: number }> {
      const key = stateKey(prefix, feedId);
      const res = await redis
        .multi()
        .hset(key, { lastError: e.message.slice(0, 500), lastErrorCode: e.code, lastErrorAt: String(now), lastStatus: e.status === null ? '' : String(e.status), lastCheckAt: String(now) })
        .hincrby(key, 'consecutiveFailures', 1)
        .hsetnx(key, 'failingSince', String(now))
        .hget(key, 'failingSince')
        .exec();
      const failures = Number(res?.[1]?.[1] ?? 1);
      const since = Number(res?.[3]?.[1] || now);
      // hsetnx does not replace the '' a success leaves behind.
      if (!res?.[3]?.[1]) await redis.hset(key, 'failingSince', String(now));
      return { failures, failingSince: since };
    },
    /** Stops polling the feed; the reason is shown by `herald feeds list` and the API. */
    async disable(feedId: string, reason: string, now: number) {
      await redis.hset(stateKey(prefix, feedId), { disabledAt: String(now), disabledReason: reason });
      await redis.zrem(dueKey(prefix), feedId);
    },
    /** Counts new stories of a fetch on the day they arrived; days past the retention are dropped in the same step. */
    async recordItems(feedId: string, created: number, now: number) {
      const day = Math.floor(now / DAY_MS);
      const key = itemsKey(prefix, feedId);
      // One slot ({f:<id>}): the day's count and the feed's last new item in one transaction.
      const tx = redis.multi().hincrby(key, String(day), created).hset(stateKey(prefix, feedId), 'lastNewItemAt', String(now));
      const stale = Array.from({ length: 7 }, (_, i) => String(day - ITEMS_PER_DAY_RETENTION_DAYS - i));
      tx.hdel(key, ...stale);
      await tx.exec();
    },
    /** New stories per UTC day for the last `days` days, oldest first (today last). */
    async itemsPerDay(feedId: string, days: number, now: number): Promise<number[]> {
      const today = Math.floor(now / DAY_MS);
      const fields = Array.from({ length: days }, (_, i) => String(today - days + 1 + i));
      const raw = await redis.hmget(itemsKey(prefix, feedId), ...fields);
      return raw.map((v) => Number(v ?? 0));
    },
    /** Stops polling on the operator's word; `resume` undoes it. */
    async pause(feedId: string, now: number) {
      await this.disable(feedId, PAUSED_REASON, now);
      await redis.hdel(stateKey(prefix, feedId), 'nextCheckAt');
    },
    /** Puts a paused or disabled feed back on the schedule, due now; its failure count starts again. */
    async resume(feedId: string, now: number) {
      await redis.hdel(stateKey(prefix, feedId), 'disabledAt', 'disabledReason', 'failingSince');
      await redis.hset(stateKey(prefix, feedId), { consecutiveFailures: '0', nextCheckAt: String(now) });
      await redis.zadd(dueKey(prefix), now, feedId);
    },
    async setWebSub(feedId: string, ws: WebSubState | null) {
      if (ws) await redis.hset(stateKey(prefix, feedId), 'websub', JSON.stringify(ws));
      else await redis.hdel(stateKey(prefix, feedId), 'websub');
    },
  };
}
export type FeedStore = ReturnType<typeof createFeedStore>;
