import { describe, expect, it } from 'vitest';
import { jobIds } from '../../src/queue/jobs.ts';
import { waitFor } from '../helpers/processes.ts';
import { faultEnv, pushFaultWorld, startRole, stopRole, tally, pushReadersAndStories } from './support.ts';

const READERS = 40;
const STORIES = 3;
const PUSHED_BACK = 8;
const RETRY_AFTER_S = 2;
const CONCURRENCY = 8;

/**
 * A push service under load: for some devices it first answers 429 with Retry-After, then 503, then
 * accepts. The push dispatcher process delivers every alert once and sends nothing to a device before its
 * Retry-After has passed; the whole push service (origin) is paused too, beyond what was already on the wire.
 */
describe('a push service answering 429 with Retry-After, then 503', () => {
  const world = pushFaultWorld('faultpush');
  const { prefix, enqueue, stories, subscribers, ledger } = world;

  it('delivers every alert once, honouring Retry-After per device and for the whole service', async () => {
    const now = Date.now();
    const { storyList, readers } = await pushReadersAndStories({ subscribers, stories }, world.sink, { readers: READERS, stories: STORIES, title: 'Tokyo backpressure', now });
    for (const r of readers.slice(0, PUSHED_BACK)) world.sink.script(r.deviceId, [{ status: 429, headers: { 'Retry-After': String(RETRY_AFTER_S) } }, { status: 503 }]);
    await enqueue.bulk('AlertSendPush', readers.flatMap((r) => storyList.map((s) => ({
      data: { subscriberId: r.id, storyId: s.id, topicId: 'japan', why: 'Matched: Tokyo' },
      opts: { jobId: jobIds.alert(r.id, s.id, 'push'), backoff: { type: 'delivery', delay: 200 } },
    }))));

    const worker = world.worker = await startRole('push', faultEnv(prefix, { extra: { HERALD_PUSH_CA_FILE: world.sink.caFile, HERALD_PUSH_CONCURRENCY: String(CONCURRENCY) } }));
    const records = async () => Promise.all(readers.flatMap((r) => storyList.map((s) => ledger.get(r.id, s.id, 'push'))));
    await waitFor(async () => (await records()).every((r) => r?.status === 'sent' || r?.status === 'failed'), 60_000, 'every alert to end');
    await stopRole(worker, 'SIGTERM');

    expect((await records()).map((r) => r?.status)).toEqual(readers.flatMap(() => storyList.map(() => 'sent')));
    const shown = tally(world.sink.received.map((p) => `${p.deviceId}/${String(p.payload.storyId)}`));
    expect(shown.distinct.size).toBe(READERS * STORIES);
    expect(shown.repeated).toEqual([]);

    const refusals = world.sink.requests.filter((q) => q.status === 429);
    expect(refusals).toHaveLength(PUSHED_BACK);
    expect(world.sink.requests.filter((q) => q.status === 503)).toHaveLength(PUSHED_BACK);
    for (const refused of refusals) {
      // The same alert (device and Topic = story) is tried again only once Retry-After has passed since the 429.
      const again = world.sink.requests.filter((q) => q.deviceId === refused.deviceId && q.headers.topic === refused.headers.topic && q.at > refused.at);
      // (The device's scripted 503 may land on this retry or on another of its alerts.)
      expect(again.at(-1)?.status).toBe(201);
      expect(again[0]!.at - refused.at).toBeGreaterThanOrEqual(RETRY_AFTER_S * 1000);
    }
    // The origin pauses for every job of the dispatcher: after the first 429, only what was already on the wire arrives.
    const first429 = Math.min(...refusals.map((q) => q.at));
    const during = world.sink.requests.filter((q) => q.at > first429 && q.at < first429 + RETRY_AFTER_S * 1000);
    expect(during.length).toBeLessThanOrEqual(CONCURRENCY);
  }, 90_000);
});
