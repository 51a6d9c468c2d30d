import { createHash, randomBytes } from 'node:crypto';
import { defineScript, hashFromFlat, runCommands, type Command, type RedisClient } from './redis.ts';
import type { AlertQuality, Cadence, Follow, PushSubscriptionRecord, Subscriber } from '../model.ts';
import { isCustomTopicId } from './custom-topics.ts';

/**
 * Owns every key about subscribers. One subscriber's keys share the hash tag {s:<id>} so a future
 * MULTI or script over them stays in one Redis Cluster slot; topic follower sets are tagged per topic.
 * Lookups by secret (session token, emailed link, confirmation) and by email address are global index keys
 * holding only a SHA-256 of the secret or address: a copy of Redis gives nobody a working link.
 */
export function subscriberKeys(prefix: string, id: string) {
  const base = `${prefix}:{s:${id}}`;
  return {
    profile: `${base}:profile`,
    follows: `${base}:follows`,
    push: `${base}:push`,
    /** Hashes of this subscriber's session tokens, link tokens and confirmation tokens, to revoke them all on delete. */
    secrets: `${base}:secrets`,
  };
}
export const tokenKey = (prefix: string, tokenHash: string) => `${prefix}:token:${tokenHash}`;
export const linkKey = (prefix: string, tokenHash: string) => `${prefix}:link:${tokenHash}`;
export const confirmKey = (prefix: string, tokenHash: string) => `${prefix}:confirm:${tokenHash}`;
export const emailKey = (prefix: string, email: string) => `${prefix}:email:${hashToken(email.toLowerCase())}`;
export const followersKey = (prefix: string, topicId: string, cadence: Exclude<Cadence, 'off'>) =>
  `${prefix}:{t:${topicId}}:followers:${cadence}`;

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
export const newSubscriberId = () => randomBytes(9).toString('hex');
/** 256 bits: the token is the reader's only credential. */
export const newToken = () => randomBytes(32).toString('base64url');
export const pushSubscriptionId = (endpoint: string) => createHash('sha256').update(endpoint).digest('hex').slice(0, 16);

/** An emailed "manage your alerts" link opens the settings on any device for this long. */
export const LINK_TTL_SECONDS = 14 * 24 * 60 * 60;
export const CONFIRM_TTL_SECONDS = 2 * 24 * 60 * 60;

function toSubscriber(h: Record<string, string>): Subscriber | null {
  if (!h.id) return null;
  return {
    id: h.id,
    email: h.email || null,
    quality: h.quality === 'best' ? 'best' : 'all',
    timeZone: h.timeZone ?? 'UTC',
    digestTime: h.digestTime ?? '08:00',
    pendingEmail: h.pendingEmail || null,
    createdAt: Number(h.createdAt),
    updatedAt: Number(h.updatedAt),
  };
}

export type SettingsPatch = Partial<Pick<Subscriber, 'timeZone' | 'digestTime' | 'quality'>>;

/** Delivery choices of one subscriber (quiet hours, caps, what happens to held alerts, digest options), kept as one JSON field `prefs` of the profile. */
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
export type ConfirmResult = { ok: true; subscriberId: string; email: string } | { ok: false; reason: 'unknown' | 'superseded' };
const toEmailHealth = (h: Record<string, string>): EmailHealth => ({
  hardBounces: Number(h.emailBounces ?? 0),
  disabledAt: h.emailDisabledAt ? Number(h.emailDisabledAt) : null,
  disabledReason: h.emailDisabledReason ?? null,
});

/** KEYS: the subscriber's devices. ARGV: device id, record, most allowed ('' = no cap). A known endpoint is always replaced. */
const ADD_DEVICE = `
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

export class PushDeviceLimitError extends Error {
  override name = 'PushDeviceLimitError';
}

/** Counts a hard bounce for the current address; disables it at the threshold. Returns [bounces, disabled]. */
const HARD_BOUNCE = `
if redis.call('HGET', KEYS[1], 'email') ~= ARGV[1] then return {0, 0} end
local n = redis.call('HINCRBY', KEYS[1], 'emailBounces', 1)
if n >= tonumber(ARGV[2]) and not redis.call('HGET', KEYS[1], 'emailDisabledAt') then
  redis.call('HSET', KEYS[1], 'emailDisabledAt', ARGV[3], 'emailDisabledReason', ARGV[4])
  return {n, 1}
