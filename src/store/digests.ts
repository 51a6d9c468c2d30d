import type { DigestView } from '../model.ts';
import { defineScript, scanKeys, type RedisClient } from './redis.ts';

/**
 * Owns digest scheduling: one sorted set of subscribers by their next digest time (so the minute sweep
 * costs O(due), not O(subscribers)), and per subscriber the digest window and one record per local date.
 */
const dueKey = (prefix: string) => `${prefix}:digest:due`;
const stateKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:digest`;
const sentKey = (prefix: string, subscriberId: string, localDate: string) => `${prefix}:{s:${subscriberId}}:digest:${localDate}`;

const viewKey = (prefix: string, subscriberId: string, localDate: string) => `${prefix}:{s:${subscriberId}}:digest:${localDate}:view`;

const SENT_RECORD_TTL_SECONDS = 60 * 60 * 24 * 40;
/**
 * How long a digest's page can be opened. Only digests with more stories than the email lists keep one,
 * as story ids (about 25 bytes each); the stories themselves are read when the page is opened.
 */
export const DIGEST_VIEW_TTL_SECONDS = 60 * 60 * 24 * 8;
/**
 * KEYS[1] the date's record, KEYS[2] the digest state, then the reader's hashes a send reads (profile first, as
 * `subscribers.forSendKeys` names them): claims the date and answers the window start and those hashes with it, one
 * command where a reading and a claim were two. Answers {2} when the reader is gone (no profile id: nothing claimed), {0} when the
 * date already ended, else {1, window start, the hashes' HGETALLs}.
 */
const CLAIM_DATE = `
if redis.call('HEXISTS', KEYS[3], 'id') == 0 then return {2} end
local s = redis.call('HGET', KEYS[1], 'status')
if s == 'sent' or s == 'skipped' then return {0} end
redis.call('HSET', KEYS[1], 'status', 'sending', 'jobId', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local reads = {}
for i = 3, #KEYS do reads[#reads + 1] = redis.call('HGETALL', KEYS[i]) end
return {1, redis.call('HGET', KEYS[2], 'windowStart') or '', reads}`;
/**
 * KEYS[1] the date's record, KEYS[2] the subscriber's digest state, KEYS[3] (given when the digest went out) the
 * reader's profile, whose count of consecutive hard bounces a delivered mail clears, as
 * `subscribers.recordEmailDelivered` does (one command less per digest); ARGV status, at, window end. The window
 * only moves forward: two digests of one reader can be in flight together (a catch-up still retrying when the day's
 * is due), and the one that read the log first, confirmed last, put the window back over stories already sent.
 */
const COMPLETE = `
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'at', ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[2], 'windowStart'))
if not current or tonumber(ARGV[3]) > current then redis.call('HSET', KEYS[2], 'windowStart', ARGV[3]) end
if KEYS[3] then redis.call('HDEL', KEYS[3], 'emailBounces') end
return 1`;

/**
 * KEYS[1] the due set; ARGV triples: subscriber, the due time the sweep read, their next. Moves each entry only while
 * it still holds that due time: a settings save between the sweep's read and this write (digest off, another time)
 * has already rescheduled or removed it, and the sweep's next, from the settings it read, must not undo that.
 * One call for a sweep's whole batch: the due set is one key, and a call per reader cost the dispatcher a command's
 * client work per digest.
 */
const MOVE_DUE = `
for i = 1, #ARGV, 3 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) == tonumber(ARGV[i + 1]) then redis.call('ZADD', KEYS[1], ARGV[i + 2], ARGV[i]) end
end
return 0`;

/** Triples per MOVE_DUE call: a sweep batch's worth, bounded so one call never holds Redis for long. */
const MOVES_PER_CALL = 1000;

export function createDigestStore(redis: RedisClient, prefix: string) {
  // Key counts vary (the reader's hashes, the profile on a delivered digest): given per call.
  const claimDateScript = defineScript(redis, 'heraldClaimDigestDate', null, CLAIM_DATE);
  const completeScript = defineScript(redis, 'heraldCompleteDigest', null, COMPLETE);
  const moveDueScript = defineScript(redis, 'heraldMoveDigestDue', 1, MOVE_DUE);
  return {
    /**
     * Due at `dueAt`, computed under `clock` (zone and time), which is kept when given: it names the local date the entry is for
     * when the reader saves another zone, whose own clock may show another date at that instant (see rescheduleDigest).
     */
    async schedule(subscriberId: string, dueAt: number, clock?: { zone: string; time: string }) {
      // Without one, a clock kept for an earlier entry must not describe this one.
      if (clock) await redis.hset(stateKey(prefix, subscriberId), { dueZone: clock.zone, dueTime: clock.time });
      else await redis.hdel(stateKey(prefix, subscriberId), 'dueZone', 'dueTime');
      await redis.zadd(dueKey(prefix), dueAt, subscriberId);
    },
    /** The zone and time the due entry was last scheduled under; null for an entry scheduled before they were kept. */
    async scheduledClock(subscriberId: string): Promise<{ zone: string; time: string } | null> {
      const [zone, time] = await redis.hmget(stateKey(prefix, subscriberId), 'dueZone', 'dueTime');
      return zone && time ? { zone, time } : null;
    },
    /** The sweep's moves to each reader's next digest time: each only if still due at `from` (see MOVE_DUE). */
    async moveDue(moves: readonly { subscriberId: string; from: number; to: number }[]): Promise<void> {
      for (let i = 0; i < moves.length; i += MOVES_PER_CALL) {
        await moveDueScript(dueKey(prefix), ...moves.slice(i, i + MOVES_PER_CALL).flatMap((m) => [m.subscriberId, String(m.from), String(m.to)]));
      }
    },
    async unschedule(subscriberId: string) {
      await redis.zrem(dueKey(prefix), subscriberId);
    },
    async due(now: number, limit: number): Promise<{ subscriberId: string; dueAt: number }[]> {
      const flat = await redis.zrangebyscore(dueKey(prefix), '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit);
      const out: { subscriberId: string; dueAt: number }[] = [];
      for (let i = 0; i < flat.length; i += 2) out.push({ subscriberId: flat[i]!, dueAt: Number(flat[i + 1]) });
      return out;
    },
    async dueAt(subscriberId: string): Promise<number | null> {
      const s = await redis.zscore(dueKey(prefix), subscriberId);
      return s === null ? null : Number(s);
    },
    /** Start of the window the next digest covers (end of the last confirmed one). */
    async windowStart(subscriberId: string): Promise<number | null> {
      const v = await redis.hget(stateKey(prefix, subscriberId), 'windowStart');
      return v === null ? null : Number(v);
    },
    async initWindow(subscriberId: string, start: number) {
      await redis.hsetnx(stateKey(prefix, subscriberId), 'windowStart', String(start));
    },
    /**
     * Claims the digest of one local date for a reader who exists (`readKeys`: their hashes a send reads, profile
     * first, from `subscribers.forSendKeys`). `gone` when the profile does not exist (nothing claimed); `claimed`
     * false when the date was already sent or skipped; else the start of the window it covers (as `windowStart`
     * answers) and the hashes (for `subscribers.forSendOf`), read in the same command.
     */
    async claimDate(subscriberId: string, localDate: string, jobId: string, readKeys: readonly string[]): Promise<{ claimed: false; gone: boolean } | { claimed: true; windowStart: number | null; reads: string[][] }> {
      const [ok, start, reads] = (await claimDateScript(2 + readKeys.length, sentKey(prefix, subscriberId, localDate), stateKey(prefix, subscriberId), ...readKeys, jobId, SENT_RECORD_TTL_SECONDS)) as [number, string | undefined, string[][] | undefined];
      return ok === 1 ? { claimed: true, windowStart: start ? Number(start) : null, reads: reads ?? [] } : { claimed: false, gone: ok === 2 };
    },
    /**
     * Records the outcome and moves the window: only after the send is confirmed, so a failed send
     * leaves the stories for the retry. One script over the subscriber's own keys (one slot): atomic like
     * a MULTI, and one command that auto-pipelining batches with other jobs' (a MULTI is a write of its own).
     * `deliveredProfileKey`: the reader's profile, given when the digest reached their address (see COMPLETE).
     */
    async complete(subscriberId: string, localDate: string, status: 'sent' | 'skipped', windowEnd: number, now: number, deliveredProfileKey?: string) {
      const keys = [sentKey(prefix, subscriberId, localDate), stateKey(prefix, subscriberId), ...(deliveredProfileKey ? [deliveredProfileKey] : [])];
      await completeScript(keys.length, ...keys, status, String(now), String(windowEnd));
    },
    /** Unschedules and deletes the subscriber's digest window and per-date records. */
    async forgetSubscriber(subscriberId: string) {
      await redis.zrem(dueKey(prefix), subscriberId);
      await redis.del(stateKey(prefix, subscriberId));
      // The records share the subscriber's slot, so one UNLINK per batch stays in one slot.
      await scanKeys(redis, `${prefix}:{s:${subscriberId}}:digest:*`, (found, node) => node.unlink(...found));
    },
    /** A refused send: recorded with its reason; the window stays so the stories wait for the next digest. */
    async fail(subscriberId: string, localDate: string, reason: string, now: number) {
      await redis.hset(sentKey(prefix, subscriberId, localDate), { status: 'failed', reason: reason.slice(0, 500), at: String(now) });
    },
    /** Keeps what a digest listed, for its page; a retry of the same date's digest replaces it. */
    async saveView(subscriberId: string, localDate: string, view: DigestView) {
      await redis.set(viewKey(prefix, subscriberId, localDate), JSON.stringify(view), 'EX', DIGEST_VIEW_TTL_SECONDS);
    },
    async view(subscriberId: string, localDate: string): Promise<DigestView | null> {
      const raw = await redis.get(viewKey(prefix, subscriberId, localDate));
      return raw === null ? null : (JSON.parse(raw) as DigestView);
    },
    /** Something the reader or operator should know about their digest (e.g. an unknown stored time zone). */
    async noteProblem(subscriberId: string, problem: string | null) {
      if (problem === null) await redis.hdel(stateKey(prefix, subscriberId), 'problem');
      else await redis.hset(stateKey(prefix, subscriberId), 'problem', problem.slice(0, 300));
    },
    async state(subscriberId: string): Promise<{ windowStart: number | null; problem: string | null }> {
      const h = await redis.hgetall(stateKey(prefix, subscriberId));
      return { windowStart: h.windowStart ? Number(h.windowStart) : null, problem: h.problem ?? null };
    },
    async record(subscriberId: string, localDate: string): Promise<Record<string, string>> {
      return redis.hgetall(sentKey(prefix, subscriberId, localDate));
    },
  };
}
export type DigestStore = ReturnType<typeof createDigestStore>;
