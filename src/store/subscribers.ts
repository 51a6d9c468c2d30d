import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Cadence, Follow, PushSubscriptionRecord, Subscriber } from '../model.ts';

/**
 * Owns every key about subscribers. One subscriber's keys share the hash tag {s:<id>} so a future
 * MULTI or script over them stays in one Redis Cluster slot; topic follower sets are tagged per topic.
 */
export function subscriberKeys(prefix: string, id: string) {
  const base = `${prefix}:{s:${id}}`;
  return {
    profile: `${base}:profile`,
    follows: `${base}:follows`,
    push: `${base}:push`,
  };
}
export const tokenKey = (prefix: string, tokenHash: string) => `${prefix}:token:${tokenHash}`;
export const followersKey = (prefix: string, topicId: string, cadence: Exclude<Cadence, 'off'>) =>
  `${prefix}:{t:${topicId}}:followers:${cadence}`;

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
export const newSubscriberId = () => randomBytes(9).toString('hex');
/** 256 bits: the token is the reader's only credential. */
export const newToken = () => randomBytes(32).toString('base64url');
export const pushSubscriptionId = (endpoint: string) => createHash('sha256').update(endpoint).digest('hex').slice(0, 16);

function toSubscriber(h: Record<string, string>): Subscriber | null {
  if (!h.id) return null;
  return {
    id: h.id,
    email: h.email || null,
    timeZone: h.timeZone ?? 'UTC',
    digestTime: h.digestTime ?? '08:00',
    createdAt: Number(h.createdAt),
    updatedAt: Number(h.updatedAt),
  };
}

/** Delivery choices of one subscriber (quiet hours, caps, what happens to held alerts, digest options). */
export interface DeliveryPrefs {
  /** Local "HH:MM" window in which non-urgent pushes are held; may wrap midnight (22:00-07:00). */
  quietHours: { from: string; to: string } | null;
  /** Breaking news passes through quiet hours. */
  breakingThroughQuiet: boolean;
  /** Most individual pushes per local day; what exceeds it goes to the digest. null: no cap. */
  dailyPushCap: number | null;
  /** What happens to pushes held by quiet hours: one bundled notification when they end, or the next digest. */
  heldAlerts: 'bundle' | 'digest';
  /** Send the digest even when there is nothing new. */
  digestSendEmpty: boolean;
  /** Stories already pushed to them: marked in the digest, or left out. */
  digestPushed: 'mark' | 'omit';
}
export const DEFAULT_DELIVERY_PREFS: DeliveryPrefs = Object.freeze({
  quietHours: null,
  breakingThroughQuiet: true,
  dailyPushCap: null,
  heldAlerts: 'bundle',
  digestSendEmpty: false,
  digestPushed: 'mark',
});

/** Email address health: hard bounces (SMTP 5xx) in a row; past the threshold the address is disabled. */
export interface EmailHealth {
  hardBounces: number;
  disabledAt: number | null;
  disabledReason: string | null;
}

function toPrefs(h: Record<string, string>): DeliveryPrefs {
  if (!h.prefs) return { ...DEFAULT_DELIVERY_PREFS };
  try {
    return { ...DEFAULT_DELIVERY_PREFS, ...(JSON.parse(h.prefs) as Partial<DeliveryPrefs>) };
  } catch {
    // A damaged record must not stop deliveries: the defaults are the safe reading.
    return { ...DEFAULT_DELIVERY_PREFS };
  }
}
const toEmailHealth = (h: Record<string, string>): EmailHealth => ({
  hardBounces: Number(h.emailBounces ?? 0),
  disabledAt: h.emailDisabledAt ? Number(h.emailDisabledAt) : null,
  disabledReason: h.emailDisabledReason ?? null,
});

/** Counts a hard bounce for the current address; disables it at the threshold. Returns [bounces, disabled]. */
const HARD_BOUNCE = `
if redis.call('HGET', KEYS[1], 'email') ~= ARGV[1] then return {0, 0} end
local n = redis.call('HINCRBY', KEYS[1], 'emailBounces', 1)
if n >= tonumber(ARGV[2]) and not redis.call('HGET', KEYS[1], 'emailDisabledAt') then
  redis.call('HSET', KEYS[1], 'emailDisabledAt', ARGV[3], 'emailDisabledReason', ARGV[4])
  return {n, 1}
end
return {n, 0}`;