end
return {n, 0}`;

/** The three hashes a send reads (profile, push devices, follows), in one command: same slot. */
const FOR_SEND = `return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}`;
type DeliveryView = { subscriber: Subscriber; prefs: DeliveryPrefs; emailHealth: EmailHealth };
/** The readings of the profile, devices and follows hashes, shared by the single reads and `forSend`. */
const deliveryOf = (h: Record<string, string>): DeliveryView | null => {
  const subscriber = toSubscriber(h);
  return subscriber ? { subscriber, prefs: toPrefs(h), emailHealth: toEmailHealth(h) } : null;
};
const devicesOf = (h: Record<string, string>) => Object.values(h).map((j) => JSON.parse(j) as PushSubscriptionRecord);
const followsOf = (h: Record<string, string>): Record<string, Follow> =>
  Object.fromEntries(Object.entries(h).map(([topic, json]) => [topic, JSON.parse(json) as Follow]));
export type SendView = { who: DeliveryView | null; devices: PushSubscriptionRecord[]; follows: Record<string, Follow> };
const sendViewOf = ([profile = [], push = [], follows = []]: readonly string[][]): SendView =>
  ({ who: deliveryOf(hashFromFlat(profile)), devices: devicesOf(hashFromFlat(push)), follows: followsOf(hashFromFlat(follows)) });

export function createSubscriberStore(redis: RedisClient, prefix: string) {
  const hardBounceScript = defineScript(redis, 'heraldHardBounce', 1, HARD_BOUNCE);
  const forSendScript = defineScript(redis, 'heraldSubscriberForSend', 3, FOR_SEND);
  const addDeviceScript = defineScript(redis, 'heraldAddPushDevice', 1, ADD_DEVICE);
  const keys = (id: string) => subscriberKeys(prefix, id);
  const sendKeys = (id: string): [string, string, string] => {
    const k = keys(id);
    return [k.profile, k.push, k.follows];
  };

  /** Stores a secret's hash under `key` (with a TTL when given) and remembers it for deletion. */
  const storeSecret = async (id: string, key: string, value: string, ttlSeconds?: number) => {
    if (ttlSeconds) await redis.set(key, value, 'EX', ttlSeconds);
    else await redis.set(key, value);
    await redis.sadd(keys(id).secrets, key);
  };

  return {
    async create(input: { timeZone: string; digestTime: string }, now: number) {
      const id = newSubscriberId();
      await redis.hset(keys(id).profile, {
        id,
        email: '',
        timeZone: input.timeZone,
        digestTime: input.digestTime,
        createdAt: String(now),
        updatedAt: String(now),
      });
      const token = await this.issueToken(id);
      return { id, token };
    },

    /** A new session token for one browser or API client; the subscriber may hold several. */
    async issueToken(id: string): Promise<string> {
      const token = newToken();
      await storeSecret(id, tokenKey(prefix, hashToken(token)), id);
      return token;
    },

    async idForToken(token: string): Promise<string | null> {
      return redis.get(tokenKey(prefix, hashToken(token)));
    },

    /** A "manage your alerts" link token: valid for LINK_TTL_SECONDS, exchanged for a session token when opened. */
    async issueLinkToken(id: string): Promise<string> {
      const token = newToken();
      await storeSecret(id, linkKey(prefix, hashToken(token)), id, LINK_TTL_SECONDS);
      return token;
    },

    async idForLinkToken(token: string): Promise<string | null> {
      return redis.get(linkKey(prefix, hashToken(token)));
    },

    async get(id: string): Promise<Subscriber | null> {
      return toSubscriber(await redis.hgetall(keys(id).profile));
    },

    async update(id: string, patch: SettingsPatch, now: number) {
      const fields: Record<string, string> = { updatedAt: String(now) };
      if (patch.quality !== undefined) fields.quality = patch.quality satisfies AlertQuality;
      if (patch.timeZone !== undefined) fields.timeZone = patch.timeZone;
      if (patch.digestTime !== undefined) fields.digestTime = patch.digestTime;
      await redis.hset(keys(id).profile, fields);
    },

    async prefs(id: string): Promise<DeliveryPrefs> {
      return toPrefs({ prefs: (await redis.hget(keys(id).profile, 'prefs')) ?? '' });
    },

    async setPrefs(id: string, patch: Partial<DeliveryPrefs>, now: number) {
      const current = await this.prefs(id);
      await redis.hset(keys(id).profile, { prefs: JSON.stringify({ ...current, ...patch }), updatedAt: String(now) });
    },

    /**
     * Double opt-in, step one: the address waits as `pendingEmail` and a single-use confirmation token is
     * returned for the email that carries it. The confirmed address (if any) keeps receiving until then.
     */
    async requestEmail(id: string, email: string, now: number): Promise<string> {
      const token = newToken();
      await redis.hset(keys(id).profile, { pendingEmail: email, updatedAt: String(now) });
      await storeSecret(id, confirmKey(prefix, hashToken(token)), JSON.stringify({ id, email }), CONFIRM_TTL_SECONDS);
      return token;
    },

    /** Whether a confirmation link is still unused and unexpired (the page shows its button only then). */
    async confirmationPending(token: string): Promise<boolean> {
      return (await redis.exists(confirmKey(prefix, hashToken(token)))) === 1;
    },

    /** Step two: GETDEL makes the link single-use, so a replayed link finds nothing. */
    async confirmEmail(token: string, now: number): Promise<ConfirmResult> {
      const raw = await redis.getdel(confirmKey(prefix, hashToken(token)));
      if (!raw) return { ok: false, reason: 'unknown' };
      const { id, email } = JSON.parse(raw) as { id: string; email: string };
      const sub = await this.get(id);
      // A later change (or removal) of the address wins over an older link still in the mailbox.
      if (!sub || sub.pendingEmail !== email) return { ok: false, reason: 'superseded' };
      const changed = sub.email?.toLowerCase() !== email.toLowerCase();
      if (sub.email && changed) await this.dropEmailIndex(id, sub.email);
      // emailSince records a change of address: a stop link mailed before links named their address may have gone to
      // an earlier one, so the unsubscribe route honours such a link only while no change is recorded.
      await redis.hset(keys(id).profile, { email, pendingEmail: '', updatedAt: String(now), ...(changed ? { emailSince: String(now) } : {}) });
      // A confirmed address starts with a clean record: a new one's bounces belonged to the old one, and the same
      // one, disabled after bounces, has just received the confirmation and had its link followed: it works again.
      await redis.hdel(keys(id).profile, 'emailBounces', 'emailDisabledAt', 'emailDisabledReason');
      await redis.set(emailKey(prefix, email), id);
      return { ok: true, subscriberId: id, email };
    },

    async cancelPendingEmail(id: string, now: number) {
      await redis.hset(keys(id).profile, { pendingEmail: '', updatedAt: String(now) });
    },

    /** Forgets both the confirmed and the pending address: no email of any kind goes out any more. */
    async removeEmail(id: string, now: number) {
      const sub = await this.get(id);
      if (sub?.email) await this.dropEmailIndex(id, sub.email);
      await redis.hset(keys(id).profile, { email: '', pendingEmail: '', updatedAt: String(now) });
      await redis.hdel(keys(id).profile, 'emailBounces', 'emailDisabledAt', 'emailDisabledReason');
    },

    async dropEmailIndex(id: string, email: string) {
      const key = emailKey(prefix, email);
      if ((await redis.get(key)) === id) await redis.del(key);
    },

    /**
     * The confirmed address, and since when it is the one on file: null for an address confirmed before Herald
     * recorded that (see confirmEmail). Null when there is no address.
     */
    async confirmedEmail(id: string): Promise<{ address: string; since: number | null } | null> {
      const [address, since] = await redis.hmget(keys(id).profile, 'email', 'emailSince');
      return address ? { address, since: since ? Number(since) : null } : null;
    },

    /** The subscriber whose confirmed address this is (case-insensitive), or null. */
    async idForEmail(email: string): Promise<string | null> {
      return redis.get(emailKey(prefix, email));
    },

    /** Profile, delivery choices and email health in one read: what a dispatcher needs per alert. */
    async forDelivery(id: string): Promise<DeliveryView | null> {
      return deliveryOf(await redis.hgetall(keys(id).profile));
    },

    /**
     * What a push attempt or a digest needs of the subscriber (`forDelivery`, `pushSubscriptions` and `follows`
     * together), read in one command: at fan-out volume each command's client cost shows.
     */
    async forSend(id: string): Promise<SendView> {
      return sendViewOf((await forSendScript(...sendKeys(id))) as string[][]);
    },

    /** The keys `forSend` reads, for a caller that reads them inside a script of its own (the push claim). */
    forSendKeys: sendKeys,

    /** `forSend`'s answer from those keys' hashes as HGETALL gave them (flat field/value lists), in that order. */
    forSendOf: sendViewOf,

    async recordHardBounce(id: string, address: string, threshold: number, reason: string, now: number): Promise<{ bounces: number; disabled: boolean }> {
      const [n, disabled] = (await hardBounceScript(keys(id).profile, address, threshold, String(now), reason.slice(0, 300))) as [number, number];
      return { bounces: n, disabled: disabled === 1 };
    },

    async recordEmailDelivered(id: string) {
      await redis.hdel(keys(id).profile, 'emailBounces');
    },

    async follows(id: string): Promise<Record<string, Follow>> {
      return followsOf(await redis.hgetall(keys(id).follows));
    },

    /**
     * Replaces the subscriber's follows. The subscriber hash is the truth; the per-topic follower sets are
     * an index for fan-out, updated after it, and fan-out re-checks the hash so a stale index never sends.
     */
    async setFollows(id: string, requested: Record<string, Follow>) {
      const prev = await this.follows(id);
      // The settings form lists catalog topics only: the reader's own alerts keep their follow unless named.
      const next = { ...Object.fromEntries(Object.entries(prev).filter(([t]) => isCustomTopicId(t))), ...requested };
      const k = keys(id);
      const tx = redis.multi().del(k.follows);
      const active = Object.entries(next).filter(([, f]) => f.cadence !== 'off');
      if (active.length > 0) tx.hset(k.follows, Object.fromEntries(active.map(([t, f]) => [t, JSON.stringify(f)])));
      await tx.exec();
      const topics = new Set([...Object.keys(prev), ...Object.keys(next)]);
      // Follower sets are tagged per topic: plain commands, one slot each, never one pipeline across them.
      const cmds: Command[] = [];
      for (const topic of topics) {
        const cadence = next[topic]?.cadence ?? 'off';
        for (const c of ['instant', 'daily'] as const) cmds.push([c === cadence ? 'sadd' : 'srem', followersKey(prefix, topic, c), id]);
      }
      await runCommands(redis, cmds);
    },

    /**
     * What an email's unsubscribe link does: for one topic, stop its emails (a daily topic is turned off,
     * an instant one loses the email channel); for "all", forget the address so no email is sent at all.
     */
    async stopEmail(id: string, topicId: string | 'all', now: number) {
      if (topicId === 'all') {
        await this.removeEmail(id, now);
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

    /** Number of followers per cadence (the console's topics page). */
    async followerCounts(topicId: string): Promise<{ instant: number; daily: number }> {
      const [instant, daily] = await Promise.all([redis.scard(followersKey(prefix, topicId, 'instant')), redis.scard(followersKey(prefix, topicId, 'daily'))]);
      return { instant, daily };
    },

    /**
     * Stores a device (replacing the record of the same endpoint, which a browser re-sends with fresh keys). With
     * `maxDevices`, a new endpoint past that many throws PushDeviceLimitError; checked and written in one step.
     */
    async addPushSubscription(id: string, sub: { endpoint: string; keys: { p256dh: string; auth: string } }, now: number, vapidPublicKey?: string, maxDevices?: number) {
      const record: PushSubscriptionRecord = {
        id: pushSubscriptionId(sub.endpoint), endpoint: sub.endpoint, keys: sub.keys, createdAt: now,
        ...(vapidPublicKey ? { vapidPublicKey } : {}),
      };
      const added = (await addDeviceScript(keys(id).push, record.id, JSON.stringify(record), maxDevices === undefined ? '' : String(maxDevices))) as number;
      if (added === 0) throw new PushDeviceLimitError(`you already have ${maxDevices} devices getting notifications, the most allowed: remove one of them first`);
      return record;
    },

    async pushSubscriptions(id: string): Promise<PushSubscriptionRecord[]> {
      return devicesOf(await redis.hgetall(keys(id).push));
    },

    /** True when the device existed (and is now gone). */
    async removePushSubscription(id: string, pushId: string): Promise<boolean> {
      return (await redis.hdel(keys(id).push, pushId)) === 1;
    },

    /**
     * Removes the subscriber and everything that reaches them: follower-set entries, every session, link and
     * confirmation secret, the email index, push subscriptions and the profile. Other stores forget their own keys.
     */
    async delete(id: string) {
      const [sub, follows, secrets] = await Promise.all([this.get(id), this.follows(id), redis.smembers(keys(id).secrets)]);
      const cmds: Command[] = [];
      for (const topic of Object.keys(follows)) {
        cmds.push(['srem', followersKey(prefix, topic, 'instant'), id]);
        cmds.push(['srem', followersKey(prefix, topic, 'daily'), id]);
      }
      for (const key of secrets) cmds.push(['del', key]);
      await runCommands(redis, cmds);
      if (sub?.email) await this.dropEmailIndex(id, sub.email);
      const k = keys(id);
      await redis.del(k.profile, k.follows, k.push, k.secrets);
    },
  };
}
export type SubscriberStore = ReturnType<typeof createSubscriberStore>;
