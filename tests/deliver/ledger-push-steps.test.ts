import { describe, expect, it, vi } from 'vitest';
import { createLedger, LEDGER_DAY_SHARDS, LEDGER_INDEX_RETENTION_DAYS, type InboxItem } from '../../src/store/ledger.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';

/**
 * A push attempt's ledger steps in one command each: the claim answers the record and the last push time,
 * and the final write of a sent alert marks its devices, ends the record once, notes the push and fills the
 * inbox. Each must leave exactly what the separate commands did.
 */
describe('ledger: push claim with reads, and the one-step sent write', () => {
  const { redis, prefix } = isolatedRedis('ledger-push-steps');
  const ledger = createLedger(redis, prefix);
  // The subscriber's hashes the claim reads with it (none exist here: the ledger steps are under test).
  const sendKeys = createSubscriberStore(redis, prefix).forSendKeys;
  const item = (storyId: string, at: number): InboxItem => ({ storyId, title: `Story ${storyId}`, url: `https://n.test/${storyId}`, topicId: 'japan', why: 'Matched: Japan', channel: 'push', at, read: false });

  it('claims a queued record and answers it as claimed, with no last push yet', async () => {
    await ledger.open([{ subscriberId: 'a', storyId: 's1', channel: 'push', jobId: 'j1', topicId: 'japan' }], 1000);
    const claim = await ledger.claimPush('a', 's1', 'j1', 'japan', 2000, 30_000, sendKeys('a'));
    expect(claim).toEqual({ claimed: true, lastPushAt: null, reads: [[], [], []], record: expect.objectContaining({ status: 'sending', attempts: 1, jobId: 'j1', topicId: 'japan', createdAt: 1000, updatedAt: 2000, devicesDone: [] }) });
  });

  it('ends the record as sent with its devices, the push time and the inbox entry, and counts it once', async () => {
    expect(await ledger.finishPushSent('a', 's1', 3000, { devices: ['d1', 'd2'], inbox: item('s1', 3000) })).toBe(true);
    expect(await ledger.get('a', 's1', 'push')).toMatchObject({ status: 'sent', updatedAt: 3000, devicesDone: ['d1', 'd2'], lastError: null });
    expect(await ledger.lastPushAt('a')).toBe(3000);
    expect(await ledger.inbox('a')).toEqual([item('s1', 3000)]);
    expect((await ledger.topicStats(['japan'])).japan?.push.sent).toBe(1);
    // A second write (a re-run job) changes nothing and counts nothing.
    expect(await ledger.finishPushSent('a', 's1', 4000, { devices: ['d3'], inbox: item('s1', 4000) })).toBe(false);
    expect(await ledger.get('a', 's1', 'push')).toMatchObject({ status: 'sent', updatedAt: 3000, devicesDone: ['d1', 'd2'] });
    expect(await ledger.inbox('a')).toEqual([item('s1', 3000)]);
    expect((await ledger.topicStats(['japan'])).japan?.push.sent).toBe(1);
  });

  it('an ended record is not claimed again; the next alert sees the last push time', async () => {
    expect(await ledger.claimPush('a', 's1', 'j1', 'japan', 5000, 30_000, sendKeys('a'))).toEqual({ claimed: false, status: 'sent' });
    const next = await ledger.claimPush('a', 's2', 'j2', 'japan', 6000, 30_000, sendKeys('a'));
    expect(next).toMatchObject({ claimed: true, lastPushAt: 3000, record: { status: 'sending', attempts: 1, createdAt: 6000 } });
  });

  it('a record reclaimed after a dead worker shows its devices already reached', async () => {
    await ledger.claimPush('b', 's1', 'j1', 'japan', 1000, 30_000, sendKeys('b'));
    await ledger.markDeviceDone('b', 's1', 'd1');
    const again = await ledger.claimPush('b', 's1', 'j1', 'japan', 2000, 30_000, sendKeys('b'));
    expect(again).toMatchObject({ claimed: true, record: { status: 'sending', attempts: 2, reclaims: 1, devicesDone: ['d1'] } });
  });

  it('counts every alert of a batch finishing side by side, per topic, once each', async () => {
    const topics = Array.from({ length: 50 }, (_, i) => (i < 30 ? 'counted-a' : 'counted-b'));
    await Promise.all(topics.map((_, i) => ledger.claimPush(`e${i}`, 'sb', 'jb', topics[i]!, 1000, 30_000, sendKeys(`e${i}`))));
    const first = await Promise.all(topics.map((topicId, i) => ledger.finishPushSent(`e${i}`, 'sb', 2000, { devices: ['d1'], inbox: { ...item('sb', 2000), topicId } })));
    expect(first.every(Boolean)).toBe(true);
    // Each finish resolved after its count was written: read at once, nothing is missing.
    const stats = await ledger.topicStats(['counted-a', 'counted-b']);
    expect([stats['counted-a']?.push.sent, stats['counted-b']?.push.sent]).toEqual([30, 20]);
    // A re-run of the whole batch ends nothing and counts nothing.
    const again = await Promise.all(topics.map((topicId, i) => ledger.finishPushSent(`e${i}`, 'sb', 3000, { devices: ['d1'], inbox: { ...item('sb', 3000), topicId } })));
    expect(again.some(Boolean)).toBe(false);
    const after = await ledger.topicStats(['counted-a', 'counted-b']);
    expect([after['counted-a']?.push.sent, after['counted-b']?.push.sent]).toEqual([30, 20]);
  });

  it('indexes a batch of new records for the export with one ZADD per index key and turn, each caller resolved after it', async () => {
    const day = Date.UTC(2027, 2, 3, 12);
    const zadd = vi.spyOn(redis, 'zadd');
    try {
      const claims = await Promise.all(Array.from({ length: 50 }, (_, i) => ledger.claimPush(`x${i}`, 'si', 'ji', 'japan', day + i, 30_000, sendKeys(`x${i}`))));
      expect(claims.every((c) => c.claimed)).toBe(true);
      // Resolved means written: the export, read at once, finds every record.
      const listed: string[] = [];
      for await (const e of ledger.between(day, day + 1000)) listed.push(e.subscriberId);
      expect(listed.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `x${i}`).sort());
      // One alert at a time this was 50 ZADDs (and 50 EXPIREs). Alerts whose replies arrive in the same turn share
      // one per shard of the day; the 50 replies arrive in one or a few socket reads.
      expect(zadd.mock.calls.length).toBeLessThanOrEqual(3 * LEDGER_DAY_SHARDS);
    } finally {
      zadd.mockRestore();
    }
    const keys = await redis.keys(`${prefix}:ledger:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(await redis.ttl(key)).toBeGreaterThan(LEDGER_INDEX_RETENTION_DAYS * 86400 - 60);
  });

  it("with a burst window, a claim beside another alert's claim reads it as the last push, until that one ends unsent", async () => {
    const w = 120_000;
    const first = await ledger.claimPush('p', 's1', 'j1', 'japan', 10_000, 30_000, sendKeys('p'), w);
    expect(first).toMatchObject({ claimed: true, lastPushAt: null });
    // Claimed side by side: the first claim counts as the push under way.
    expect(await ledger.claimPush('p', 's2', 'j2', 'japan', 10_500, 30_000, sendKeys('p'), w)).toMatchObject({ claimed: true, lastPushAt: 10_000 });
    // The first alert's own retry is not a burst of itself.
    expect(await ledger.claimPush('p', 's1', 'j1', 'japan', 11_000, 30_000, sendKeys('p'), w)).toMatchObject({ claimed: true, lastPushAt: null });
    // It ended without a push (muted, held, failed): the next match is no burst.
    await ledger.dropPushing('p', 's1');
    expect(await ledger.claimPush('p', 's3', 'j3', 'japan', 12_000, 30_000, sendKeys('p'), w)).toMatchObject({ claimed: true, lastPushAt: null });
    // Past the window, another alert's mark no longer counts.
    expect(await ledger.claimPush('p', 's4', 'j4', 'japan', 12_000 + w, 30_000, sendKeys('p'), w)).toMatchObject({ claimed: true, lastPushAt: null });
  });

  it('keeps the inbox at its limit, dropping the oldest entry with its body', async () => {
    for (let i = 0; i < 201; i++) {
      await ledger.claimPush('c', `s${i}`, `j${i}`, 'japan', i + 1, 30_000, sendKeys('c'));
      await ledger.finishPushSent('c', `s${i}`, i + 1, { devices: ['d1'], inbox: item(`s${i}`, i + 1) });
    }
    const inbox = await ledger.inbox('c', 500);
    expect(inbox).toHaveLength(200);
    expect(inbox.at(-1)?.storyId).toBe('s1');
    expect(await redis.hexists(`${prefix}:{s:c}:inbox:items`, 's0:push')).toBe(0);
  });
});
