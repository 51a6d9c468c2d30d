import type { Redis } from 'ioredis';
import type { Channel } from '../model.ts';

/**
 * Owns the delivery ledger: one hash per (subscriber, story, channel), plus each subscriber's inbox.
 * All keys of one subscriber carry the tag {s:<id>}, so the claim script touches one Cluster slot.
 */
export const alertKey = (prefix: string, subscriberId: string, storyId: string, channel: Channel) =>
  `${prefix}:{s:${subscriberId}}:alert:${storyId}:${channel}`;
const inboxKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:inbox`;
const inboxItemsKey = (prefix: string, subscriberId: string) => `${prefix}:{s:${subscriberId}}:inbox:items`;

export type DeliveryStatus = 'sending' | 'sent' | 'failed' | 'skipped';
export const INBOX_LIMIT = 200;

/**
 * Claims a delivery for one attempt. A record that already ended (sent, failed or skipped) is never
 * claimed again: that is what makes a retried or re-run job unable to send twice.
 */
const CLAIM = `
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'sent' or status == 'failed' or status == 'skipped' then return status end
redis.call('HSET', KEYS[1], 'status', 'sending', 'jobId', ARGV[1], 'topicId', ARGV[2], 'updatedAt', ARGV[3])
redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 'claimed'`;

export interface DeliveryRecord {
  status: DeliveryStatus;
  attempts: number;
  jobId: string;
  topicId: string;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
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

export function createLedger(redis: Redis, prefix: string) {
  return {
    async claim(subscriberId: string, storyId: string, channel: Channel, jobId: string, topicId: string, now: number) {
      const res = (await redis.eval(CLAIM, 1, alertKey(prefix, subscriberId, storyId, channel), jobId, topicId, String(now))) as string;
      return res === 'claimed' ? { claimed: true as const } : { claimed: false as const, status: res as DeliveryStatus };
    },

    async finish(subscriberId: string, storyId: string, channel: Channel, status: Exclude<DeliveryStatus, 'sending'>, now: number, reason?: string) {
      const fields: Record<string, string> = { status, updatedAt: String(now) };
      if (reason) fields.lastError = reason.slice(0, 500);
      await redis.hset(alertKey(prefix, subscriberId, storyId, channel), fields);
    },

    async noteError(subscriberId: string, storyId: string, channel: Channel, reason: string, now: number) {
      await redis.hset(alertKey(prefix, subscriberId, storyId, channel), { lastError: reason.slice(0, 500), updatedAt: String(now) });
    },

    async markDeviceDone(subscriberId: string, storyId: string, deviceId: string) {
      await redis.hset(alertKey(prefix, subscriberId, storyId, 'push'), `dev:${deviceId}`, '1');
    },

    async get(subscriberId: string, storyId: string, channel: Channel): Promise<DeliveryRecord | null> {
      const h = await redis.hgetall(alertKey(prefix, subscriberId, storyId, channel));
      if (!h.status) return null;
      return {
        status: h.status as DeliveryStatus,
        attempts: Number(h.attempts ?? 0),
        jobId: h.jobId ?? '',
        topicId: h.topicId ?? '',
        lastError: h.lastError ?? null,
        createdAt: Number(h.createdAt),
        updatedAt: Number(h.updatedAt),
        devicesDone: Object.keys(h).filter((k) => k.startsWith('dev:')).map((k) => k.slice(4)),
      };
    },

    async addToInbox(subscriberId: string, item: InboxItem) {
      const z = inboxKey(prefix, subscriberId);
      const items = inboxItemsKey(prefix, subscriberId);
      const member = `${item.storyId}:${item.channel}`;
      const tx = redis.multi().zadd(z, item.at, member).hset(items, member, JSON.stringify(item));
      // Keep the newest INBOX_LIMIT entries; the trimmed ones' bodies go with them.
      tx.zrange(z, 0, -(INBOX_LIMIT + 1));
      tx.zremrangebyrank(z, 0, -(INBOX_LIMIT + 1));
      const res = await tx.exec();
      const trimmed = (res?.[2]?.[1] as string[] | undefined) ?? [];
      if (trimmed.length > 0) await redis.hdel(items, ...trimmed);
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
      await redis.del(inboxKey(prefix, subscriberId), inboxItemsKey(prefix, subscriberId));
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:{s:${subscriberId}}:alert:*`, 'COUNT', 1000);
        cursor = next;
        if (found.length > 0) await redis.unlink(...found);
      } while (cursor !== '0');
    },
  };
}
export type Ledger = ReturnType<typeof createLedger>;
