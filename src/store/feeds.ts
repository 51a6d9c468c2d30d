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
/**
 * Set by `remove`: while it is there, the writes of a fetch (or WebSub delivery or callback) still under way for
 * the removed feed are refused, or they would recreate its state after `remove` deleted it, with no TTL. It sits
 * in the feed's own slot because the registry ({prefix}:feeds) does not: on a cluster a script cannot read the
 * registry and write the state, so the writing scripts check this mark instead, in the same step as their write.
 * (Left open: the same id added again while the old fetch still runs takes that fetch's outcome, the mark gone.)
 */
const removedKey = (prefix: string, feedId: string) => `${prefix}:{f:${feedId}}:removed`;
const DAY_MS = 86_400_000;
/**
 * How long the removal mark outlives the removal: far longer than anything that read the feed before it went
 * (a fetch is bounded by its lease, the fetch timeout + a minute), so removing leaves no key for ever. The same
 * id added again deletes the mark at once (`add`, `sync`).
 */
const REMOVED_MARK_MS = DAY_MS;
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
  /** The URL that gave etag and lastModified (the final one, after redirects): where they are sent. */
  validatorsUrl: string | null;
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

/** KEYS[1] the removal mark, KEYS[2] the state; ARGV field/value pairs. Writes them unless the feed was removed (1 if written). */
const UPDATE_STATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV))
return 1`;

/**
 * KEYS[1] the removal mark, KEYS[2] the state; ARGV[1] now, then field/value pairs. Counts a failure and answers
 * {failures, failingSince}, or nil for a removed feed. A run of failures starts now unless one is under way: a
 * success leaves failingSince '' (not absent), so HSETNX alone would keep the ''.
 */
const RECORD_FAILURE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
local failures = redis.call('HINCRBY', KEYS[2], 'consecutiveFailures', 1)
local since = redis.call('HGET', KEYS[2], 'failingSince')
if not since or since == '' then
  since = ARGV[1]
  redis.call('HSET', KEYS[2], 'failingSince', since)
end
return {failures, since}`;

/**
 * KEYS[1] the removal mark, KEYS[2] the items per day, KEYS[3] the state; ARGV[1] the day, ARGV[2] the count,
 * ARGV[3] now, then the days past retention to drop. Unless the feed was removed.
 */
const RECORD_ITEMS = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], 'lastNewItemAt', ARGV[3])
redis.call('HDEL', KEYS[2], unpack(ARGV, 4))
return 1`;

/**
 * KEYS[1] the registry; ARGV[1] a feed id, ARGV[2] its entry as the caller read it, ARGV[3] the new entry.
 * Replaces the entry only if it is still the one read (1 if replaced): a feed removed, or edited by a config
 * sync, since that read is left as it is now.
 */
const REPLACE_ENTRY = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1`;

/**
 * KEYS[1] the schedule; ARGV[1] a feed id, ARGV[2] its due time as the caller read it (before it read the feed's
 * state). Takes the feed off the schedule only if it is still due then (1 if removed). A resume since that read
 * has moved the due time (RESCHEDULE_NOW), and wins: the caller saw the feed disabled, but it no longer is. The
 * schedule and the state are in different slots, so the due time stands in for the state here.
 */
const UNSCHEDULE_IF_UNCHANGED = `
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at or tonumber(at) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1`;

/**
 * KEYS[1] the schedule; ARGV[1] a feed id, ARGV[2] now. Makes the feed due now, always at a time other than the
 * one it had (a millisecond earlier if it was due at exactly now), so that an UNSCHEDULE_IF_UNCHANGED based on a
 * read from before this resume can never match.
 */
const RESCHEDULE_NOW = `
local at = tonumber(ARGV[2])
local was = redis.call('ZSCORE', KEYS[1], ARGV[1])
if was and tonumber(was) == at then at = at - 1 end
redis.call('ZADD', KEYS[1], at, ARGV[1])
return at`;

