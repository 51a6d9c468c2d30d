import { describe, expect, it } from 'vitest';
import { createLedger } from '../../src/store/ledger.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';

/** The ledger holds a record per planned alert from the moment its job is enqueued, and none stays queued without one. */
describe('ledger records open at enqueue time', () => {
  const { redis, prefix } = isolatedRedis('ledger-open');
  const ledger = createLedger(redis, prefix);

  it('opens as queued, is claimed and finished as usual, and a second open (re-classification) changes nothing', async () => {
    const entry = { subscriberId: 'sub1', storyId: 'st1', channel: 'push' as const, jobId: 'alert-sub1-st1-push', topicId: 'japan' };
    await ledger.open([entry], 1000);
    expect(await ledger.get('sub1', 'st1', 'push')).toMatchObject({ status: 'queued', attempts: 0, jobId: entry.jobId, topicId: 'japan', createdAt: 1000 });
    expect(await ledger.claim('sub1', 'st1', 'push', entry.jobId, 'japan', 2000, 30_000)).toEqual({ claimed: true, attempt: 1 });
    expect(await ledger.finish('sub1', 'st1', 'push', 'sent', 3000)).toBe(true);
    await ledger.open([entry], 4000);
    expect(await ledger.get('sub1', 'st1', 'push')).toMatchObject({ status: 'sent', attempts: 1, createdAt: 1000, updatedAt: 3000 });
  });

  it("a story's fan-out note answers what an earlier run noted until dropped; an end from queued leaves a claimed record alone", async () => {
    const open = (sub: string) => ({ subscriberId: sub, storyId: 'st2', channel: 'email' as const, jobId: `alert-${sub}-st2-email`, topicId: 'japan' });
    expect(await ledger.noteFanOut('st2', [open('a'), open('b')])).toEqual([]);
    await ledger.open([open('a'), open('b')], 1000);
    // The run died before its enqueues; the retry plans only b, and hears of a and b.
    expect((await ledger.noteFanOut('st2', [open('b')])).sort((x, y) => x.subscriberId.localeCompare(y.subscriberId))).toEqual([
      { subscriberId: 'a', channel: 'email' }, { subscriberId: 'b', channel: 'email' },
    ]);
    await ledger.dropFanOut('st2');
    expect(await ledger.noteFanOut('st2', [])).toEqual([]);

    expect(await ledger.claim('b', 'st2', 'email', open('b').jobId, 'japan', 2000, 30_000)).toEqual({ claimed: true, attempt: 1 });
    const skipped = () => ledger.topicStats(['japan']).then((s) => s.japan!.email.skipped);
    const before = await skipped();
    for (const sub of ['a', 'b']) await ledger.finish(sub, 'st2', 'email', 'skipped', 3000, { reason: 'muted', from: 'queued' });
    expect(await ledger.get('a', 'st2', 'email')).toMatchObject({ status: 'skipped', reason: 'muted', topicId: 'japan' });
    expect(await ledger.get('b', 'st2', 'email')).toMatchObject({ status: 'sending', reason: null });
    expect(await ledger.finish('a', 'st2', 'email', 'skipped', 4000, { reason: 'muted', from: 'queued' })).toBe(false);
    expect((await skipped()) - before).toBe(1);
  });

  it('a fan-out of 20,000 records lands in the day index once each, the index written in slices', { timeout: 60_000 }, async () => {
    // 2,500 new members per index shard in one turn: three ZADDs each, not one of 5,000 arguments.
    const entries = Array.from({ length: 20_000 }, (_, i) => ({ subscriberId: `fan${i}`, storyId: 'big', channel: 'email' as const, jobId: `j${i}`, topicId: 'japan' }));
    await ledger.open(entries, 5_000);
    const seen = new Set<string>();
    for await (const e of ledger.between(5_000, 5_001)) seen.add(e.subscriberId);
    expect(seen.size).toBe(20_000);
  });

  it('reads the statuses of 150,000 stories (a digest window after a long outage) without overflowing', { timeout: 60_000 }, async () => {
    // Spread into one command, 150,000 keys overflowed the JavaScript call stack (RangeError).
    const ids = Array.from({ length: 150_000 }, (_, i) => `story${i}`);
    await ledger.claim('reader', 'story149999', 'push', 'j', 'japan', 1000, 30_000);
    await ledger.finish('reader', 'story149999', 'push', 'sent', 2000);
    await ledger.claim('reader', 'story7', 'push', 'j', 'japan', 1000, 30_000);
    const got = await ledger.statuses('reader', ids, 'push');
    expect([...got]).toEqual([['story7', 'sending'], ['story149999', 'sent']]);
  });
});
