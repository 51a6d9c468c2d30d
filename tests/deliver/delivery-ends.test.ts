import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { bundleIdOf } from '../../src/deliver/push/send-alert.ts';
import { jobIds, type PushBatchAlert } from '../../src/queue/jobs.ts';
import { subscriberKeys } from '../../src/store/subscribers.ts';
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

  const reader = async (opts: Parameters<typeof addSubscriber>[2] = {}) => {
    const id = await addSubscriber(t, clock.now(), opts);
    const device = sink.newDevice();
    await t.herald.stores.subscribers.addPushSubscription(id, device.subscription, clock.now());
    return { id, device: device.id };
  };
  const newStory = async () => {
    const story = makeStory(clock.now());
    await t.herald.stores.stories.put(story);
    return story;
  };
  const record = (sub: string, story: string, channel: 'push' | 'email' = 'push') => t.herald.stores.ledger.get(sub, story, channel);
  const until = async (ok: () => boolean | Promise<boolean>, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const ended = (sub: string, story: string, channel: 'push' | 'email' = 'push') => until(async () => !['queued', 'sending'].includes((await record(sub, story, channel))?.status ?? 'queued'));

  beforeAll(async () => {
    world = await startPushWorld('delivery-ends', clock, { sink: { delayMs: 50 }, env: { HERALD_JOB_LOCK_SECONDS: '2', HERALD_GIVE_UP_SWEEP_SECONDS: '1' } });
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

  describe('a send longer than the job lock (2 s here)', () => {
    /** Lets `ms` pass, the test's clock moving with real time. */
    const pass = async (ms: number) => {
      for (let t = 0; t < ms; t += 250) {
        clock.advance(250);
        await new Promise((res) => setTimeout(res, 250));
      }
    };

    it('a push whose service answers after three locks is sent once: the lock is renewed while it waits, the job never stalls', async () => {
      clock.set('2027-03-01T11:00:00Z');
      const r = await reader();
      const story = await newStory();
      sink.script(r.device, [{ status: 201, delayMs: 6000 }]);
      await enqueueAlert(t, 'push', r.id, story.id);
      await ended(r.id, story.id);
      await t.waitIdle(20_000);
      expect(sink.requests.filter((q) => q.deviceId === r.device).map((q) => q.status)).toEqual([201]);
      expect(await record(r.id, story.id)).toMatchObject({ status: 'sent', attempts: 1, reclaims: 0 });
      const job = (await t.herald.queues.push.getJob(jobIds.alert(r.id, story.id, 'push')))!;
      expect([job.attemptsStarted, job.stalledCounter]).toEqual([1, 0]);
    });

    it('an email whose SMTP server answers after three locks is sent once: no stalled re-run of its job either', async () => {
      clock.set('2027-03-01T11:05:00Z');
      const address = 'slow-server@example.test';
      const id = await addSubscriber(t, clock.now(), { email: address, topics: { japan: { cadence: 'instant', channels: ['email'] } } });
      world!.smtp.script(address, { acceptAfterMs: 6000 });
      const story = await newStory();
      await enqueueAlert(t, 'email', id, story.id);
      await ended(id, story.id, 'email');
      await t.waitIdle(20_000);
      expect(world!.smtp.to(address)).toHaveLength(1);
      expect(world!.smtp.tries(address)).toBe(1);
      expect(await record(id, story.id, 'email')).toMatchObject({ status: 'sent', attempts: 1, reclaims: 0 });
      const job = (await t.herald.queues.email.getJob(jobIds.alert(id, story.id, 'email')))!;
      expect([job.attemptsStarted, job.stalledCounter]).toEqual([1, 0]);
    });

    it('another job of the same alert, started while the first one sends for longer than the lock, sends nothing', async () => {
      clock.set('2027-03-01T11:10:00Z');
      const r = await reader();
      const story = await newStory();
      sink.script(r.device, [{ status: 201, delayMs: 6000 }, { status: 201, delayMs: 6000 }]);
      await enqueueAlert(t, 'push', r.id, story.id);
      await until(() => sink.requests.some((q) => q.deviceId === r.device));
      // 3 s later, a second job of the alert runs: the reader in two batches of a classification run again, or a
      // batch's retry beside the alert's own retry job.
      await pass(3000);
      await enqueueAlert(t, 'push', r.id, story.id, 'japan', { jobId: `again-${story.id}` });
      await ended(r.id, story.id);
      await t.waitIdle(20_000);
      // Before: the claim, 3 s old, was taken over, and the alert went out twice.
      expect(sink.requests.filter((q) => q.deviceId === r.device).map((q) => q.status)).toEqual([201]);
      expect(await record(r.id, story.id)).toMatchObject({ status: 'sent', attempts: 1, reclaims: 0 });
      expect((await t.herald.queues.push.getJob(`again-${story.id}`))!.returnvalue).toBe('already sending');
    });

    it("a reader's second bundle, due while the first is sent for longer than the lock, does not send the held pushes again", async () => {
      clock.set('2027-03-01T11:20:00Z');
      const r = await reader();
      const [a, b] = [await newStory(), await newStory()];
      for (const s of [a, b]) await t.herald.stores.ledger.hold(r.id, s.id, 'japan', 'bundle', 'burst', clock.now() - 1000);
      sink.script(r.device, [{ status: 201, delayMs: 6000 }, { status: 201, delayMs: 6000 }]);
      const bundle = (bundleId: string) =>
        t.herald.enqueue('PushBundleSend', { subscriberId: r.id, bundleId }, { jobId: jobIds.bundle(r.id, bundleId), backoff: { type: 'delivery', delay: 100 } });
      await bundle('first');
      await until(() => sink.requests.some((q) => q.deviceId === r.device));
      await pass(3000);
      await bundle('second');
      await until(async () => (await record(r.id, 'bundle-first'))?.status === 'sent');
      await t.waitIdle(20_000);
      // Before: the reader's bundle lease ran out during the first send, and the second bundle pushed the same stories.
      expect(sink.requests.filter((q) => q.deviceId === r.device).map((q) => q.status)).toEqual([201]);
      expect(sink.forDevice(r.device).map((p) => p.payload.stories)).toEqual([[a.id, b.id]]);
      for (const s of [a, b]) expect(await record(r.id, s.id)).toMatchObject({ status: 'sent', via: 'bundle:first' });
      expect((await t.herald.queues.push.getJob(jobIds.bundle(r.id, 'second')))!.returnvalue).toBe('nothing held');
    });
  });

  describe("a retry keeps to the reader's rules", () => {
    const quiet = { quietHours: { from: '22:00', to: '07:00' } };
    /** A push answered 429 (Retry-After 2 s) at 21:59 UTC; when that request has arrived, `meanwhile` runs at 23:30. */
    const pushRetriedAt2330 = async (r: { id: string; device: string }, meanwhile: () => Promise<void> = async () => {}) => {
      clock.set('2027-03-01T21:59:00Z');
      const story = await newStory();
      sink.script(r.device, [{ status: 429, headers: { 'retry-after': '2' } }]);
      await enqueueAlert(t, 'push', r.id, story.id);
      await until(async () => sink.requests.some((q) => q.deviceId === r.device) && (await record(r.id, story.id))?.status === 'queued');
      clock.set('2027-03-01T23:30:00Z');
      await meanwhile();
      await ended(r.id, story.id);
      return story;
    };

    it('a push answered 429 before quiet hours, whose reader unfollowed the topic meanwhile, is skipped at its retry, not sent', async () => {
      const r = await reader({ prefs: quiet });
      const story = await pushRetriedAt2330(r, () => t.herald.stores.subscribers.setFollows(r.id, { india: { cadence: 'instant', channels: ['push'] } }));
      // Before: delivered at 23:30, inside quiet hours, for a topic the reader had left.
      expect(sink.requests.filter((q) => q.deviceId === r.device).map((q) => q.status)).toEqual([429]);
      expect(await record(r.id, story.id)).toMatchObject({ status: 'skipped', reason: 'muted', attempts: 2 });
    });

    it('a push answered 429 before quiet hours is held for the bundle at its retry inside them, not sent', async () => {
      const r = await reader({ prefs: quiet });
      const story = await pushRetriedAt2330(r);
      expect(sink.requests.filter((q) => q.deviceId === r.device).map((q) => q.status)).toEqual([429]);
      expect(await record(r.id, story.id)).toMatchObject({ status: 'held', reason: 'quiet-hours' });
      const bundleAt = Date.parse('2027-03-02T07:00:00Z');
      const bundle = await t.herald.queues.push.getJob(jobIds.bundle(r.id, String(bundleAt)));
      expect(bundle?.opts.delay).toBe(bundleAt - clock.now());
      // Its release is another test's subject (push-dispatch): gone, so this file's queues can be idle again.
      await bundle!.remove();
    });

    it('an email answered 451, whose reader muted the topic meanwhile, is skipped at its retry, not sent', async () => {
      clock.set('2027-03-01T12:00:00Z');
      const address = 'muted-later@example.test';
      const id = await addSubscriber(t, clock.now(), { email: address, topics: { japan: { cadence: 'instant', channels: ['email'] } } });
      world!.smtp.script(address, { tempFail: 1, code: 451 });
      const story = await newStory();
      await enqueueAlert(t, 'email', id, story.id, 'japan', { backoff: { type: 'delivery', delay: 2000 } });
      await until(async () => (await record(id, story.id, 'email'))?.status === 'queued');
      await t.herald.stores.subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['email'], mutedUntil: clock.now() + 7 * 86_400_000 } });
      await ended(id, story.id, 'email');
      expect(world!.smtp.to(address)).toEqual([]);
      expect(await record(id, story.id, 'email')).toMatchObject({ status: 'skipped', reason: 'muted', attempts: 2 });
    });
  });

  describe('retries that run out end as failed', () => {
    const deviceIdOf = async (sub: string) => (await t.herald.stores.subscribers.pushSubscriptions(sub))[0]!.id;
    const failedJob = (queue: 'push' | 'email', id: string) => until(async () => (await t.herald.queues[queue].getJob(id))?.finishedOn !== undefined);

    it('a push service answering 500 to every attempt: after the last one the record is failed, with the attempts and the last error', async () => {
      clock.set('2027-03-02T10:00:00Z');
      const failedBefore = (await t.herald.stores.ledger.topicStats(['japan'])).japan!.push.failed;
      const r = await reader();
      const story = await newStory();
      sink.script(r.device, Array.from({ length: 5 }, () => ({ status: 500 })));
      await enqueueAlert(t, 'push', r.id, story.id, 'japan', { attempts: 3 });
      await failedJob('push', jobIds.alert(r.id, story.id, 'push'));
      // Before: "queued" for ever, counted nowhere.
      await ended(r.id, story.id);
      expect(sink.requests.filter((q) => q.deviceId === r.device).map((q) => q.status)).toEqual([500, 500, 500]);
      expect(await record(r.id, story.id)).toMatchObject({ status: 'failed', attempts: 3, lastError: `gave up after 3 attempts: ${await deviceIdOf(r.id)}: push service answered 500` });
      expect((await t.herald.stores.ledger.topicStats(['japan'])).japan!.push.failed - failedBefore).toBe(1);
    });

    it("a give-up whose write fails (Redis away at that moment) is written by the dispatcher's sweep: failed, counted once", async () => {
      const ledger = t.herald.stores.ledger;
      const failedBefore = (await ledger.topicStats(['japan'])).japan!.push.failed;
      const r = await reader();
      const story = await newStory();
      sink.script(r.device, [{ status: 500 }]);
      // The dispatcher's own give-up step fails once, as a dropped connection would make it (or a process that
      // died just after BullMQ failed the job never runs it).
      const giveUp = ledger.giveUp;
      let refused = 0;
      ledger.giveUp = async (...args) => {
        if (refused++ === 0) throw new Error('Connection is closed.');
        return giveUp(...args);
      };
      try {
        await enqueueAlert(t, 'push', r.id, story.id, 'japan', { attempts: 1 });
        await failedJob('push', jobIds.alert(r.id, story.id, 'push'));
        // Before: "queued" for ever. The sweep (every second here, with a second's grace) writes it.
        await ended(r.id, story.id);
      } finally {
        ledger.giveUp = giveUp;
      }
      expect(refused).toBeGreaterThanOrEqual(2);
      expect(await record(r.id, story.id)).toMatchObject({ status: 'failed', attempts: 1, lastError: `gave up after 1 attempt: ${await deviceIdOf(r.id)}: push service answered 500` });
      // Later sweeps do not count it again.
      await new Promise((res) => setTimeout(res, 2500));
      expect((await ledger.topicStats(['japan'])).japan!.push.failed - failedBefore).toBe(1);
    });

    it('an SMTP server answering 451 to every attempt: after the last one the email record is failed', async () => {
      const address = 'always-busy@example.test';
      const id = await addSubscriber(t, clock.now(), { email: address, topics: { japan: { cadence: 'instant', channels: ['email'] } } });
      world!.smtp.script(address, { tempFail: 10, code: 451 });
      const story = await newStory();
      await enqueueAlert(t, 'email', id, story.id, 'japan', { attempts: 3 });
      await failedJob('email', jobIds.alert(id, story.id, 'email'));
      await ended(id, story.id, 'email');
      const rec = await record(id, story.id, 'email');
      expect(rec).toMatchObject({ status: 'failed', attempts: 3 });
      expect(rec!.lastError).toMatch(/^gave up after 3 attempts: SMTP 451/);
      expect(world!.smtp.to(address)).toEqual([]);
    });

    // The second form is the id queueBundle gives a bundle for a time whose first bundle had already run.
    it.each([
      ['named by its release time', 0],
      ['named by its release time and -1', 1],
    ])('a bundle whose push service answers 500 to every attempt (%s): the bundle and the alerts it was for end as failed; a later one stays held', async (_form, n) => {
      const r = await reader();
      const releaseAt = clock.now();
      const [a, b, later] = [await newStory(), await newStory(), await newStory()];
      for (const [s, at] of [[a, releaseAt - 2000], [b, releaseAt - 1000], [later, releaseAt + 1000]] as const) {
        await t.herald.stores.ledger.hold(r.id, s.id, 'japan', 'bundle', 'burst', at);
      }
      sink.script(r.device, Array.from({ length: 5 }, () => ({ status: 500 })));
      const bundleId = bundleIdOf(releaseAt, n);
      const jobId = jobIds.bundle(r.id, bundleId);
      await t.herald.enqueue('PushBundleSend', { subscriberId: r.id, bundleId }, { jobId, attempts: 2, backoff: { type: 'delivery', delay: 100 } });
      await failedJob('push', jobId);
      await until(async () => (await record(r.id, `bundle-${bundleId}`))?.status === 'failed');
      const reason = `gave up after 2 attempts: ${await deviceIdOf(r.id)}: push service answered 500`;
      expect(await record(r.id, `bundle-${bundleId}`)).toMatchObject({ status: 'failed', lastError: reason });
      for (const s of [a, b]) expect(await record(r.id, s.id)).toMatchObject({ status: 'failed', reason: 'burst', via: `bundle:${bundleId}`, lastError: reason });
      // Held after this bundle's time: its own bundle will carry it.
      expect((await t.herald.stores.ledger.held(r.id, 'bundle')).map((h) => h.storyId)).toEqual([later.id]);
    });

    it("a batch in which one alert throws still hands the others' retries to their own jobs, and that alert's too", async () => {
      const [ok, slow, broken] = [await reader(), await reader(), await reader()];
      sink.script(slow.device, [{ status: 429, headers: { 'retry-after': '1' } }]);
      // A device record that does not parse: the alert throws after its claim.
      await t.herald.redis.hset(subscriberKeys(t.prefix, broken.id).push, 'unreadable', '{not json');
      const story = await newStory();
      const alerts: PushBatchAlert[] = [ok, slow, broken].map((r) => ({ subscriberId: r.id, topicId: 'japan', why: 'Matched: japan' }));
      const batchId = jobIds.pushBatch(story.id, 0, 0);
      await t.herald.enqueue('AlertSendPushBatch', { storyId: story.id, alerts }, { jobId: batchId, attempts: 1 });
      await until(async () => (await t.herald.queues.push.getJob(batchId))?.finishedOn !== undefined);
      // Before: Promise.all rejected, the batch failed, and no retry job was enqueued for the 429.
      const batch = (await t.herald.queues.push.getJob(batchId)) as Job;
      expect(batch.returnvalue).toEqual({ sent: 1, ended: 1, failed: 0, retried: 2 });
      for (const r of [slow, broken]) expect((await t.herald.queues.push.getJob(jobIds.alert(r.id, story.id, 'push')))?.name).toBe('AlertSendPush');
      // Broken off half-way, the attempt's outcome is unknown: counted as a reclaim, so a resend is on the record.
      expect(await record(broken.id, story.id)).toMatchObject({ status: 'queued', attempts: 1, reclaims: 1 });
      expect((await record(broken.id, story.id))!.lastError).toMatch(/JSON/);
      // A 429 is a known outcome (nothing was delivered): no reclaim.
      await until(async () => (await record(slow.id, story.id))?.status === 'sent');
      expect((await record(slow.id, story.id))!.reclaims).toBe(0);
      expect(sink.forDevice(slow.device)).toHaveLength(1);
      // The unreadable record would be retried for hours: its job is this test's to end, between two of its attempts
      // (an attempt in progress holds a lock that refuses the removal).
      await until(async () => {
        const job = await t.herald.queues.push.getJob(jobIds.alert(broken.id, story.id, 'push'));
        return job === undefined || (await job.remove().then(() => true, () => false));
      });
    });

    it('an alert whose first attempt broke off before the daily cap was checked still keeps to the cap at its retry', async () => {
      clock.set('2027-03-05T09:00:00Z');
      // No email: a push over the cap is skipped, not held for a digest.
      const r = await reader({ prefs: { dailyPushCap: 1 } });
      const first = await newStory();
      await enqueueAlert(t, 'push', r.id, first.id);
      await ended(r.id, first.id);
      expect(await t.herald.stores.ledger.pushesOn(r.id, '2027-03-05')).toBe(1);
      clock.advance(30 * 60_000);
      // A device record that does not parse: the next alert's first attempt throws after its claim, before the cap.
      const devices = subscriberKeys(t.prefix, r.id).push;
      await t.herald.redis.hset(devices, 'unreadable', '{not json');
      const second = await newStory();
      await enqueueAlert(t, 'push', r.id, second.id, 'japan', { backoff: { type: 'fixed', delay: 1500 } });
      await until(async () => (await record(r.id, second.id))?.lastError?.includes('JSON') === true);
      await t.herald.redis.hdel(devices, 'unreadable');
      await ended(r.id, second.id);
      // Before: the retry counted as no first attempt, took no slot and was pushed: two pushes on a cap of one.
      expect(sink.forDevice(r.device)).toHaveLength(1);
      expect(await record(r.id, second.id)).toMatchObject({ status: 'skipped', reason: 'cap' });
      expect(await t.herald.stores.ledger.pushesOn(r.id, '2027-03-05')).toBe(1);
    });

    it('a batch that gives up hands each alert still waiting to a job of its own, which delivers it once the fault is gone', async () => {
      const [ok, stuck] = [await reader(), await reader()];
      // The reader's follows hash is a string: the claim's script fails half-way, on every attempt of the batch.
      const follows = subscriberKeys(t.prefix, stuck.id).follows;
      await t.herald.redis.del(follows);
      await t.herald.redis.set(follows, 'not a hash');
      const story = await newStory();
      const alerts: PushBatchAlert[] = [ok, stuck].map((r) => ({ subscriberId: r.id, topicId: 'japan', why: 'Matched: japan' }));
      const batchId = jobIds.pushBatch(story.id, 1, 0);
      // As the classifier does: every record opens under its batch before the job exists.
      await t.herald.stores.ledger.open(alerts.map((a) => ({ subscriberId: a.subscriberId, storyId: story.id, channel: 'push' as const, jobId: batchId, topicId: 'japan' })), clock.now());
      await t.herald.enqueue('AlertSendPushBatch', { storyId: story.id, alerts }, { jobId: batchId, attempts: 2, backoff: { type: 'exponential', delay: 100 } });
      await failedJob('push', batchId);
      expect((await t.herald.queues.push.getJob(batchId))!.failedReason).toMatch(/WRONGTYPE/);
      expect(await record(ok.id, story.id)).toMatchObject({ status: 'sent' });
      // Before: the stuck alert stayed "sending" under a batch that would never run again.
      const single = jobIds.alert(stuck.id, story.id, 'push');
      await until(async () => (await t.herald.queues.push.getJob(single))?.name === 'AlertSendPush');
      expect((await record(stuck.id, story.id))!.reclaims).toBeGreaterThanOrEqual(1);
      await t.herald.redis.del(follows);
      await t.herald.stores.subscribers.setFollows(stuck.id, { japan: { cadence: 'instant', channels: ['push'] } });
      await until(async () => (await record(stuck.id, story.id))?.status === 'sent', 40_000);
      expect(sink.forDevice(stuck.device)).toHaveLength(1);
      expect(sink.forDevice(ok.device)).toHaveLength(1);
    }, 60_000);

    it("a batch that gives up after its alert's single job ended beside the batch's claim still hands that alert to a job, which delivers it", async () => {
      const stuck = await reader();
      const follows = subscriberKeys(t.prefix, stuck.id).follows;
      await t.herald.redis.del(follows);
      await t.herald.redis.set(follows, 'not a hash');
      const story = await newStory();
      const alerts: PushBatchAlert[] = [{ subscriberId: stuck.id, topicId: 'japan', why: 'Matched: japan' }];
      const batchId = jobIds.pushBatch(story.id, 1, 1);
      await t.herald.stores.ledger.open(alerts.map((a) => ({ subscriberId: a.subscriberId, storyId: story.id, channel: 'push' as const, jobId: batchId, topicId: 'japan' })), clock.now());
      await t.herald.enqueue('AlertSendPushBatch', { storyId: story.id, alerts }, { jobId: batchId, attempts: 2, backoff: { type: 'fixed', delay: 2000 } });
      await until(async () => (await t.herald.queues.push.getJob(batchId))?.attemptsMade === 1);
      // Between the batch's two attempts, the alert's single job (left by an earlier batch of the story that was
      // answered 503) runs, finds the batch's claim and ends: its id is then a done job's.
      const single = jobIds.alert(stuck.id, story.id, 'push');
      await enqueueAlert(t, 'push', stuck.id, story.id);
      await until(async () => (await t.herald.queues.push.getJob(single))?.finishedOn !== undefined);
      expect((await t.herald.queues.push.getJob(single))!.returnvalue).toBe('already sending');
      await failedJob('push', batchId);
      // The give-up has put the alert back (its reason on the record) and handed it on.
      await until(async () => (await record(stuck.id, story.id))?.lastError?.startsWith('gave up after 2 attempts') === true);
      await t.herald.redis.del(follows);
      await t.herald.stores.subscribers.setFollows(stuck.id, { japan: { cadence: 'instant', channels: ['push'] } });
      // Before: the give-up's add met the done job's id and was dropped; the record waited as queued with no job.
      // The new job may have run before the follows were mended and be waiting out its backoff: made due at once
      // (promoting creates no job, so the old code still never sends).
      await until(async () => {
        await t.herald.queues.push.promoteJobs();
        return (await record(stuck.id, story.id))?.status === 'sent';
      }, 30_000);
      expect(sink.forDevice(stuck.device)).toHaveLength(1);
    }, 60_000);
  });
});