export function createFeedStore(redis: RedisClient, prefix: string) {
  const acquireHostScript = defineScript(redis, 'heraldAcquireHost', 1, ACQUIRE_HOST);
  const updateStateScript = defineScript(redis, 'heraldUpdateFeedState', 2, UPDATE_STATE);
  const recordFailureScript = defineScript(redis, 'heraldRecordFeedFailure', 2, RECORD_FAILURE);
  const recordItemsScript = defineScript(redis, 'heraldRecordFeedItems', 3, RECORD_ITEMS);
  const replaceEntryScript = defineScript(redis, 'heraldReplaceFeedEntry', 1, REPLACE_ENTRY);
  const unscheduleIfScript = defineScript(redis, 'heraldUnscheduleFeedIfUnchanged', 1, UNSCHEDULE_IF_UNCHANGED);
  const rescheduleNowScript = defineScript(redis, 'heraldRescheduleFeedNow', 1, RESCHEDULE_NOW);
  const scheduledAt = async (feedId: string): Promise<number | null> => num((await redis.zscore(dueKey(prefix), feedId)) ?? undefined);
  /** Every write to a feed's state goes through here (deleting fields excepted): nothing for a removed feed. */
  const updateState = async (feedId: string, fields: Record<string, string>): Promise<boolean> =>
    (await updateStateScript(removedKey(prefix, feedId), stateKey(prefix, feedId), ...Object.entries(fields).flat())) === 1;
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
        // A feed removed since the last start comes back from the file: its state may be written again.
        if (!known) cmds.push(['del', removedKey(prefix, f.id)]);
        cmds.push(['zadd', dueKey(prefix), 'NX', now, f.id]);
      });
      await runCommands(redis, cmds);
    },
    /** Adds one feed (CLI); false when the id is taken. */
    async add(feed: FeedConfig, now: number): Promise<boolean> {
      const added = await redis.hsetnx(registryKey(prefix), feed.id, JSON.stringify(feed));
      if (added !== 1) return false;
      // Before it is due: an id removed within the day would otherwise have its first fetch's state refused.
      await redis.del(removedKey(prefix, feed.id));
      await redis.zadd(dueKey(prefix), now, feed.id);
      return true;
    },
    async remove(feedId: string): Promise<boolean> {
      // Read before the feed goes: a fetch marks itself running only after it has read the feed (ingestFeed), so
      // one not marked here either finds no feed or is already past that read.
      const [feed, fetching] = await Promise.all([this.get(feedId), redis.exists(fetchingKey(prefix, feedId))]);
      const removed = await redis.hdel(registryKey(prefix), feedId);
      await redis.zrem(dueKey(prefix), feedId);
      // Mark and delete in one step: a fetch's write landing between a delete and a later mark would stay for ever.
      await redis.multi().set(removedKey(prefix, feedId), '1', 'PX', REMOVED_MARK_MS).del(stateKey(prefix, feedId), itemsKey(prefix, feedId)).exec();
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
    /** The URL a permanent redirect taught; nothing if the feed was removed (or its entry changed) meanwhile. */
    async updateUrl(feedId: string, url: string) {
      const entry = await redis.hget(registryKey(prefix), feedId);
      if (entry) await replaceEntryScript(registryKey(prefix), feedId, entry, JSON.stringify({ ...(JSON.parse(entry) as FeedConfig), url }));
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
      // XX: a feed removed meanwhile is not put back on the schedule.
      await redis.zadd(dueKey(prefix), 'XX', at, feedId);
      await updateState(feedId, { nextCheckAt: String(at) });
    },
    /** When the feed is due (null: not on the schedule). Read it before the state a later `unschedule` acts on. */
    scheduledAt,
    /**
     * Takes the feed off the schedule (a disabled feed re-added by a config sync) if it is still due at
     * `seenAt`, read before the state that showed it disabled: a resume in between keeps it scheduled.
     */
    async unschedule(feedId: string, seenAt: number | null) {
      // Not scheduled when read: whatever put it back since (a sync, a resume) did so after the state was read.
      if (seenAt !== null) await unscheduleIfScript(dueKey(prefix), feedId, String(seenAt));
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
        validatorsUrl: str(h.validatorsUrl),
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
      r: { status: number; etag: string | null; lastModified: string | null; validatorsUrl?: string; title?: string; format?: string; lastItemAt?: number | null; cadenceMs?: number | null },
      now: number,
    ) {
      const fields: Record<string, string> = {
        etag: r.etag ?? '',
        lastModified: r.lastModified ?? '',
        validatorsUrl: r.validatorsUrl ?? '',
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
      await updateState(feedId, fields);
    },
    /** Counts the failure and returns the feed's failure run (count and start); null when the feed was removed meanwhile. */
    async recordFailure(feedId: string, e: { code: string; message: string; status: number | null }, now: number): Promise<{ failures: number; failingSince: number } | null> {
      const fields = { lastError: e.message.slice(0, 500), lastErrorCode: e.code, lastErrorAt: String(now), lastStatus: e.status === null ? '' : String(e.status), lastCheckAt: String(now) };
      const res = (await recordFailureScript(removedKey(prefix, feedId), stateKey(prefix, feedId), String(now), ...Object.entries(fields).flat())) as [number, string] | null;
      return res ? { failures: Number(res[0]), failingSince: Number(res[1]) } : null;
    },
    /** Stops polling the feed; the reason is shown by `herald feeds list` and the API. */
    async disable(feedId: string, reason: string, now: number) {
      // The due time is read before the state write: a resume after that write moves it, and the removal below
      // then leaves the resumed feed on the schedule (a plain ZREM took it off for good: enabled, never polled).
      const seenAt = await scheduledAt(feedId);
      await updateState(feedId, { disabledAt: String(now), disabledReason: reason });
      await this.unschedule(feedId, seenAt);
    },
    /** Counts new stories of a fetch on the day they arrived; days past the retention are dropped in the same step. */
    async recordItems(feedId: string, created: number, now: number) {
      const day = Math.floor(now / DAY_MS);
      const stale = Array.from({ length: 7 }, (_, i) => String(day - ITEMS_PER_DAY_RETENTION_DAYS - i));
      // One slot ({f:<id>}): the day's count and the feed's last new item in one step.
      await recordItemsScript(removedKey(prefix, feedId), itemsKey(prefix, feedId), stateKey(prefix, feedId), String(day), created, String(now), ...stale);
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
      // Before the disable: a resume right after it writes its own nextCheckAt, which this must not delete.
      await redis.hdel(stateKey(prefix, feedId), 'nextCheckAt');
      await this.disable(feedId, PAUSED_REASON, now);
    },
    /** Puts a paused or disabled feed back on the schedule, due now; its failure count starts again. */
    async resume(feedId: string, now: number) {
      await redis.hdel(stateKey(prefix, feedId), 'disabledAt', 'disabledReason', 'failingSince');
      // A feed removed meanwhile is not put back on the schedule.
      if (await updateState(feedId, { consecutiveFailures: '0', nextCheckAt: String(now) })) await rescheduleNowScript(dueKey(prefix), feedId, String(now));
    },
    async setWebSub(feedId: string, ws: WebSubState | null) {
      if (ws) await updateState(feedId, { websub: JSON.stringify(ws) });
      else await redis.hdel(stateKey(prefix, feedId), 'websub');
    },
  };
}
export type FeedStore = ReturnType<typeof createFeedStore>;
