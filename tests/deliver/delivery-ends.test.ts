import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualClock } from '../helpers/clock.ts';
import type { TestHerald } from '../helpers/herald.ts';
import type { PushSink } from './support/push-sink.ts';
import { addSubscriber, enqueueAlert, makeStory, type PushWorld, startPushWorld } from './support/world.ts';

/**
 * Each alert reaches its reader once and ends in the ledger, whatever its attempts do to each other: through
 * the real dispatcher (BullMQ, Redis ledger) and a local HTTPS push service that answers after a moment, so
 * sends overlap as they do in production. A 2 s job lock (the shortest allowed) keeps takeovers quick.
 */
describe('delivery: every alert ends once', () => {
  const clock = manualClock('2027-03-01T10:00:00Z');
  let sink: PushSink;
  let t: TestHerald;
  let world: PushWorld | undefined;

  const reader = async () => {
    const id = await addSubscriber(t, clock.now());
    const device = sink.newDevice();
    await t.herald.stores.subscribers.addPushSubscription(id, device.subscription, clock.now());
    return { id, device: device.id };
  };
  const newStory = async () => {
    const story = makeStory(clock.now());
    await t.herald.stores.stories.put(story);
    return story;
  };
  const record = (sub: string, story: string) => t.herald.stores.ledger.get(sub, story, 'push');

  beforeAll(async () => {
    world = await startPushWorld('delivery-ends', clock, { sink: { delayMs: 50 }, env: { HERALD_JOB_LOCK_SECONDS: '2' } });
    ({ sink, t } = world);
  }, 60_000);
  afterAll(() => world?.close());

  it('two jobs of one alert running side by side, the first answered 500 after the second was sent: one push, counted once', async () => {
    const before = (await t.herald.stores.ledger.topicStats(['japan'])).japan!.push.sent;
    const r = await reader();
    const story = await newStory();
    // The first request to arrive is answered 500, slowly: its failure lands after the other attempt's success.
    sink.script(r.device, [{ status: 500, delayMs: 800 }]);
    // A re-run beside the alert's own job (a batch run again while its single retry is due): both start at once.
    await enqueueAlert(t, 'push', r.id, story.id);
    await enqueueAlert(t, 'push', r.id, story.id, 'japan', { jobId: `rerun-${story.id}` });
    await t.waitIdle(20_000);
    // Before: both claimed; one got the 500 and requeued the record the other had sent, and its retry sent again.
    expect(sink.requests.filter((q) => q.deviceId === r.device).map((q) => q.status)).toEqual([500, 201]);
    expect(sink.forDevice(r.device)).toHaveLength(1);
    expect(await record(r.id, story.id)).toMatchObject({ status: 'sent' });
    expect((await t.herald.stores.ledger.topicStats(['japan'])).japan!.push.sent - before).toBe(1);
  });
});
