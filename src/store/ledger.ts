import { perTurn } from './per-turn.ts';
import { chunksOf, defineScript, FIELDS_PER_CALL, hashFromFlat, runCommands, scanKeys, type RedisClient } from './redis.ts';
import type { Channel } from '../model.ts';

/**
 * Owns the delivery ledger: one hash per (subscriber, story, channel), each subscriber's inbox, held
 * alerts and daily push count, and the per-topic delivery counters. All keys of one subscriber carry the
 * tag {s:<id>}, so every script here touches one Cluster slot; the per-topic counters ({t:<id>}) are
 * written by a separate command after the record's own transition, never inside the same script. While a story's
 * fan-out is under way, the records it opens are noted in the story's slot ({st:<id>}).
 */
export const alertKey = (prefix: string, subscriberId: string, storyId: string, channel: Channel) =>
  `${prefix}:{s:${subscriberId}}:alert:${storyId}:${channel}`;
const inboxKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:inbox`;
const inboxItemsKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:inbox:items`;
const heldKey = (prefix: string, subscriberId: string, bucket: HeldBucket) => `${prefix}:{s:${subscriberId}}:held:${bucket}`;
const pushCountKey = (prefix: string, subscriberId: string, localDate: string) => `${prefix}:{s:${subscriberId}}:pushcount:${localDate}`;
const lastPushKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:lastpush`;
/** `<time> <alert key>`: the reader's push that a claim is sending now, for the burst rule before it is sent (CLAIM_READ). */
const pushingKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:pushing`;
const bundleLeaseKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:bundling`;
/**
 * The reader's bundles of pushes held by quiet hours, by release time (member: the bundle id): what a change of their
 * quiet hours must bring forward. A bundle's job id names the release time it was first given, not its current one.
 */
const quietBundlesKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:bundles:quiet`;
/** A story's fan-out under way: `<subscriber> <channel>` of each record its classification opens (see `noteFanOut`). */
const fanOutKey = (prefix: string, storyId: string) => `${prefix}:{st:${storyId}}:fanout`;
/** As long as a failed classification is kept: it can be retried from the console until then. */
const FAN_OUT_KEPT_SECONDS = 7 * 24 * 60 * 60;

/**
 * Time index of the ledger: per UTC day, sorted sets of `<subscriber> <story> <channel>` by creation time,
 * spread over LEDGER_DAY_SHARDS keys so a busy day is not one hot Cluster slot. Written by a separate
 * command after the record's own script (another slot), so it is the export's index, never the truth.
 */
export const LEDGER_DAY_SHARDS = 8;
export const LEDGER_INDEX_RETENTION_DAYS = 35;
const DAY_MS = 86_400_000;
const ledgerDayKey = (prefix: string, day: number, shard: number) => `${prefix}:ledger:{ld:${day}:${shard}}`;
const shardOf = (subscriberId: string) => {
  let h = 0;
  for (let i = 0; i < subscriberId.length; i++) h = (h * 31 + subscriberId.charCodeAt(i)) >>> 0;
  return h % LEDGER_DAY_SHARDS;
};
export interface LedgerEntry extends DeliveryRecord {
  subscriberId: string;
  storyId: string;
  channel: Channel;
}

export const topicStatsKey = (prefix: string, topicId: string) => `${prefix}:{t:${topicId}}:delivery`;
/**
 * How long a deleted alert's counters stay as an expiring marker (see forgetTopicStats): longer than any delivery job
 * of the alert can still be running or retrying (days at most), so no late count outlives it.
 */
const FORGOTTEN_STATS_TTL_MS = 14 * 86_400_000;
/** KEYS[1] a topic's counters; ARGV[1] now, ARGV[2] TTL (ms): the counts go, an expiring marker stays. */
const FORGET_STATS = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'forgottenAt', ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1`;

/**
 * queued: waiting for its first or next attempt; sending: claimed by a worker; held: kept back by quiet
 * hours or a burst and waiting for the bundle; sent / failed (permanent) / skipped (with a reason) are final.
 */
export type DeliveryStatus = 'queued' | 'sending' | 'held' | 'sent' | 'failed' | 'skipped';
export type FinalStatus = 'sent' | 'failed' | 'skipped';
export const FINAL_STATUSES: readonly DeliveryStatus[] = ['sent', 'failed', 'skipped'];
export type SkipReason = 'quiet-hours' | 'cap' | 'muted' | 'already-pushed' | 'no-device' | 'no-email' | 'email-disabled' | 'rolled-into-digest' | 'story-gone';
/** bundle: sent as one notification when quiet hours or a burst window end; digest: goes into the next digest. */
export type HeldBucket = 'bundle' | 'digest';
export const INBOX_LIMIT = 200;
const DAY_SECONDS = 24 * 60 * 60;

/**
 * Claims a delivery for one attempt. A record that already ended is never claimed again: that is what
 * makes a retried or re-run job unable to send twice. A record left in "sending" by a worker that died is
 * claimed again (counted in `reclaims`): whether that earlier attempt reached the service is unknowable,
 * so the resend carries the same Topic header / Message-ID for the receiver to collapse.
 * A "sending" record claimed by another job less than ARGV[4] ms ago (the job lock) is left to it: that
 * attempt may be alive and sending, and two live claims of one alert are how it went out twice. The same
 * job takes its own claim over at once: BullMQ runs one attempt of a job at a time, so the earlier one ended.
 * The claimed answer carries the new `attempts`, the claim's token for `requeue`.
 */
const claimLua = (ended: string, claimed: string, before = '') => `${before}
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'sent' or status == 'failed' or status == 'skipped' or status == 'held' then return ${ended} end
if status == 'sending' then
  local fresh = tonumber(ARGV[3]) - tonumber(redis.call('HGET', KEYS[1], 'updatedAt') or '0') < tonumber(ARGV[4])
  if fresh and redis.call('HGET', KEYS[1], 'jobId') ~= ARGV[1] then return ${ended} end
  redis.call('HINCRBY', KEYS[1], 'reclaims', 1)
