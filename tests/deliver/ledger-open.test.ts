import { describe, expect, it } from 'vitest';
import { createLedger } from '../../src/store/ledger.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';

/** The ledger holds a record per planned alert from the moment its job is enqueued. */
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
});