export function createSubscriberStore(redis: Redis, prefix: string) {
  const keys = (id: string) => subscriberKeys(prefix, id);

  return {
    async create(input: { email: string | null; timeZone: string; digestTime: string }, now: number) {
      const id = newSubscriberId();
      const token = newToken();
      const k = keys(id);
      await redis.hset(k.profile, {
        id,
        email: input.email ?? '',
        timeZone: input.timeZone,
        digestTime: input.digestTime,
        createdAt: String(now),
        updatedAt: String(now),
      });
      await redis.set(tokenKey(prefix, hashToken(token)), id);
      return { id, token };
    },

    async idForToken(token: string): Promise<string | null> {
      return redis.get(tokenKey(prefix, hashToken(token)));
    },

    async get(id: string): Promise<Subscriber | null> {
      return toSubscriber(await redis.hgetall(keys(id).profile));
    },

    async update(id: string, patch: Partial<Pick<Subscriber, 'email' | 'timeZone' | 'digestTime'>>, now: number) {
      const fields: Record<string, string> = { updatedAt: String(now) };
      if (patch.email !== undefined) fields.email = patch.email ?? '';
      const prev = patch.email !== undefined ? await redis.hget(keys(id).profile, 'email') : null;
      // A new address starts with a clean record: the bounces belonged to the old one.
      if (patch.email !== undefined && (patch.email ?? '') !== (prev ?? '')) {
        await redis.hdel(keys(id).profile, 'emailBounces', 'emailDisabledAt', 'emailDisabledReason');
      }
      if (patch.timeZone !== undefined) fields.timeZone = patch.timeZone;
      if (patch.digestTime !== undefined) fields.digestTime = patch.digestTime;
      await redis.hset(keys(id).profile, fields);
    },

    /** Profile, delivery choices and email health in one read: what a dispatcher needs per alert. */
    async forDelivery(id: string): Promise<{ subscriber: Subscriber; prefs: DeliveryPrefs; emailHealth: EmailHealth } | null> {
      const h = await redis.hgetall(keys(id).profile);
      const subscriber = toSubscriber(h);
      return subscriber ? { subscriber, prefs: toPrefs(h), emailHealth: toEmailHealth(h) } : null;
    },

    async setPrefs(id: string, patch: Partial<DeliveryPrefs>, now: number) {
      const current = toPrefs(await redis.hgetall(keys(id).profile));
      await redis.hset(keys(id).profile, { prefs: JSON.stringify({ ...current, ...patch }), updatedAt: String(now) });
    },

    async recordHardBounce(id: string, address: string, threshold: number, reason: string, now: number): Promise<{ bounces: number; disabled: boolean }> {
      const [n, disabled] = (await redis.eval(HARD_BOUNCE, 1, keys(id).profile, address, threshold, String(now), reason.slice(0, 300))) as [number, number];
      return { bounces: n, disabled: disabled === 1 };
    },

    async recordEmailDelivered(id: string) {
      await redis.hdel(keys(id).profile, 'emailBounces');
    },

    async follows(id: string): Promise<Record<string, Follow>> {
      const raw = await redis.hgetall(keys(id).follows);
      return Object.fromEntries(Object.entries(raw).map(([topic, json]) => [topic, JSON.parse(json) as Follow]));
    },

    /**
     * Replaces the subscriber's follows. The subscriber hash is the truth; the per-topic follower sets are
     * an index for fan-out, updated after it, and fan-out re-checks the hash so a stale index never sends.
     */
    async setFollows(id: string, next: Record<string, Follow>) {
      const prev = await this.follows(id);
      const k = keys(id);
      const tx = redis.multi().del(k.follows);
      const active = Object.entries(next).filter(([, f]) => f.cadence !== 'off');
      if (active.length > 0) tx.hset(k.follows, Object.fromEntries(active.map(([t, f]) => [t, JSON.stringify(f)])));
      await tx.exec();
      const topics = new Set([...Object.keys(prev), ...Object.keys(next)]);
      const pipe = redis.pipeline();
      for (const topic of topics) {
        const cadence = next[topic]?.cadence ?? 'off';
        for (const c of ['instant', 'daily'] as const) {
          if (c === cadence) pipe.sadd(followersKey(prefix, topic, c), id);
          else pipe.srem(followersKey(prefix, topic, c), id);
        }
      }
      await pipe.exec();
    },

    /**
     * What an email's unsubscribe link does: for one topic, stop its emails (a daily topic is turned off,
     * an instant one loses the email channel); for "all", forget the address so no email is sent at all.
     */
    async stopEmail(id: string, topicId: string | 'all', now: number) {
      if (topicId === 'all') {
        await this.update(id, { email: null }, now);
        return;
      }
      const current = await this.follows(id);
      const follow = current[topicId];
      if (!follow) return;
      const channels = follow.channels.filter((c) => c !== 'email');
      current[topicId] = follow.cadence === 'daily' || channels.length === 0 ? { cadence: 'off', channels: [] } : { ...follow, channels };
      await this.setFollows(id, current);
    },

    async followers(topicId: string, cadence: Exclude<Cadence, 'off'>): Promise<string[]> {
      return redis.smembers(followersKey(prefix, topicId, cadence));
    },

    async addPushSubscription(id: string, sub: { endpoint: string; keys: { p256dh: string; auth: string } }, now: number) {
      const record: PushSubscriptionRecord = { id: pushSubscriptionId(sub.endpoint), endpoint: sub.endpoint, keys: sub.keys, createdAt: now };
      await redis.hset(keys(id).push, record.id, JSON.stringify(record));
      return record;
    },

    async pushSubscriptions(id: string): Promise<PushSubscriptionRecord[]> {
      const raw = await redis.hgetall(keys(id).push);
      return Object.values(raw).map((j) => JSON.parse(j) as PushSubscriptionRecord);
    },

    async removePushSubscription(id: string, pushId: string) {
      await redis.hdel(keys(id).push, pushId);
    },

  };
}
export type SubscriberStore = ReturnType<typeof createSubscriberStore>;