end
redis.call('HSET', KEYS[1], 'status', 'sending', 'jobId', ARGV[1], 'topicId', ARGV[2], 'updatedAt', ARGV[3])
local res = 'claimed'
if redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[3]) == 1 then res = 'created' end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return ${claimed}`;
const CLAIM = claimLua('{status}', '{res, attempt}');
/**
 * The claim of a push attempt, answering also what the attempt reads next (the record as claimed, KEYS[2] the
 * subscriber's last push time, KEYS[3..5] the caller's three hashes in the same slot: the subscriber's
 * profile, devices and follows): one command instead of four per alert at fan-out volume.
 * `false`, not nil, for a missing last push: a nil would end the Lua table there.
 *
 * With a burst window (ARGV[5] ms, 0: none), the claim also takes the reader's "pushing" mark (KEYS[6]) when no push
 * went out within the window: the last push time was written only once a push was sent, so matches claimed side by
 * side (stories classified together: the burst itself) all read "no push yet" and each went out alone. A mark of
 * another alert within the window answers as the last push instead, and that claim holds for the burst. The mark
 * is dropped (`dropPushing`) when its claim ends without sending; a sent one is overtaken by the last push time.
 */
const CLAIM_READ = claimLua(
  '{status}',
  "{res, redis.call('HGETALL', KEYS[1]), burstLast(), redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[5])}",
  `
local function burstLast()
  local last = redis.call('GET', KEYS[2])
  local window = tonumber(ARGV[5] or '0')
  if window <= 0 then return last or false end
  local now = tonumber(ARGV[3])
  if last and now - tonumber(last) < window then return last end
  local mark = redis.call('GET', KEYS[6])
  if mark then
    local sp = string.find(mark, ' ', 1, true)
    local at = string.sub(mark, 1, sp - 1)
    if string.sub(mark, sp + 1) ~= KEYS[1] and now - tonumber(at) < window then return at end
  end
  -- Kept for the window only (a mark past it reads as none anyway): no key per reader left for a day.
  redis.call('SET', KEYS[6], ARGV[3] .. ' ' .. KEYS[1], 'PX', window)
  return last or false
end`,
);

/** Drops the reader's "pushing" mark (KEYS[1]) while it is the alert's (ARGV[1], its record key). */
const DROP_PUSHING = `
local mark = redis.call('GET', KEYS[1])
if mark and string.sub(mark, string.find(mark, ' ', 1, true) + 1) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * A transient failure of one attempt: the record waits for the next one, the error kept. Only while the
 * record is still that attempt's claim (ARGV[1] job, ARGV[2] attempts at its claim): a late failure of an
 * attempt another one took over, or of a send that has since ended, must not reopen the record (it was
 * then claimed and sent again, and `sent` counted twice).
 */
const REQUEUE = `
local r = redis.call('HMGET', KEYS[1], 'status', 'jobId', 'attempts')
if r[1] ~= 'sending' or r[2] ~= ARGV[1] or r[3] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'lastError', ARGV[3], 'updatedAt', ARGV[4])
if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[1], 'reclaims', 1) end
return 1`;

/**
 * The attempt that holds the claim (ARGV[1] job, ARGV[2] attempts at its claim) is still at work: the claim's time
 * moves to ARGV[3], so that other jobs keep leaving it alone (CLAIM). 0 when the record is no longer that claim.
 */
const RENEW = `
if redis.call('HGET', KEYS[1], 'status') ~= 'sending' or redis.call('HGET', KEYS[1], 'jobId') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[3])
return 1`;

/** Opens a record as "queued" when its job is enqueued; a record that exists (a re-classified story) is left as it is. */
const OPEN = `
if redis.call('HSETNX', KEYS[1], 'status', 'queued') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'jobId', ARGV[1], 'topicId', ARGV[2], 'createdAt', ARGV[3], 'updatedAt', ARGV[3], 'attempts', 0)
return 1`;

/**
 * The move of KEYS[1] to a final status, shared by FINISH and FINISH_SENT: the script returns 0 when the
 * record had already ended; else the status is set, each optional field written when its argument is not
 * empty, and `created` says whether the record was new.
 */
const finishStepLua = (status: string, at: string, optional: Record<string, string>) => `
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'sent' or status == 'failed' or status == 'skipped' then return 0 end
redis.call('HSET', KEYS[1], 'status', ${status}, 'updatedAt', ${at})
local created = redis.call('HSETNX', KEYS[1], 'createdAt', ${at})
${Object.entries(optional).map(([field, arg]) => `if ${arg} ~= '' then redis.call('HSET', KEYS[1], '${field}', ${arg}) end`).join('\n')}`;

/**
 * Moves a record to a final status once; returns 1 only for the transition (2 when it also created the record), so
 * counters count it once. ARGV[7], when not empty: only a record in that status moves.
 */
const FINISH = `
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'status') ~= ARGV[7] then return 0 end
${finishStepLua('ARGV[1]', 'ARGV[2]', { reason: 'ARGV[3]', lastError: 'ARGV[4]', via: 'ARGV[5]', topicId: 'ARGV[6]' })}
if created == 1 then return 2 end
return 1`;

/** Keeps the newest `limit` entries of the inbox, the trimmed ones' bodies going with them; leaves them in `over`. */
const inboxTrimLua = (k: { index: string; items: string; limit: string }) => `
local over = redis.call('ZRANGE', ${k.index}, 0, -(tonumber(${k.limit}) + 1))
if #over > 0 then
  redis.call('ZREMRANGEBYRANK', ${k.index}, 0, -(tonumber(${k.limit}) + 1))
  redis.call('HDEL', ${k.items}, unpack(over))
end`;

/**
 * The inbox step, shared by INBOX_ADD and FINISH_SENT: the entry added under `member` (its JSON body in the
 * items hash), then entries past the newest `limit` trimmed with their bodies; leaves them in `over`.
 */
const inboxAddLua = (k: { index: string; items: string; at: string; member: string; limit: string; item: string }) => `
redis.call('ZADD', ${k.index}, ${k.at}, ${k.member})
redis.call('HSET', ${k.items}, ${k.member}, ${k.item})
${inboxTrimLua(k)}`;

