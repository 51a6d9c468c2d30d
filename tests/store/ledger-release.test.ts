import { describe, expect, it, vi } from 'vitest';
import { createLedger, INBOX_LIMIT, type InboxItem } from '../../src/store/ledger.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';

/**
 * Releasing held alerts after their bundle or digest: each record ends once, leaves the held set and (for a
 * bundle that went out) joins the inbox in one step, and a catch-up's thousands of alerts take a few scripts,
 * not one round trip each. Real Redis, a prefix of this file's own.
 */
describe('ledger: release of held alerts', () => {
  const { redis, prefix } = isolatedRedis('ledger-release');
  const ledger = createLedger(redis, prefix);
  const holdMany = async (sub: string, n: number, topicId: string) => {
    for (let i = 0; i < n; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ledger.hold(sub, `s${i + k}`, topicId, 'digest', 'cap', 1000 + i + k)));
    }
  };

  it('ends 10,000 held alerts in 20 scripts of 500, each once; a second release ends none and counts nothing', async () => {
    await holdMany('big', 10_000, 'release-a');
    const held = await ledger.held('big', 'digest');
    expect(held).toHaveLength(10_000);
    const scripts = vi.spyOn(redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>, 'heraldLedgerRelease');
    try {
      const started = performance.now();
      const ended = await ledger.release('big', 'digest', held, { status: 'skipped', via: 'digest:2027-04-01' }, 50_000);
      // One script per alert took about 7 s for these 10,000.
      console.log(`released 10,000 held alerts in ${Math.round(performance.now() - started)} ms`);
      expect(ended).toHaveLength(10_000);
      expect(scripts).toHaveBeenCalledTimes(20);
    } finally {
      scripts.mockRestore();
    }
    expect(await ledger.held('big', 'digest')).toEqual([]);
    const statuses = await ledger.statuses('big', held.map((h) => h.storyId), 'push');
    expect(new Set(statuses.values())).toEqual(new Set(['skipped']));
    expect(await ledger.get('big', 's9999', 'push')).toMatchObject({ status: 'skipped', reason: 'cap', via: 'digest:2027-04-01', updatedAt: 50_000, topicId: 'release-a' });
    expect((await ledger.topicStats(['release-a']))['release-a']!.push.skipped).toBe(10_000);

    expect(await ledger.release('big', 'digest', held, { status: 'skipped', via: 'digest:2027-04-02' }, 60_000)).toEqual([]);
    expect((await ledger.topicStats(['release-a']))['release-a']!.push.skipped).toBe(10_000);
    expect(await ledger.get('big', 's0', 'push')).toMatchObject({ via: 'digest:2027-04-01', updatedAt: 50_000 });
  });

  it('a bundle that went out: each alert joins the inbox with its record, and the inbox keeps its newest entries', async () => {
    const n = INBOX_LIMIT + 100;
    await Promise.all(Array.from({ length: n }, (_, i) => ledger.hold('inb', `s${i}`, 'release-b', 'bundle', 'burst', 1000 + i)));
    const held = await ledger.held('inb', 'bundle');
    const item = (storyId: string, at: number): InboxItem => ({ storyId, title: `T ${storyId}`, url: `https://n.test/${storyId}`, topicId: 'release-b', why: 'bundled', channel: 'push', at, read: false });
    // One alert already ended another way (sent on its own): it is not counted again, nor added to the inbox.
    await ledger.finish('inb', 's0', 'push', 'sent', 1500, { topicId: 'release-b' });
    const ended = await ledger.release('inb', 'bundle', held.map((h) => ({ ...h, inbox: item(h.storyId, 2000) })), { status: 'sent', via: 'bundle:b9' }, 2000);
    expect(ended.map((h) => h.storyId)).toEqual(held.slice(1).map((h) => h.storyId));
    expect(await ledger.held('inb', 'bundle')).toEqual([]);
    const inbox = await ledger.inbox('inb', 1000);
    expect(inbox).toHaveLength(INBOX_LIMIT);
    expect(inbox.every((i) => i.storyId !== 's0')).toBe(true);
    expect(await redis.hlen(`${prefix}:{s:inb}:inbox:items`)).toBe(INBOX_LIMIT);
    expect((await ledger.topicStats(['release-b']))['release-b']!.push.sent).toBe(n);
  });
});
