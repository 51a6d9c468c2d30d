import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AlertQuality, Cadence, Follow, PushSubscriptionRecord, Subscriber } from '../model.ts';
import { isCustomTopicId } from './custom-topics.ts';

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
    quality: h.quality === 'best' ? 'best' : 'all',
    timeZone: h.timeZone ?? 'UTC',
    digestTime: h.digestTime ?? '08:00',
    createdAt: Number(h.createdAt),
    updatedAt: Number(h.updatedAt),
  };
}

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

    async update(id: string, patch: Partial<Pick<Subscriber, 'email' | 'timeZone' | 'digestTime' | 'quality'>>, now: number) {
      const fields: Record<string, string> = { updatedAt: String(now) };
      if (patch.quality !== undefined) fields.quality = patch.quality satisfies AlertQuality;
      if (patch.email !== undefined) fields.email = patch.email ?? '';
      if (patch.timeZone !== undefined) fields.timeZone = patch.timeZone;
      if (patch.digestTime !== undefined) fields.digestTime = patch.digestTime;
      await redis.hset(keys(id).profile, fields);
    },

    async follows(id: string): Promise<Record<string, Follow>> {
      const raw = await redis.hgetall(keys(id).follows);
      return Object.fromEntries(Object.entries(raw).map(([topic, json]) => [topic, JSON.parse(json) as Follow]));
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