/**
 * A push alert that reached its devices, in one step: every reached device marked (ARGV[8..]), the record
 * moved to sent once (FINISH's rule and answer), the last push time (KEYS[2]) set, and the alert added to
 * the inbox (KEYS[3], KEYS[4]; INBOX_ADD's rule). ARGV: now, error, topicId, last-push TTL, inbox member,
 * inbox limit, inbox item JSON.
 */
const FINISH_SENT = `
${finishStepLua("'sent'", 'ARGV[1]', { lastError: 'ARGV[2]', topicId: 'ARGV[3]' })}
for i = 8, #ARGV do redis.call('HSET', KEYS[1], 'dev:' .. ARGV[i], '1') end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
${inboxAddLua({ index: 'KEYS[3]', items: 'KEYS[4]', at: 'ARGV[1]', member: 'ARGV[5]', limit: 'ARGV[6]', item: 'ARGV[7]' })}
if created == 1 then return 2 end
return 1`;

/**
 * Notes quiet-hours bundles (`key`, scored by release time) from the (release time, bundle id) pairs of ARGV[first..]:
 * those released more than a day before `now` are dropped, and the set expires two days after its last note.
 */
const noteQuietBundlesLua = (key: string, now: string, first: number) => `
redis.call('ZADD', ${key}, unpack(ARGV, ${first}))
redis.call('ZREMRANGEBYSCORE', ${key}, '-inf', '(' .. (tonumber(${now}) - ${DAY_MS}))
redis.call('PEXPIRE', ${key}, ${2 * DAY_MS})`;

/**
 * Holds an alert: the record becomes "held" and the story joins the subscriber's held set, atomically (2: the record
 * is new). ARGV[5], ARGV[6]: the release time and id of the quiet-hours bundle it waits for, noted in KEYS[3].
 */
const HOLD = `
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'sent' or status == 'failed' or status == 'skipped' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'held', 'reason', ARGV[1], 'updatedAt', ARGV[2], 'topicId', ARGV[4])
local created = redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if ARGV[5] then
${noteQuietBundlesLua('KEYS[3]', 'ARGV[2]', 5)}
end
if created == 1 then return 2 end
return 1`;

/** Notes quiet-hours bundles in KEYS[1]: ARGV[1] now, then (release time, bundle id) pairs. */
const NOTE_QUIET_BUNDLES = noteQuietBundlesLua('KEYS[1]', 'ARGV[1]', 2);

/**
 * Adds an alert to the subscriber's inbox and keeps the newest ARGV[3] entries (the trimmed ones' bodies go
 * with them): one script, so an alert and the trim are one step whatever else writes the inbox.
 */
const INBOX_ADD = `
${inboxAddLua({ index: 'KEYS[1]', items: 'KEYS[2]', at: 'ARGV[1]', member: 'ARGV[2]', limit: 'ARGV[3]', item: 'ARGV[4]' })}
return #over`;

/**
 * Releases held alerts after the bundle or digest carrying them went out: for each record (KEYS[4..]) whose
 * story, topic and inbox JSON are the ARGV triple at 7 + 3(i-1), one step: the record ends once (FINISH's
 * rule: 0 when it had already ended, 2 when it was new), its story leaves the held set (KEYS[1]) either way,
 * and the inbox (KEYS[2], KEYS[3]) gets its entry when the record ended here and one was given. The inbox is
 * trimmed to ARGV[5] once, not per alert. ARGV[1..4]: status, now, reason, via; ARGV[6]: error.
 */
const RELEASE = `
local out = {}
local added = 0
for i = 4, #KEYS do
  local a = 7 + (i - 4) * 3
  local story, topic, item = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local status = redis.call('HGET', KEYS[i], 'status')
  local moved = 0
  if status ~= 'sent' and status ~= 'failed' and status ~= 'skipped' then
    redis.call('HSET', KEYS[i], 'status', ARGV[1], 'updatedAt', ARGV[2])
    if ARGV[3] ~= '' then redis.call('HSET', KEYS[i], 'reason', ARGV[3]) end
    if ARGV[4] ~= '' then redis.call('HSET', KEYS[i], 'via', ARGV[4]) end
    if ARGV[6] ~= '' then redis.call('HSET', KEYS[i], 'lastError', ARGV[6]) end
    if topic ~= '' then redis.call('HSET', KEYS[i], 'topicId', topic) end
    moved = 1
    if redis.call('HSETNX', KEYS[i], 'createdAt', ARGV[2]) == 1 then moved = 2 end
    if item ~= '' then
      redis.call('ZADD', KEYS[2], ARGV[2], story .. ':push')
      redis.call('HSET', KEYS[3], story .. ':push', item)
      added = added + 1
    end
  end
  redis.call('ZREM', KEYS[1], story)
  out[#out + 1] = moved
end
if added > 0 then
${inboxTrimLua({ index: 'KEYS[2]', items: 'KEYS[3]', limit: 'ARGV[5]' })}
end
return out`;
/**
 * BullMQ gave up on the job of this record (ARGV[1]): the record ends as failed with ARGV[2] as its error, when it
 * still waits for that job: "queued" (the last attempt's transient failure), or "sending" under that job's claim
 * (an attempt that died). Another job's claim, a held record or an ended one is left alone (0).
 */
const GIVE_UP = `
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and not (status == 'sending' and redis.call('HGET', KEYS[1], 'jobId') == ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'lastError', ARGV[2], 'updatedAt', ARGV[3])
return 1`;

/**
 * The subscriber's bundle lease (KEYS[1]) for ARGV[1], for ARGV[2] ms: taken (0) when free or already this owner's
 * (a retry of the same bundle), else the milliseconds until it frees.
 */
const BUNDLE_LEASE = `
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return math.max(1, redis.call('PTTL', KEYS[1])) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0`;

