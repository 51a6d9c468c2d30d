import { describe, expect, it } from 'vitest';
import { createLedger, topicStatsKey } from '../../src/store/ledger.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';

/**
 * Two attempts of one alert that overlap (a batch re-run beside its single retry, a worker that lost its
 * lock but not its life): the ledger lets one of them own the record at a time, and an attempt that lost it
 * can neither reopen nor re-send it. Real Redis, a prefix of this file's own.
 */
describe('ledger: overlapping attempts of one alert', () => {
  const { redis, prefix } = isolatedRedis('ledger-claims');
  const ledger = createLedger(redis, prefix);
  const LOCK_MS = 30_000;
  const open = (sub: string, t: number) => ledger.open([{ subscriberId: sub, storyId: 'st1', channel: 'email', jobId: 'j', topicId: 'world' }], t);
  const sentCount = async (topic: string) => (await ledger.topicStats([topic]))[topic]!.email.sent;

  it("another job's claim younger than the job lock is left alone; after the lock it is taken over; the same job takes its own over at once", async () => {
    await open('r1', 1000);
    expect(await ledger.claim('r1', 'st1', 'email', 'jobA', 'world', 1001, LOCK_MS)).toEqual({ claimed: true, attempt: 1 });
    // B 5 ms later, A alive: before, B claimed too, and both sent.
    expect(await ledger.claim('r1', 'st1', 'email', 'jobB', 'world', 1006, LOCK_MS)).toEqual({ claimed: false, status: 'sending' });
    expect(await ledger.get('r1', 'st1', 'email')).toMatchObject({ status: 'sending', jobId: 'jobA', attempts: 1, reclaims: 0 });
    // A's own next attempt (BullMQ ran it again: the earlier one ended) does not wait for the lock.
    expect(await ledger.claim('r1', 'st1', 'email', 'jobA', 'world', 1500, LOCK_MS)).toEqual({ claimed: true, attempt: 2 });
    // Once the lock has run out, A is presumed dead: B takes the record over.
    expect(await ledger.claim('r1', 'st1', 'email', 'jobB', 'world', 1500 + LOCK_MS, LOCK_MS)).toEqual({ claimed: true, attempt: 3 });
    expect(await ledger.get('r1', 'st1', 'email')).toMatchObject({ status: 'sending', jobId: 'jobB', attempts: 3, reclaims: 2 });
  });

  it("the audit's overlap: the taken-over attempt's late transient failure does not reopen the sent record; one send, counted once", async () => {
    await open('r2', 1000);
    const a = await ledger.claim('r2', 'st1', 'email', 'jobA', 'overlap', 1001, LOCK_MS);
    expect(a).toEqual({ claimed: true, attempt: 1 });
    const b = await ledger.claim('r2', 'st1', 'email', 'jobB', 'overlap', 1001 + LOCK_MS, LOCK_MS);
    expect(b).toEqual({ claimed: true, attempt: 2 });
    const sends = [await ledger.finish('r2', 'st1', 'email', 'sent', 1002 + LOCK_MS, { topicId: 'overlap' })];
    // A's 451 arrives after B's send: before, this turned the record back into "queued".
    expect(await ledger.requeue('r2', 'st1', 'email', { jobId: 'jobA', attempt: 1 }, 'SMTP 451: try later', 1003 + LOCK_MS)).toBe(false);
    expect(await ledger.get('r2', 'st1', 'email')).toMatchObject({ status: 'sent', jobId: 'jobB', lastError: null });
    // A's retry job finds the alert ended and sends nothing.
    const retry = await ledger.claim('r2', 'st1', 'email', 'jobA', 'overlap', 6000 + LOCK_MS, LOCK_MS);
    expect(retry).toEqual({ claimed: false, status: 'sent' });
    if (retry.claimed) sends.push(await ledger.finish('r2', 'st1', 'email', 'sent', 6001 + LOCK_MS, { topicId: 'overlap' }));
    expect(sends.filter(Boolean)).toHaveLength(1);
    expect(await sentCount('overlap')).toBe(1);
  });

  it("requeue acts only on the attempt's own claim: not on an ended record, another job's claim, or its own earlier attempt", async () => {
    await open('r3', 1000);
    const first = await ledger.claim('r3', 'st1', 'email', 'jobA', 'world', 1001, LOCK_MS);
    const second = await ledger.claim('r3', 'st1', 'email', 'jobA', 'world', 1002, LOCK_MS);
    expect([first, second]).toEqual([{ claimed: true, attempt: 1 }, { claimed: true, attempt: 2 }]);
    expect(await ledger.requeue('r3', 'st1', 'email', { jobId: 'jobA', attempt: 1 }, 'stale', 1003)).toBe(false);
    expect(await ledger.requeue('r3', 'st1', 'email', { jobId: 'jobB', attempt: 2 }, 'not mine', 1003)).toBe(false);
    expect(await ledger.requeue('r3', 'st1', 'email', { jobId: 'jobA', attempt: 2 }, 'SMTP 451: later', 1004)).toBe(true);
    expect(await ledger.get('r3', 'st1', 'email')).toMatchObject({ status: 'queued', lastError: 'SMTP 451: later', updatedAt: 1004 });
    // A queued record waits for anyone's next attempt: no lock to wait for.
    expect(await ledger.claim('r3', 'st1', 'email', 'jobC', 'world', 1005, LOCK_MS)).toEqual({ claimed: true, attempt: 3 });
    await ledger.finish('r3', 'st1', 'email', 'failed', 1006, { error: '550' });
    expect(await ledger.requeue('r3', 'st1', 'email', { jobId: 'jobC', attempt: 3 }, 'late', 1007)).toBe(false);
    expect(await ledger.get('r3', 'st1', 'email')).toMatchObject({ status: 'failed', lastError: '550' });
  });
  it("a send under way when its own alert is deleted finishes later: its count does not bring the alert's counters back for good", async () => {
    const alertId = 'alert.late0123ab';
    const key = topicStatsKey(prefix, alertId);
    await ledger.open([{ subscriberId: 'r4', storyId: 'st1', channel: 'email', jobId: 'j', topicId: alertId }], 1000);
    await ledger.finish('r4', 'st1', 'email', 'sent', 1100, { topicId: alertId });
    expect(await sentCount(alertId)).toBe(1);
    await ledger.open([{ subscriberId: 'r5', storyId: 'st1', channel: 'email', jobId: 'j', topicId: alertId }], 1000);
    expect(await ledger.claim('r5', 'st1', 'email', 'j', alertId, 1200, LOCK_MS)).toEqual({ claimed: true, attempt: 1 });
    // The reader deletes the alert while r5's mail is being sent.
    await ledger.forgetTopicStats([alertId], 1300);
    expect(await sentCount(alertId)).toBe(0);
    await ledger.finish('r5', 'st1', 'email', 'sent', 1400, { topicId: alertId });
    // The late count lands in a key that expires (before: a new key without expiry, which nothing ever deleted).
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    expect(await redis.pttl(key)).toBeLessThanOrEqual(14 * 86_400_000);
  });
});
