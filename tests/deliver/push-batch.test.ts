import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { jobIds, type PushBatchAlert } from '../../src/queue/jobs.ts';
import type { DeliveryRecord } from '../../src/store/ledger.ts';
import { manualClock } from '../helpers/clock.ts';
import type { TestHerald } from '../helpers/herald.ts';
import type { PushSink } from './support/push-sink.ts';
import { addSubscriber, makeStory, type PushWorld, releaseDelayed, settle, startPushWorld } from './support/world.ts';

/**
 * Push fan-out in batch jobs (AlertSendPushBatch) through the real dispatcher, Redis ledger and a local HTTPS
 * push service that decrypts what it accepts: each alert of a batch ends on its own (sent, failed, skipped,
 * held), one the service asks to retry leaves the batch as a single AlertSendPush no sooner than Retry-After
 * without holding the others, a re-run sends nothing, and the classifier opens and enqueues the batches.
 */
describe('push fan-out batches', () => {
  const clock = manualClock('2027-01-15T06:00:00Z');
  let sink: PushSink;
  let t: TestHerald;

  const reader = async (opts: Parameters<typeof addSubscriber>[2] = {}, withDevice = true) => {
    const id = await addSubscriber(t, clock.now(), opts);
    const device = sink.newDevice();
    if (withDevice) await t.herald.stores.subscribers.addPushSubscription(id, device.subscription, clock.now());
    return { id, device: device.id };
  };
  const newStory = async (patch: Parameters<typeof makeStory>[1] = {}) => {
    const story = makeStory(clock.now(), patch);
    await t.herald.stores.stories.put(story);
    return story;
  };
  const record = (sub: string, story: string) => t.herald.stores.ledger.get(sub, story, 'push');
  const statuses = (device: string) => sink.requests.filter((r) => r.deviceId === device).map((r) => r.status);
  const job = async (id: string) => (await t.herald.queues.push.getJob(id)) as Job;
  const until = async (ok: () => boolean | Promise<boolean>, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  let world: PushWorld | undefined;
  beforeAll(async () => {
    world = await startPushWorld('push-batch', clock, { env: { HERALD_PUSH_BATCH_SIZE: '3' } });
    ({ sink, t } = world);
  }, 60_000);
  afterAll(() => world?.close());

  // Shared by the first two cases: one story's batch of readers with mixed fates, then the same batch again.
  let w: Record<'ok1' | 'ok2' | 'gone' | 'muted' | 'noDevice' | 'quiet' | 'slow', { id: string; device: string }>;
  let storyId: string;
  let alerts: PushBatchAlert[];

  it('delivers each alert of a batch on its own; a 429 leaves as one AlertSendPush, after Retry-After, holding no one', async () => {
    w = {
      ok1: await reader(),
      ok2: await reader(),
      gone: await reader(),
      muted: await reader(),
      noDevice: await reader({}, false),
      // 06:00 UTC is inside 05:00-09:00.
      quiet: await reader({ prefs: { quietHours: { from: '05:00', to: '09:00' } } }),
      slow: await reader(),
    };
    await t.herald.stores.subscribers.setFollows(w.muted.id, {}); // unfollowed after the story was planned
    sink.script(w.gone.device, [{ status: 410 }]);
    sink.script(w.slow.device, [{ status: 429, headers: { 'retry-after': '5' } }]);
    const story = await newStory();
    storyId = story.id;
    alerts = Object.values(w).map((r) => ({ subscriberId: r.id, topicId: 'japan', why: 'Matched: japan' }));
    const batchId = jobIds.pushBatch(storyId, 0, 0);
    await t.herald.enqueue('AlertSendPushBatch', { storyId, alerts }, { jobId: batchId, backoff: { type: 'exponential', delay: 100 } });
    await settle(t);

    expect((await job(batchId)).returnvalue).toEqual({ sent: 2, ended: 5, failed: 1, retried: 1 });
    for (const r of [w.ok1, w.ok2]) {
      expect(sink.forDevice(r.device).map((p) => p.payload)).toMatchObject([{ storyId, title: story.title, url: story.url, topic: 'Japan', why: 'Matched: japan' }]);
      expect(await record(r.id, storyId)).toMatchObject({ status: 'sent', attempts: 1, jobId: batchId, topicId: 'japan' });
      expect((await t.herald.stores.ledger.inbox(r.id)).map((i) => i.storyId)).toEqual([storyId]);
    }
    expect(statuses(w.gone.device)).toEqual([410]);
    expect(await t.herald.stores.subscribers.pushSubscriptions(w.gone.id)).toEqual([]);
    expect(await record(w.gone.id, storyId)).toMatchObject({ status: 'failed', lastError: 'every push subscription was gone' });
    expect(await record(w.muted.id, storyId)).toMatchObject({ status: 'skipped', reason: 'muted' });
    expect(await record(w.noDevice.id, storyId)).toMatchObject({ status: 'skipped', reason: 'no-device' });
    expect(await record(w.quiet.id, storyId)).toMatchObject({ status: 'held', reason: 'quiet-hours' });
    for (const r of [w.muted, w.quiet]) expect(statuses(r.device)).toEqual([]);

    // The others are done while the slow one waits, as a single job of its own.
    const retryId = jobIds.alert(w.slow.id, storyId, 'push');
    expect(await record(w.slow.id, storyId)).toMatchObject({ status: 'queued', attempts: 1, lastError: `${(await t.herald.stores.subscribers.pushSubscriptions(w.slow.id))[0]!.id}: push service answered 429` });
    const retry = await job(retryId);
    expect(retry.name).toBe('AlertSendPush');
    expect(retry.data).toEqual({ subscriberId: w.slow.id, topicId: 'japan', why: 'Matched: japan', storyId });
    // Backoff for a first retry is 2.5-5 s with jitter; Retry-After (5 s) is the floor.
    expect(retry.opts.delay).toBe(5000);
    expect(await retry.getState()).toBe('delayed');

    await until(() => sink.forDevice(w.slow.device).length > 0);
    await settle(t);
    expect(statuses(w.slow.device)).toEqual([429, 201]);
    expect(sink.forDevice(w.slow.device)).toHaveLength(1);
    const [first, second] = sink.requests.filter((r) => r.deviceId === w.slow.device);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(5000);
    const others = sink.requests.filter((r) => r.deviceId !== w.slow.device);
    expect(others.every((r) => r.at < second!.at)).toBe(true);
    expect(await record(w.slow.id, storyId)).toMatchObject({ status: 'sent', attempts: 2, jobId: retryId });
    expect(await retry.getState()).toBe('completed');
  });

  it('the same batch run again under another job id sends nothing and changes no ledger record', async () => {
    const before = new Map<string, DeliveryRecord | null>();
    for (const r of Object.values(w)) before.set(r.id, await record(r.id, storyId));
    const requests = sink.requests.length;
    const rerunId = `rerun-${jobIds.pushBatch(storyId, 0, 0)}`;
    await t.herald.enqueue('AlertSendPushBatch', { storyId, alerts }, { jobId: rerunId, backoff: { type: 'exponential', delay: 100 } });
    await settle(t);
    expect((await job(rerunId)).returnvalue).toEqual({ sent: 0, ended: 7, failed: 0, retried: 0 });
    expect(sink.requests.length).toBe(requests);
    for (const r of Object.values(w)) expect(await record(r.id, storyId)).toEqual(before.get(r.id));
    expect((await t.herald.stores.ledger.inbox(w.ok1.id)).map((i) => i.storyId)).toEqual([storyId]);
  });

  it('classifying a story for 7 push followers with HERALD_PUSH_BATCH_SIZE=3 opens 7 records and enqueues 3 batches', async () => {
    const followers: { id: string; device: string }[] = [];
    for (let i = 0; i < 7; i++) followers.push(await reader({ topics: { india: { cadence: 'instant', channels: ['push'] } } }));
    const story = await newStory({ title: 'Delhi opens a new metro line' });
    const ids = [0, 1, 2].map((n) => jobIds.pushBatch(story.id, 0, n));
    const batchOf = new Map<string, string>();
    // Paused, so what the classifier left behind is seen before any of it is sent.
    await t.herald.queues.push.pause();
    try {
      await t.herald.enqueue('StoryClassify', { storyId: story.id }, { jobId: jobIds.storyClassify(story.id) });
      const classify = (await t.herald.queues.classify.getJob(jobIds.storyClassify(story.id)))!;
      await until(async () => (await classify.getState()) === 'completed');
      expect((await t.herald.queues.classify.getJob(classify.id!))!.returnvalue).toEqual({ topics: ['india'], alerts: 7 });

      const jobs = (await t.herald.queues.push.getJobs(['waiting'])).filter((j) => j.data.storyId === story.id);
      expect(jobs.map((j) => [j.name, j.id!.replace(/-[0-9a-f]{8}$/, '')]).sort()).toEqual(ids.map((id) => ['AlertSendPushBatch', id]));
      for (const j of jobs) for (const a of j.data.alerts as PushBatchAlert[]) batchOf.set(a.subscriberId, j.id!);
      expect(jobs.map((j) => j.data.alerts.length).sort()).toEqual([1, 3, 3]);
      expect([...batchOf.keys()].sort()).toEqual(followers.map((f) => f.id).sort());
      for (const f of followers) {
        expect(await record(f.id, story.id)).toMatchObject({ status: 'queued', attempts: 0, jobId: batchOf.get(f.id), topicId: 'india' });
      }
      expect(sink.requests.filter((r) => followers.some((f) => f.device === r.deviceId))).toEqual([]);
    } finally {
      await t.herald.queues.push.resume();
    }

    await settle(t);
    for (const f of followers) {
      expect(sink.forDevice(f.device).map((p) => p.payload.storyId)).toEqual([story.id]);
      expect(await record(f.id, story.id)).toMatchObject({ status: 'sent', attempts: 1, jobId: batchOf.get(f.id), topicId: 'india' });
    }
    const sent = await Promise.all([...new Set(batchOf.values())].map(async (id) => ((await job(id)).returnvalue as { sent: number }).sent));
    expect(sent.sort()).toEqual([1, 3, 3]);
  });

  it('a classification run again after its batches were enqueued (a retry) still reaches a reader who followed in between', async () => {
    const first = [await reader({ topics: { india: { cadence: 'instant', channels: ['push'] } } }), await reader({ topics: { india: { cadence: 'instant', channels: ['push'] } } })];
    const story = await newStory({ title: 'Delhi metro extends its night service' });
    const classifyId = jobIds.storyClassify(story.id);
    await t.herald.queues.push.pause();
    let late: { id: string; device: string };
    try {
      await t.herald.enqueue('StoryClassify', { storyId: story.id }, { jobId: classifyId });
      await until(async () => (await (await t.herald.queues.classify.getJob(classifyId))!.getState()) === 'completed');
      // A reader follows the topic before the classification runs again, as a retry after a failure that came
      // after its enqueues (the topic log, the classified mark, a worker killed) would.
      late = await reader({ topics: { india: { cadence: 'instant', channels: ['push'] } } });
      await (await t.herald.queues.classify.getJob(classifyId))!.retry('completed');
      await until(async () => (await (await t.herald.queues.classify.getJob(classifyId))!.getState()) === 'completed');
    } finally {
      await t.herald.queues.push.resume();
    }
    await settle(t);
    // Before: the late reader's record opened under the first run's batch id, whose job (without them) existed, so
    // no job carried them and the record stayed queued.
    for (const r of [...first, late]) {
      expect(sink.forDevice(r.device).map((p) => p.payload.storyId)).toEqual([story.id]);
      expect(await record(r.id, story.id)).toMatchObject({ status: 'sent' });
    }
  });
  it('an alert a second batch sends back for a retry after its single job ended beside that batch\'s claim still gets a job, and arrives', async () => {
    // A reader in two batches of one story (a classification run again after a reader followed: its batch ids differ
    // by their members' tag). The first batch's 503 sends the alert off as its single job; the second batch claims
    // it meanwhile, and its 503 takes 3 s, during which the single job runs, finds the claim and ends.
    const r = await reader();
    const story = await newStory();
    const alerts = [{ subscriberId: r.id, topicId: 'japan', why: 'Matched: japan' }];
    sink.script(r.device, [{ status: 503 }, { status: 503, delayMs: 3000 }]);
    const single = jobIds.alert(r.id, story.id, 'push');
    await t.herald.enqueue('AlertSendPushBatch', { storyId: story.id, alerts }, { jobId: `${jobIds.pushBatch(story.id, 0, 0)}-00000001` });
    await until(async () => (await (await t.herald.queues.push.getJob(single))?.getState()) === 'delayed');
    await t.herald.enqueue('AlertSendPushBatch', { storyId: story.id, alerts }, { jobId: `${jobIds.pushBatch(story.id, 0, 0)}-00000002` });
    await until(() => statuses(r.device).length === 2);
    await (await job(single)).promote();
    await until(async () => (await (await job(single)).getState()) === 'completed');
    expect((await job(single)).returnvalue).toBe('already sending');
    // The second batch's 503 comes back: the alert is sent off for a retry again, its single job's id taken by a done job.
    await until(async () => (await record(r.id, story.id))?.status !== 'sending');
    await settle(t);
    await releaseDelayed(t);

    expect(sink.forDevice(r.device).map((p) => p.payload.storyId)).toEqual([story.id]);
    expect(statuses(r.device)).toEqual([503, 503, 201]);
    expect(await record(r.id, story.id)).toMatchObject({ status: 'sent', attempts: 3 });
  });
});