/** Gives the lease up, only while ARGV[1] holds it (a lease that expired may be another bundle's now). */
const BUNDLE_UNLEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`;

/** Held alerts per RELEASE script: a bounded time for which one script holds Redis, and few round trips. */
const RELEASE_CHUNK = 500;

/** The status field of each record in KEYS (false where there is none: a nil would end the Lua table). */
const STATUSES = `
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], 'status') end
return out`;

/**
 * Reserves one of the day's pushes (KEYS[1], expiring after two days) under the cap for the alert KEYS[2], once:
 * the slot is marked on the record (capSlot, the local date), and an alert that holds one keeps it without taking
 * another. Marked on the record rather than inferred from the attempt count, since an attempt that broke off after
 * its claim and before the cap left its retry counted as no first attempt, and that retry was pushed uncapped.
 */
const RESERVE_PUSH = `
if redis.call('HEXISTS', KEYS[2], 'capSlot') == 1 then return 1 end
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'capSlot', ARGV[3])
return 1`;

export interface DeliveryRecord {
  status: DeliveryStatus;
  reason: string | null;
  attempts: number;
  reclaims: number;
  jobId: string;
  topicId: string;
  lastError: string | null;
  /** For an alert delivered inside a bundle or a digest: which one. */
  via: string | null;
  createdAt: number;
  updatedAt: number;
  clickedAt: number | null;
  /** Push: device ids the alert already reached, so a retry skips them. */
  devicesDone: string[];
}

export interface InboxItem {
  storyId: string;
  title: string;
  url: string;
  topicId: string;
  why: string;
  channel: Channel;
  at: number;
  read: boolean;
}

/** A bundle of pushes held by quiet hours: its id (that of its job) and when it is due. */
export interface QuietBundle {
  bundleId: string;
  releaseAt: number;
}

export interface HeldAlert {
  storyId: string;
  topicId: string;
  at: number;
}

export type ChannelStats = { sent: number; failed: number; skipped: number; clicked: number };
export type TopicStats = Record<Channel, ChannelStats>;

function toRecord(h: Record<string, string>): DeliveryRecord | null {
  if (!h.status) return null;
  return {
    status: h.status as DeliveryStatus,
    reason: h.reason ?? null,
    attempts: Number(h.attempts ?? 0),
    reclaims: Number(h.reclaims ?? 0),
    jobId: h.jobId ?? '',
    topicId: h.topicId ?? '',
    lastError: h.lastError ?? null,
    via: h.via ?? null,
    createdAt: Number(h.createdAt),
    updatedAt: Number(h.updatedAt),
    clickedAt: h.clickedAt ? Number(h.clickedAt) : null,
    devicesDone: Object.keys(h).filter((k) => k.startsWith('dev:')).map((k) => k.slice(4)),
  };
}

export function createLedger(redis: RedisClient, prefix: string) {
  const claimScript = defineScript(redis, 'heraldLedgerClaim', 1, CLAIM);
  const requeueScript = defineScript(redis, 'heraldLedgerRequeue', 1, REQUEUE);
  const renewScript = defineScript(redis, 'heraldLedgerRenew', 1, RENEW);
  // Its key count fixed: passed per call, ioredis Cluster's auto-pipelining failed these claims ("All keys in
  // the pipeline should belong to the same slots allocation group", the 3-master cluster test). Like every
  // script, defined here with the store: a command defined later, while an auto-pipeline of this client is
  // filling, is missing from that pipeline and breaks it.
  const claimReadScript = defineScript(redis, 'heraldLedgerClaimRead', 6, CLAIM_READ);
  const dropPushingScript = defineScript(redis, 'heraldLedgerDropPushing', 1, DROP_PUSHING);
  const finishSentScript = defineScript(redis, 'heraldLedgerFinishSent', 4, FINISH_SENT);
  const openScript = defineScript(redis, 'heraldLedgerOpen', 1, OPEN);
  const finishScript = defineScript(redis, 'heraldLedgerFinish', 1, FINISH);
  const holdScript = defineScript(redis, 'heraldLedgerHold', 3, HOLD);
  const noteQuietBundlesScript = defineScript(redis, 'heraldNoteQuietBundles', 1, NOTE_QUIET_BUNDLES);
  const reservePushScript = defineScript(redis, 'heraldReservePush', 2, RESERVE_PUSH);
  const inboxAddScript = defineScript(redis, 'heraldInboxAdd', 2, INBOX_ADD);
  const statusesScript = defineScript(redis, 'heraldLedgerStatuses', null, STATUSES);
  const releaseScript = defineScript(redis, 'heraldLedgerRelease', null, RELEASE);
  const giveUpScript = defineScript(redis, 'heraldLedgerGiveUp', 1, GIVE_UP);
  const bundleLeaseScript = defineScript(redis, 'heraldBundleLease', 1, BUNDLE_LEASE);
  const bundleUnleaseScript = defineScript(redis, 'heraldBundleUnlease', 1, BUNDLE_UNLEASE);
  const forgetStatsScript = defineScript(redis, 'heraldForgetStats', 1, FORGET_STATS);
  // Counts of one event-loop turn are summed: a batch's finish scripts come back in one pipelined reply, so
  // their counts go out as one HINCRBY per topic and field instead of one per alert.
  const countTurn = perTurn<{ key: string; field: string }>((events) => {
    const sums = new Map<string, { key: string; field: string; n: number }>();
    for (const { key, field } of events) {
      const c = sums.get(`${key} ${field}`);
      if (c) c.n++;
      else sums.set(`${key} ${field}`, { key, field, n: 1 });
    }
    return Promise.all([...sums.values()].map((c) => redis.hincrby(c.key, c.field, c.n)));
  });
  const bump = async (topicId: string, channel: Channel, field: keyof ChannelStats) => {
    if (topicId) await countTurn({ key: topicStatsKey(prefix, topicId), field: `${channel}:${field}` });
  };

  // The day index of new records, merged per turn: one ZADD of many members and one EXPIRE per index key,
  // not both commands for every alert. Plain commands, not a MULTI: a missing expire only keeps a key longer.
  const indexTurn = perTurn<{ key: string; at: number; member: string }>((entries) => {
    const byKey = new Map<string, (string | number)[]>();
    for (const e of entries) {
      const args = byKey.get(e.key);
      if (args) args.push(e.at, e.member);
      else byKey.set(e.key, [e.at, e.member]);
    }
    // A story reaching half a million followers puts tens of thousands of members in one turn: in slices.
    return Promise.all([...byKey].flatMap(([key, args]) => [
      ...chunksOf(args, 2 * FIELDS_PER_CALL).map((slice) => redis.zadd(key, 'NX', ...slice)),
      redis.expire(key, LEDGER_INDEX_RETENTION_DAYS * 24 * 3600),
    ]));
  });
  const index = (subscriberId: string, storyId: string, channel: Channel, at: number) =>
    indexTurn({ key: ledgerDayKey(prefix, Math.floor(at / DAY_MS), shardOf(subscriberId)), at, member: `${subscriberId} ${storyId} ${channel}` });

  const fanOutNoted = async (storyId: string): Promise<{ subscriberId: string; channel: Channel }[]> =>
    (await redis.smembers(fanOutKey(prefix, storyId))).map((m) => {
      const [subscriberId, channel] = m.split(' ') as [string, Channel];
      return { subscriberId, channel };
    });
  return {
    /**
     * `takeoverAfterMs`: how old another job's "sending" claim must be before this one takes it over (the job
     * lock, HERALD_JOB_LOCK_SECONDS: by then BullMQ has given a dead worker's job to another). `attempt` is
     * the claim's token for `requeue`.
     */
    async claim(subscriberId: string, storyId: string, channel: Channel, jobId: string, topicId: string, now: number, takeoverAfterMs: number): Promise<
      { claimed: false; status: DeliveryStatus } | { claimed: true; attempt: number }
    > {
      const [res, attempt] = (await claimScript(alertKey(prefix, subscriberId, storyId, channel), jobId, topicId, String(now), takeoverAfterMs)) as [string, number?];
      if (res !== 'claimed' && res !== 'created') return { claimed: false, status: res as DeliveryStatus };
      // Indexed once, by whichever script created the record.
      if (res === 'created') await index(subscriberId, storyId, channel, now);
      return { claimed: true, attempt: attempt! };
    },

    /**
     * `claim` for a push attempt, with the record as claimed and the subscriber's last push time (for the
     * burst rule) read in the same command, and the three hashes at `sendKeys` (`subscribers.forSendKeys`, in
     * the subscriber's slot), answered in `reads` in their order (for `subscribers.forSendOf`). The record's
     * `attempts` is the claim's token for `requeue`.
     */
    async claimPush(
      subscriberId: string, storyId: string, jobId: string, topicId: string, now: number, takeoverAfterMs: number, sendKeys: readonly [string, string, string], burstWindowMs = 0,
    ): Promise<
      { claimed: false; status: DeliveryStatus } | { claimed: true; record: DeliveryRecord; lastPushAt: number | null; reads: string[][] }
    > {
      const [res, flat, last, ...reads] = (await claimReadScript(
        alertKey(prefix, subscriberId, storyId, 'push'), lastPushKey(prefix, subscriberId), ...sendKeys, pushingKey(prefix, subscriberId),
        jobId, topicId, String(now), takeoverAfterMs, burstWindowMs,
      )) as [string, string[]?, (string | false)?, ...string[][]];
      if (res !== 'claimed' && res !== 'created') return { claimed: false, status: res as DeliveryStatus };
      if (res === 'created') await index(subscriberId, storyId, 'push', now);
      return { claimed: true, record: toRecord(hashFromFlat(flat!))!, lastPushAt: last ? Number(last) : null, reads };
    },

    /**
     * A push alert reached `devices`: marks them, ends the record as sent, notes the push time and adds the
     * alert to the inbox, in one script. Returns false when the record had already ended (nothing written).
     */
    async finishPushSent(subscriberId: string, storyId: string, now: number, detail: { devices: string[]; error?: string; inbox: InboxItem }): Promise<boolean> {
      const { inbox } = detail;
      const moved = (await finishSentScript(
        alertKey(prefix, subscriberId, storyId, 'push'), lastPushKey(prefix, subscriberId), inboxKey(prefix, subscriberId), inboxItemsKey(prefix, subscriberId),
        String(now), (detail.error ?? '').slice(0, 500), inbox.topicId, DAY_SECONDS, `${inbox.storyId}:${inbox.channel}`, INBOX_LIMIT, JSON.stringify(inbox),
        ...detail.devices,
      )) as number;
      if (moved === 2) await index(subscriberId, storyId, 'push', now);
      if (moved >= 1) await bump(inbox.topicId, 'push', 'sent');
      return moved >= 1;
    },

    /**
     * Ends a record (sent, failed or skipped with a reason). Returns false when it had already ended, or with
     * `detail.from` when it was not in that status. The topic counter moves only with the transition.
     */
    async finish(
      subscriberId: string,
      storyId: string,
      channel: Channel,
      status: FinalStatus,
      now: number,
      detail: { reason?: string; error?: string; via?: string; topicId?: string; from?: DeliveryStatus } = {},
    ): Promise<boolean> {
      const key = alertKey(prefix, subscriberId, storyId, channel);
      const moved = (await finishScript(
        key, status, String(now), detail.reason ?? '', (detail.error ?? '').slice(0, 500), detail.via ?? '', detail.topicId ?? '', detail.from ?? '',
      )) as number;
      if (moved === 2) await index(subscriberId, storyId, channel, now);
      if (moved >= 1) {
        const topicId = detail.topicId ?? (await redis.hget(key, 'topicId')) ?? '';
        await bump(topicId, channel, status);
      }
      return moved >= 1;
    },

    /**
     * Records every planned alert as "queued" at enqueue time, so the ledger holds one record per (subscriber,
     * story, channel) from the start. One command per record (each its own subscriber's slot), sent together.
     */
    async open(entries: readonly { subscriberId: string; storyId: string; channel: Channel; jobId: string; topicId: string }[], now: number) {
      await Promise.all(
        entries.map(async (e) => {
          const opened = await openScript(alertKey(prefix, e.subscriberId, e.storyId, e.channel), e.jobId, e.topicId, String(now));
          // Indexed once, by whichever script created the record.
          if (opened === 1) await index(e.subscriberId, e.storyId, e.channel, now);
        }),
      );
    },

    /**
     * Notes the records a story's classification is about to open (`open`), until `dropFanOut` once their jobs are
     * enqueued, and answers those an earlier run of it noted: a run that died between the two left them, and only a
     * run of the same story can tell which of them it no longer plans. Kept at most FAN_OUT_KEPT_SECONDS.
     */
    async noteFanOut(storyId: string, entries: readonly { subscriberId: string; channel: Channel }[]): Promise<{ subscriberId: string; channel: Channel }[]> {
      const key = fanOutKey(prefix, storyId);
      const earlier = await fanOutNoted(storyId);
      const members = entries.map((e) => `${e.subscriberId} ${e.channel}`);
      await Promise.all(chunksOf(members, FIELDS_PER_CALL).map((slice) => redis.sadd(key, ...slice)));
      if (members.length > 0) await redis.expire(key, FAN_OUT_KEPT_SECONDS);
      return earlier;
    },

    /** The records an unfinished classification of the story noted (see `noteFanOut`): none once it enqueued them. */
    fanOutNoted,

    /** The story's fan-out is enqueued (see `noteFanOut`). */
    async dropFanOut(storyId: string) {
      await redis.del(fanOutKey(prefix, storyId));
    },

    /**
     * A transient failure of the attempt that holds `claim` (its job and its claim's `attempt`): the record
     * waits for the next attempt with the error kept. False, and nothing written, when the record is no longer
     * that claim (ended, or taken over by another attempt): that attempt, not this one, decides what follows.
     * `outcomeUnknown`: the attempt broke off where it may already have reached the service (an error half-way):
     * counted in `reclaims`, like a claim taken over from a dead worker, since the next attempt may resend.
     */
    async requeue(subscriberId: string, storyId: string, channel: Channel, claim: { jobId: string; attempt: number }, error: string, now: number, outcomeUnknown = false): Promise<boolean> {
      const res = await requeueScript(alertKey(prefix, subscriberId, storyId, channel), claim.jobId, claim.attempt, error.slice(0, 500), String(now), outcomeUnknown ? '1' : '0');
      return res === 1;
    },

    /**
     * The attempt that holds `claim` is still sending: the claim counts as taken `now`, so another job leaves it
     * alone for another `takeoverAfterMs` (see `claim`). False when the record is no longer that claim.
     */
    async renewClaim(subscriberId: string, storyId: string, channel: Channel, claim: { jobId: string; attempt: number }, now: number): Promise<boolean> {
      return (await renewScript(alertKey(prefix, subscriberId, storyId, channel), claim.jobId, claim.attempt, String(now))) === 1;
    },

    /**
     * The job `jobId` will not run again (attempts used up): its record, if it still waits for that job, ends as
     * failed with `error`, so the ledger and the counters show it instead of "queued" for ever. True when it did.
     */
    async giveUp(subscriberId: string, storyId: string, channel: Channel, jobId: string, error: string, now: number): Promise<boolean> {
      const key = alertKey(prefix, subscriberId, storyId, channel);
      const moved = (await giveUpScript(key, jobId, error.slice(0, 500), String(now))) === 1;
      if (moved) await bump((await redis.hget(key, 'topicId')) ?? '', channel, 'failed');
      return moved;
    },

    /** The alert's claim (`claimPush` with a burst window) ends without a push: the reader's "pushing" mark goes if it is the alert's. */
    async dropPushing(subscriberId: string, storyId: string) {
      await dropPushingScript(pushingKey(prefix, subscriberId), alertKey(prefix, subscriberId, storyId, 'push'));
    },

    async markDeviceDone(subscriberId: string, storyId: string, deviceId: string) {
      await redis.hset(alertKey(prefix, subscriberId, storyId, 'push'), `dev:${deviceId}`, '1');
    },

    async get(subscriberId: string, storyId: string, channel: Channel): Promise<DeliveryRecord | null> {
      return toRecord(await redis.hgetall(alertKey(prefix, subscriberId, storyId, channel)));
    },

    /** Status of many stories' records for one subscriber and channel (one slot, one pipeline). */
    async statuses(subscriberId: string, storyIds: string[], channel: Channel): Promise<Map<string, DeliveryStatus>> {
      const out = new Map<string, DeliveryStatus>();
      if (storyIds.length === 0) return out;
      // One script over the subscriber's records (one slot), not a pipeline: a single command that
      // auto-pipelining sends with other jobs' commands, where a pipeline is a write of its own.
      // In slices: a digest window after a long outage can list a hundred thousand stories.
      const slices = chunksOf(storyIds, FIELDS_PER_CALL);
      const answers = await Promise.all(slices.map((ids) => statusesScript(ids.length, ...ids.map((id) => alertKey(prefix, subscriberId, id, channel))) as Promise<(string | null)[]>));
      slices.forEach((ids, s) =>
        answers[s]!.forEach((v, i) => {
          if (v) out.set(ids[i]!, v as DeliveryStatus);
        }),
      );
      return out;
    },

    /**
     * Holds an alert for a bundle or the next digest; false when the record had already ended. `quietBundle`: the
     * quiet-hours bundle it waits for, noted for `quietBundlesAfter`.
     */
    async hold(subscriberId: string, storyId: string, topicId: string, bucket: HeldBucket, reason: string, now: number, quietBundle?: QuietBundle): Promise<boolean> {
      const res = (await holdScript(
        alertKey(prefix, subscriberId, storyId, 'push'), heldKey(prefix, subscriberId, bucket), quietBundlesKey(prefix, subscriberId), reason, String(now), storyId, topicId,
        ...(quietBundle ? [quietBundle.releaseAt, quietBundle.bundleId] : []),
      )) as number;
      if (res === 2) await index(subscriberId, storyId, 'push', now);
      return res >= 1;
    },

    /**
     * One bundle of a subscriber at a time: takes their bundle lease for `owner` (a bundle's ledger id) for `ms`.
     * 0 when taken (or already `owner`'s), else the milliseconds until the other bundle's lease ends.
     */
    async takeBundleLease(subscriberId: string, owner: string, ms: number): Promise<number> {
      return (await bundleLeaseScript(bundleLeaseKey(prefix, subscriberId), owner, ms)) as number;
    },

    async dropBundleLease(subscriberId: string, owner: string): Promise<void> {
      await bundleUnleaseScript(bundleLeaseKey(prefix, subscriberId), owner);
    },

    /** The reader's quiet-hours bundles (noted by `hold` and `noteQuietBundles`) released after `at`. */
    async quietBundlesAfter(subscriberId: string, at: number): Promise<QuietBundle[]> {
      const flat = await redis.zrangebyscore(quietBundlesKey(prefix, subscriberId), `(${at}`, '+inf', 'WITHSCORES');
      const out: QuietBundle[] = [];
      for (let i = 0; i < flat.length; i += 2) out.push({ bundleId: flat[i]!, releaseAt: Number(flat[i + 1]) });
      return out;
    },

    /** Notes quiet-hours bundles (a new one, or one whose release moved) for `quietBundlesAfter`. */
    async noteQuietBundles(subscriberId: string, bundles: readonly QuietBundle[], now: number) {
      if (bundles.length === 0) return;
      await noteQuietBundlesScript(quietBundlesKey(prefix, subscriberId), String(now), ...bundles.flatMap((b) => [b.releaseAt, b.bundleId]));
    },

    /** Whether any alert waits in the bucket (one ZCARD, for callers that need no more). */
    async hasHeld(subscriberId: string, bucket: HeldBucket): Promise<boolean> {
      return (await redis.zcard(heldKey(prefix, subscriberId, bucket))) > 0;
    },

    /** Held alerts, oldest first; they stay held until `release` after the bundle or digest is confirmed. */
    async held(subscriberId: string, bucket: HeldBucket): Promise<HeldAlert[]> {
      const flat = await redis.zrange(heldKey(prefix, subscriberId, bucket), 0, -1, 'WITHSCORES');
      const ids: { storyId: string; at: number }[] = [];
      for (let i = 0; i < flat.length; i += 2) ids.push({ storyId: flat[i]!, at: Number(flat[i + 1]) });
      if (ids.length === 0) return [];
      const topics = await Promise.all(ids.map(({ storyId }) => redis.hget(alertKey(prefix, subscriberId, storyId, 'push'), 'topicId')));
      return ids.map((x, i) => ({ ...x, topicId: topics[i] ?? '' }));
    },

    /**
     * After the bundle or digest carrying them went out: each record ends (unless it already had), leaves the
     * held set and, when the item has `inbox`, joins the inbox, as one step per alert (RELEASE), RELEASE_CHUNK
     * alerts per script. Returns the items whose record this ended: only those are counted.
     */
    async release(
      subscriberId: string,
      bucket: HeldBucket,
      items: readonly (HeldAlert & { inbox?: InboxItem })[],
      /** `via` '' for alerts that ended without the bundle or digest carrying them; `error` kept as `lastError`. */
      outcome: { status: FinalStatus; via: string; reason?: string; error?: string },
      now: number,
    ): Promise<HeldAlert[]> {
      const ended: HeldAlert[] = [];
      for (let i = 0; i < items.length; i += RELEASE_CHUNK) {
        const chunk = items.slice(i, i + RELEASE_CHUNK);
        const moved = (await releaseScript(
          3 + chunk.length, heldKey(prefix, subscriberId, bucket), inboxKey(prefix, subscriberId), inboxItemsKey(prefix, subscriberId),
          ...chunk.map((h) => alertKey(prefix, subscriberId, h.storyId, 'push')),
          outcome.status, String(now), outcome.reason ?? '', outcome.via, INBOX_LIMIT, (outcome.error ?? '').slice(0, 500),
          ...chunk.flatMap((h) => [h.storyId, h.topicId, h.inbox ? JSON.stringify(h.inbox) : '']),
        )) as number[];
        await Promise.all(chunk.map(async (h, k) => {
          if (moved[k] === 2) await index(subscriberId, h.storyId, 'push', now);
          if (moved[k]! >= 1) await bump(h.topicId, 'push', outcome.status);
        }));
        chunk.forEach((h, k) => {
          if (moved[k]! >= 1) ended.push({ storyId: h.storyId, topicId: h.topicId, at: h.at });
        });
      }
      return ended;
    },

    /**
     * Delivery records created in [from, to), read in batches of `batchSize` per index key so memory stays
     * bounded whatever the range: ordered by day, and by creation time within each shard of a day.
     */
    async *between(from: number, to: number, batchSize = 500): AsyncGenerator<LedgerEntry> {
      for (let day = Math.floor(from / DAY_MS); day * DAY_MS < to; day++) {
        for (let shard = 0; shard < LEDGER_DAY_SHARDS; shard++) {
          const key = ledgerDayKey(prefix, day, shard);
          for (let offset = 0; ; offset += batchSize) {
            const members = await redis.zrangebyscore(key, from, `(${to}`, 'LIMIT', offset, batchSize);
            if (members.length === 0) break;
            const parsed = members.map((m) => m.split(' ') as [string, string, Channel]);
            // Records of many subscribers: many slots, so runCommands (one pipeline only on a single Redis).
            const res = await runCommands(redis, parsed.map(([sub, story, channel]) => ['hgetall', alertKey(prefix, sub, story, channel)]));
            for (let i = 0; i < parsed.length; i++) {
              const record = toRecord((res[i] ?? {}) as Record<string, string>);
              // A forgotten subscriber's records are gone; their index entries expire with the day.
              if (!record) continue;
              const [subscriberId, storyId, channel] = parsed[i]!;
              yield { subscriberId, storyId, channel, ...record };
            }
            if (members.length < batchSize) break;
          }
        }
      }
    },

    /**
     * Takes one of the subscriber's daily pushes for the alert on `storyId`; false once `cap` were taken on that
     * local date. An alert takes one slot whatever its attempts: one that holds a slot already is answered true.
     */
    async reservePush(subscriberId: string, storyId: string, localDate: string, cap: number): Promise<boolean> {
      const key = pushCountKey(prefix, subscriberId, localDate);
      return ((await reservePushScript(key, alertKey(prefix, subscriberId, storyId, 'push'), cap, 2 * DAY_SECONDS, localDate)) as number) === 1;
    },

    async pushesOn(subscriberId: string, localDate: string): Promise<number> {
      return Number((await redis.get(pushCountKey(prefix, subscriberId, localDate))) ?? 0);
    },

    /** Time of the subscriber's last individual push, for burst bundling. */
    async lastPushAt(subscriberId: string): Promise<number | null> {
      const v = await redis.get(lastPushKey(prefix, subscriberId));
      return v === null ? null : Number(v);
    },

    async notePush(subscriberId: string, at: number) {
      await redis.set(lastPushKey(prefix, subscriberId), String(at), 'EX', DAY_SECONDS);
    },

    /**
     * A reader opened the alert: counted once per record. `via` (a bundle's `bundle:<id>`): the alert counts only
     * if that bundle carried it, so a click on a bundle reports no alert it did not hold. `topicLive`: whether the
     * record's topic still exists; a deleted one (a reader's own alert, its counters deleted with it) is not counted,
     * or a click on its old notification or email would make counters that nothing ever deletes again.
     */
    async recordClick(
      subscriberId: string, storyId: string, channel: Channel, now: number,
      opts: { via?: string; topicLive?: (topicId: string) => Promise<boolean> } = {},
    ): Promise<boolean> {
      const key = alertKey(prefix, subscriberId, storyId, channel);
      const [status, carriedBy, topicId] = await redis.hmget(key, 'status', 'via', 'topicId');
      if (status !== 'sent' || (opts.via !== undefined && carriedBy !== opts.via)) return false;
      const first = (await redis.hsetnx(key, 'clickedAt', String(now))) === 1;
      if (first && (!topicId || !opts.topicLive || (await opts.topicLive(topicId)))) await bump(topicId ?? '', channel, 'clicked');
      return first;
    },

    async topicStats(topicIds: readonly string[]): Promise<Record<string, TopicStats>> {
      const out: Record<string, TopicStats> = {};
      // One key per topic, each in its topic's slot.
      const res = await runCommands(redis, topicIds.map((t) => ['hgetall', topicStatsKey(prefix, t)]));
      topicIds.forEach((t, i) => {
        const h = (res[i] as Record<string, string> | undefined) ?? {};
        const ch = (c: Channel): ChannelStats => ({
          sent: Number(h[`${c}:sent`] ?? 0),
          failed: Number(h[`${c}:failed`] ?? 0),
          skipped: Number(h[`${c}:skipped`] ?? 0),
          clicked: Number(h[`${c}:clicked`] ?? 0),
        });
        out[t] = { push: ch('push'), email: ch('email') };
      });
      return out;
    },

    /**
     * Deletes the counters of topics that are gone (a reader's own alerts): nothing else would ever remove them. A
     * send already under way when the alert went finishes later and counts itself: deleted outright, its count made
     * a new key that nothing would ever remove. The counts are replaced by a marker that expires instead, and a late
     * count lands in it and goes with it.
     */
    async forgetTopicStats(topicIds: readonly string[], now: number) {
      // One key per topic, each in its own slot: one script each.
      await Promise.all(topicIds.map((t) => forgetStatsScript(topicStatsKey(prefix, t), String(now), String(FORGOTTEN_STATS_TTL_MS))));
    },

    async addToInbox(subscriberId: string, item: InboxItem) {
      const member = `${item.storyId}:${item.channel}`;
      await inboxAddScript(inboxKey(prefix, subscriberId), inboxItemsKey(prefix, subscriberId), item.at, member, INBOX_LIMIT, JSON.stringify(item));
    },

    async inbox(subscriberId: string, limit = 50): Promise<InboxItem[]> {
      const members = await redis.zrevrange(inboxKey(prefix, subscriberId), 0, limit - 1);
      if (members.length === 0) return [];
      const raw = await redis.hmget(inboxItemsKey(prefix, subscriberId), ...members);
      return raw.filter((j): j is string => j !== null).map((j) => JSON.parse(j) as InboxItem);
    },

    async clearInbox(subscriberId: string) {
      await redis.del(inboxKey(prefix, subscriberId), inboxItemsKey(prefix, subscriberId));
    },

    /** Marks one story read on every channel it came by; false when the inbox does not hold it. */
    async markRead(subscriberId: string, storyId: string): Promise<boolean> {
      const items = inboxItemsKey(prefix, subscriberId);
      const members = [`${storyId}:push`, `${storyId}:email`];
      const raw = await redis.hmget(items, ...members);
      const updates: Record<string, string> = {};
      raw.forEach((j, i) => {
        if (j) updates[members[i]!] = JSON.stringify({ ...(JSON.parse(j) as InboxItem), read: true });
      });
      if (Object.keys(updates).length === 0) return false;
      await redis.hset(items, updates);
      return true;
    },

    async markAllRead(subscriberId: string) {
      const items = inboxItemsKey(prefix, subscriberId);
      const raw = await redis.hgetall(items);
      const updates = Object.fromEntries(Object.entries(raw).map(([m, j]) => [m, JSON.stringify({ ...(JSON.parse(j) as InboxItem), read: true })]));
      if (Object.keys(updates).length > 0) await redis.hset(items, updates);
    },

    /**
     * Deletes the subscriber's inbox and every delivery record. The records are found by SCAN on the
     * subscriber's tag: deleting a subscriber is rare, and no other index of them is worth keeping.
     */
    async forgetSubscriber(subscriberId: string) {
      await redis.del(inboxKey(prefix, subscriberId), inboxItemsKey(prefix, subscriberId), quietBundlesKey(prefix, subscriberId), pushingKey(prefix, subscriberId));
      // Records share the subscriber's slot (one node, one UNLINK per batch); their entries in the export's time
      // index go too, so no trace of the reader is left behind (the index keys live on other slots: the client routes them).
      await scanKeys(redis, `${prefix}:{s:${subscriberId}}:alert:*`, async (found, node) => {
        const created = await Promise.all(found.map((k) => node.hget(k, 'createdAt')));
        await Promise.all(
          found.map((k, i) => {
            const at = Number(created[i]);
            const rest = k.slice(k.lastIndexOf(':alert:') + 7);
            const storyId = rest.slice(0, rest.lastIndexOf(':'));
            const channel = rest.slice(rest.lastIndexOf(':') + 1);
            return Number.isFinite(at) && storyId ? redis.zrem(ledgerDayKey(prefix, Math.floor(at / DAY_MS), shardOf(subscriberId)), `${subscriberId} ${storyId} ${channel}`) : null;
          }),
        );
        await node.unlink(...found);
      });
    },
  };
}
export type Ledger = ReturnType<typeof createLedger>;
