import pino from 'pino';
import webpush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliverPushAlert } from '../../src/deliver/push/send-alert.ts';
import { giveUpBundle, rescheduleBundles, sendPushBundle } from '../../src/deliver/push/send-bundle.ts';
import type { Enqueue } from '../../src/queue/queues.ts';
import { createWebPushSender, type PushSender } from '../../src/deliver/push/web-push-sender.ts';
import { createLedger, type Ledger } from '../../src/store/ledger.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { manualClock } from '../helpers/clock.ts';
import { noEnqueue, releaseFailingOnce } from '../helpers/faults.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';
import { createReader } from '../helpers/readers.ts';
import { startPushSink, type PushSink } from './support/push-sink.ts';
import { makeStory } from './support/world.ts';

/**
 * A bundle of held pushes, sent by the handler the dispatcher runs (called here as BullMQ would: the same job
 * id again for a retry) with the real stores on Redis, web-push's signing and Herald's encryption, to a local
 * HTTPS push service that decrypts what it gets. Every held alert must end with the bundle, even when an
 * attempt dies half-way.
 */
describe('push bundle: held alerts end with it', () => {
  const { redis, prefix } = isolatedRedis('bundle-release');
  const clock = manualClock('2027-04-01T07:00:00Z');
  const subscribers = createSubscriberStore(redis, prefix);
  const stories = createStoryStore(redis, prefix);
  const ledger = createLedger(redis, prefix);
  let sink: PushSink;
  let sender: PushSender;
  const deps = (l: Ledger = ledger) => ({
    // No queue behind these: no bundle job exists, so a bundle queued goes to `enqueue` under its release time.
    subscribers, stories, ledger: l, sender, enqueue: noEnqueue, jobState: async () => 'unknown' as const, clock, log: pino({ level: 'silent' }),
    topicName: (id: string) => (id === 'japan' ? 'Japan' : id), burstWindowMs: 0, jobLockMs: 30_000, inboxUrl: 'https://herald.example.test/',
  });

  beforeAll(async () => {
    sink = await startPushSink();
    sender = createWebPushSender({ ...webpush.generateVAPIDKeys(), subject: 'mailto:ops@example.test' }, { ca: sink.ca });
  }, 30_000);
  afterAll(async () => {
    sender?.close();
    await sink?.close();
  });

  /** A reader with one device and `n` pushes held for the bundle (quiet hours), oldest first. */
  const readerWithHeld = async (n: number, opts: { gone?: number } = {}) => {
    const { id } = await createReader(subscribers, { timeZone: 'UTC' }, clock.now());
    const device = sink.newDevice();
    await subscribers.addPushSubscription(id, device.subscription, clock.now());
    const held = [];
    for (let i = 0; i < n; i++) {
      const story = makeStory(clock.now() - 60_000, { title: `Held story ${i}` });
      // The last `gone` stories are never stored: expired or deleted while their alerts were held.
      if (i < n - (opts.gone ?? 0)) await stories.put(story);
      await ledger.hold(id, story.id, 'japan', 'bundle', 'quiet-hours', clock.now() - 1000 + i);
      held.push(story);
    }
    return { id, device: device.id, held };
  };

  it('an attempt that dies after the push went out: the retry releases every held alert into the inbox, with no second push', async () => {
    const r = await readerWithHeld(5);
    const sentBefore = (await ledger.topicStats(['japan'])).japan!.push.sent;
    // The first attempt's release fails (a lost Redis connection, a kill), after the service took the push.
    const faulty = releaseFailingOnce(ledger);
    await expect(sendPushBundle(deps(faulty), { subscriberId: r.id, bundleId: 'b1' }, 'bundle-job-1')).rejects.toThrow('Connection is closed.');
    // BullMQ's retry of the same job.
    expect(await sendPushBundle(deps(faulty), { subscriberId: r.id, bundleId: 'b1' }, 'bundle-job-1')).toBe('sent');

    expect(sink.forDevice(r.device).map((p) => p.payload.title)).toEqual(['5 new stories in Japan']);
    expect(await ledger.held(r.id, 'bundle')).toEqual([]);
    for (const s of r.held) expect(await ledger.get(r.id, s.id, 'push')).toMatchObject({ status: 'sent', reason: 'quiet-hours', via: 'bundle:b1' });
    expect((await ledger.inbox(r.id)).map((i) => i.storyId).sort()).toEqual(r.held.map((s) => s.id).sort());
    expect(await ledger.get(r.id, 'bundle-b1', 'push')).toMatchObject({ status: 'sent' });
    expect((await ledger.topicStats(['japan'])).japan!.push.sent - sentBefore).toBe(5);
  });

  it('two bundles of one reader due at once (their release times passed during an outage) send one notification', async () => {
    const r = await readerWithHeld(3);
    // Two release times, both due: BullMQ hands both jobs to a dispatcher at once, side by side.
    const jobs = [['b-early', 'bundle-job-early'], ['b-late', 'bundle-job-late']] as const;
    const results = await Promise.allSettled(jobs.map(([bundleId, jobId]) => sendPushBundle(deps(), { subscriberId: r.id, bundleId }, jobId)));
    // Before: both read the same held alerts and both pushed them.
    expect(sink.forDevice(r.device).map((p) => p.payload.title)).toEqual(['3 new stories in Japan']);
    expect(results.filter((x) => x.status === 'fulfilled').map((x) => (x as PromiseFulfilledResult<string>).value)).toEqual(['sent']);
    expect(await ledger.held(r.id, 'bundle')).toEqual([]);
    // The one that waited is retried by BullMQ: it finds nothing held.
    const waited = results.findIndex((x) => x.status === 'rejected');
    expect((results[waited] as PromiseRejectedResult).reason).toMatchObject({ name: 'RetryLater' });
    expect(await sendPushBundle(deps(), { subscriberId: r.id, bundleId: jobs[waited]![0] }, jobs[waited]![1])).toBe('nothing held');
    expect(sink.forDevice(r.device)).toHaveLength(1);
    for (const s of r.held) expect(await ledger.get(r.id, s.id, 'push')).toMatchObject({ status: 'sent' });
  });

  it("a held alert whose story is gone is skipped as story-gone by the bundle that finds it, not left for the next one", async () => {
    const r = await readerWithHeld(3, { gone: 1 });
    const gone = r.held[2]!;
    expect(await sendPushBundle(deps(), { subscriberId: r.id, bundleId: 'b2' }, 'bundle-job-2')).toBe('sent');
    expect(sink.forDevice(r.device).map((p) => p.payload.title)).toEqual(['2 new stories in Japan']);
    // Before, it stayed held, and every later bundle read it again.
    expect(await ledger.get(r.id, gone.id, 'push')).toMatchObject({ status: 'skipped', reason: 'story-gone', via: null });
    expect(await ledger.held(r.id, 'bundle')).toEqual([]);
    expect((await ledger.inbox(r.id)).map((i) => i.storyId).sort()).toEqual([r.held[0]!.id, r.held[1]!.id].sort());
    expect(await sendPushBundle(deps(), { subscriberId: r.id, bundleId: 'b3' }, 'bundle-job-3')).toBe('nothing held');
  });

  it('every held story gone: no push, each alert skipped as story-gone, the bundle skipped', async () => {
    const r = await readerWithHeld(2, { gone: 2 });
    expect(await sendPushBundle(deps(), { subscriberId: r.id, bundleId: 'b4' }, 'bundle-job-4')).toBe('skipped: held stories no longer exist');
    expect(sink.forDevice(r.device)).toEqual([]);
    for (const s of r.held) expect(await ledger.get(r.id, s.id, 'push')).toMatchObject({ status: 'skipped', reason: 'story-gone' });
    expect(await ledger.held(r.id, 'bundle')).toEqual([]);
    expect(await ledger.get(r.id, 'bundle-b4', 'push')).toMatchObject({ status: 'skipped', reason: 'held stories no longer exist' });
  });

  it("a bundle whose every device is gone (410) removes them and fails the held alerts with that reason, not with none", async () => {
    const r = await readerWithHeld(2);
    sink.script(r.device, [{ status: 410 }]);
    expect(await sendPushBundle(deps(), { subscriberId: r.id, bundleId: 'b-gone' }, 'bundle-job-gone')).toBe('failed');
    expect(await subscribers.pushSubscriptions(r.id)).toEqual([]);
    // Before: failed with no lastError at all, where a single alert says why.
    for (const s of r.held) expect(await ledger.get(r.id, s.id, 'push')).toMatchObject({ status: 'failed', lastError: 'every push subscription was gone' });
    expect(await ledger.get(r.id, 'bundle-b-gone', 'push')).toMatchObject({ status: 'failed', lastError: 'every push subscription was gone' });
    expect(await ledger.held(r.id, 'bundle')).toEqual([]);
  });

  it('an alert held by quiet hours whose bundle job could not be enqueued is held again at its retry, with its bundle', async () => {
    clock.set('2027-04-01T23:00:00Z');
    try {
      const { id } = await createReader(subscribers, { timeZone: 'UTC' }, clock.now());
      await subscribers.addPushSubscription(id, sink.newDevice().subscription, clock.now());
      await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
      await subscribers.setPrefs(id, { quietHours: { from: '22:00', to: '07:00' } }, clock.now());
      const story = makeStory(clock.now());
      await stories.put(story);
      // The push queue lives in another slot than the reader's records: its add can fail alone (a failover).
      const bundles: string[] = [];
      let failNext = true;
      const enqueue = Object.assign(async (name: string, _data: unknown, opts?: { jobId?: string }) => {
        if (failNext) {
          failNext = false;
          throw new Error('Connection is closed.');
        }
        bundles.push(`${name} ${opts?.jobId}`);
      }, { bulk: async () => undefined }) as unknown as Enqueue;
      const d = { ...deps(), enqueue };
      const data = { subscriberId: id, storyId: story.id, topicId: 'japan', why: 'Matched: Japan' };
      // The first attempt fails (BullMQ retries the job); the retry must leave the alert held with a bundle to end it.
      await deliverPushAlert(d, data, 'alert-job').catch(() => undefined);
      await deliverPushAlert(d, data, 'alert-job');
      expect(await ledger.get(id, story.id, 'push')).toMatchObject({ status: 'held', reason: 'quiet-hours' });
      // Before: the first attempt held the alert, then lost its bundle job; the retry found it held and ended there.
      expect(bundles).toEqual([`PushBundleSend bundle-${id}-${Date.parse('2027-04-02T07:00:00Z')}`]);
    } finally {
      clock.set('2027-04-01T07:00:00Z');
    }
  });

  it('a bundle moving itself to the end of quiet hours it read just before the reader turned them off is followed by one at once', async () => {
    clock.set('2027-04-01T23:30:00Z');
    try {
      const { id } = await createReader(subscribers, { timeZone: 'UTC' }, clock.now());
      const device = sink.newDevice();
      await subscribers.addPushSubscription(id, device.subscription, clock.now());
      // Held at 23:00 under 22:00-23:30; widened to 07:00 since, so the bundle due at 23:30 finds the reader still quiet.
      await subscribers.setPrefs(id, { quietHours: { from: '22:00', to: '07:00' } }, clock.now());
      const story = makeStory(clock.now() - 1_800_000);
      await stories.put(story);
      const due = clock.now();
      await ledger.hold(id, story.id, 'japan', 'bundle', 'quiet-hours', due - 1_800_000, { bundleId: String(due), releaseAt: due });
      // The queue's side: the bundles added, and changeDelay, which moves no bundle that is not delayed (this one runs).
      const added: { bundleId: string; delay?: number }[] = [];
      const queue = (onAdd: () => Promise<void> = async () => {}) => Object.assign(async (_name: string, data: { bundleId: string }, opts?: { delay?: number }) => {
        added.push({ bundleId: data.bundleId, delay: opts?.delay });
        await onAdd();
      }, { bulk: async () => undefined }) as unknown as Enqueue;
      const settings = { ...deps(), enqueue: queue(), redelay: async () => false };
      let rescheduled: number | null = null;
      // The reader saves "no quiet hours" while the running bundle, having read 22:00-07:00, adds its move to 07:00.
      const running = { ...deps(), enqueue: queue(async () => {
        await subscribers.setPrefs(id, { quietHours: null }, clock.now());
        rescheduled = await rescheduleBundles(settings, id);
      }) };
      expect(await sendPushBundle(running, { subscriberId: id, bundleId: String(due) }, `bundle-job-${due}`)).toBe('still quiet: moved to the end of the quiet hours');
      const seven = Date.parse('2027-04-02T07:00:00Z');
      // Before: the settings found no later bundle to bring forward (the move was not noted yet), and the push waited for 07:00.
      expect(added).toEqual([{ bundleId: String(seven), delay: seven - clock.now() }, { bundleId: String(clock.now()), delay: 0 }]);
      expect(rescheduled).toBe(clock.now());
      expect(await sendPushBundle(deps(), { subscriberId: id, bundleId: String(clock.now()) }, 'bundle-job-now')).toBe('sent');
      expect(sink.forDevice(device.id).map((p) => p.payload.stories)).toEqual([[story.id]]);
      expect(await ledger.get(id, story.id, 'push')).toMatchObject({ status: 'sent' });
    } finally {
      clock.set('2027-04-01T07:00:00Z');
    }
  });

  it("a given-up bundle's step waits for the reader's bundle being sent, and does not fail the alerts that one delivers", async () => {
    const r = await readerWithHeld(2);
    // The bundle being sent is answered slowly; meanwhile an earlier bundle of the reader is given up on.
    sink.script(r.device, [{ status: 201, delayMs: 400 }]);
    const sending = sendPushBundle(deps(), { subscriberId: r.id, bundleId: 'b-sending' }, 'bundle-job-sending');
    await new Promise((res) => setTimeout(res, 150));
    const step = await giveUpBundle(deps(), { subscriberId: r.id, bundleId: 'b-given-up' }, 'gave up after 8 attempts: push service answered 500').then(() => 'done', (err: Error) => err.name);
    expect(await sending).toBe('sent');
    // Before: the step failed both held alerts under the bundle that was delivering them, which then ended nothing.
    for (const s of r.held) expect(await ledger.get(r.id, s.id, 'push')).toMatchObject({ status: 'sent', via: 'bundle:b-sending' });
    // It is retried (by the sweep) once that bundle is done, and then finds nothing held.
    expect(step).toBe('RetryLater');
    await giveUpBundle(deps(), { subscriberId: r.id, bundleId: 'b-given-up' }, 'gave up after 8 attempts: push service answered 500');
    for (const s of r.held) expect(await ledger.get(r.id, s.id, 'push')).toMatchObject({ status: 'sent', via: 'bundle:b-sending' });
  });
});
