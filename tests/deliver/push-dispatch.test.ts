import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobIds } from '../../src/queue/jobs.ts';
import { manualClock } from '../helpers/clock.ts';
import type { TestHerald } from '../helpers/herald.ts';
import type { PushSink } from './support/push-sink.ts';
import type { ScriptedSmtp } from './support/smtp.ts';
import { addSubscriber, enqueueAlert, makeStory, type PushWorld, releaseDelayed, settle, startPushWorld } from './support/world.ts';
import { createReader } from '../helpers/readers.ts';

/**
 * Push delivery through the real dispatcher (BullMQ worker, Redis ledger) to a local HTTPS push service
 * that decrypts what it accepts. Herald trusts the service through HERALD_PUSH_CA_FILE, as an operator
 * of a private push service would configure it.
 */
describe('push dispatch', () => {
  const clock = manualClock('2027-01-15T06:00:00Z'); // 11:30 in Kolkata
  let sink: PushSink;
  let smtp: ScriptedSmtp;
  let t: TestHerald;

  const subscriberWithDevice = async (opts: Parameters<typeof addSubscriber>[2] = {}) => {
    const id = await addSubscriber(t, clock.now(), opts);
    const device = sink.newDevice();
    await t.herald.stores.subscribers.addPushSubscription(id, device.subscription, clock.now());
    return { id, device };
  };
  const newStory = async (patch: Parameters<typeof makeStory>[1] = {}) => {
    const story = makeStory(clock.now(), patch);
    await t.herald.stores.stories.put(story);
    return story;
  };
  const record = (sub: string, story: string) => t.herald.stores.ledger.get(sub, story, 'push');

  let world: PushWorld | undefined;
  beforeAll(async () => {
    // 2050 bytes: a full payload with a 1.4 KB URL is refused (413); the same payload trimmed to half the budget fits.
    world = await startPushWorld('push', clock, { sink: { maxBodyBytes: 2050 }, env: { HERALD_PUSH_BURST_WINDOW_SECONDS: '120' } });
    ({ sink, smtp, t } = world);
  }, 60_000);
  afterAll(() => world?.close());

  it('201: one decrypted push with explicit TTL, Urgency and Topic; the ledger says sent; a re-run sends nothing', async () => {
    const { id, device } = await subscriberWithDevice();
    const story = await newStory({ publishedAt: clock.now() - 60 * 60 * 1000, image: 'https://img.example.test/tokyo.jpg' });
    await enqueueAlert(t, 'push', id, story.id);
    await settle(t);
    const got = sink.forDevice(device.id);
    expect(got).toHaveLength(1);
    expect(got[0]!.payload).toMatchObject({ title: story.title, url: story.url, topic: 'Japan', why: 'Matched: japan', storyId: story.id, image: 'https://img.example.test/tokyo.jpg' });
    expect(got[0]!.headers.ttl).toBe('10800');
    expect(got[0]!.headers.urgency).toBe('normal');
    expect(got[0]!.headers.topic).toBe(story.id);
    const [stored] = await t.herald.stores.subscribers.pushSubscriptions(id);
    expect(await record(id, story.id)).toMatchObject({ status: 'sent', attempts: 1, topicId: 'japan', devicesDone: [stored!.id] });
    expect((await t.herald.stores.ledger.inbox(id)).map((i) => i.storyId)).toEqual([story.id]);

    await enqueueAlert(t, 'push', id, story.id, 'japan', { jobId: `rerun-${story.id}` });
    await settle(t);
    expect(sink.forDevice(device.id)).toHaveLength(1);
    expect((await record(id, story.id))!.attempts).toBe(1);
  });

  it('counts sent and clicked per topic and channel, a click once per alert, in /api/delivery/stats', async () => {
    const stats = async () => (await fetch(`${t.baseUrl}/api/delivery/stats`).then((r) => r.json())).topics.india.push;
    const before = await stats();
    const { id, token } = await createReader(t.herald.stores.subscribers, { email: null, timeZone: 'UTC', digestTime: '08:00' }, clock.now());
    await t.herald.stores.subscribers.setFollows(id, { india: { cadence: 'instant', channels: ['push'] } });
    await t.herald.stores.subscribers.addPushSubscription(id, sink.newDevice().subscription, clock.now());
    const story = await newStory({ title: 'Delhi story' });
    await enqueueAlert(t, 'push', id, story.id, 'india');
    await settle(t);
    const click = () => fetch(`${t.baseUrl}/api/me/clicks`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ storyId: story.id }) }).then((r) => r.json());
    expect(await click()).toEqual({ counted: true });
    expect(await click()).toEqual({ counted: false });
    expect(await stats()).toEqual({ ...before, sent: before.sent + 1, clicked: before.clicked + 1 });
    const metrics = await fetch(`${t.baseUrl}/metrics/delivery`).then((r) => r.text());
    expect(metrics).toContain(`herald_delivery_total{topic="india",channel="push",outcome="clicked"} ${before.clicked + 1}\n`);
    const bad = await fetch(`${t.baseUrl}/api/me/clicks`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ storyId: '../x' }) });
    expect(bad.status).toBe(400);
  });

  it('breaking news goes with Urgency high and a short TTL', async () => {
    const { id, device } = await subscriberWithDevice();
    const story = await newStory({ categories: ['Breaking'] });
    await enqueueAlert(t, 'push', id, story.id);
    await settle(t);
    const got = sink.forDevice(device.id);
    expect(got.map((g) => [g.headers.urgency, g.headers.ttl])).toEqual([['high', '1800']]);
  });

  it('404 and 410 remove the subscription; the alert still reaches the working device', async () => {
    const { id, device } = await subscriberWithDevice();
    const gone404 = sink.newDevice();
    const gone410 = sink.newDevice();
    await t.herald.stores.subscribers.addPushSubscription(id, gone404.subscription, clock.now());
    await t.herald.stores.subscribers.addPushSubscription(id, gone410.subscription, clock.now());
    sink.script(gone404.id, [{ status: 404 }]);
    sink.script(gone410.id, [{ status: 410 }]);
    const story = await newStory();
    await enqueueAlert(t, 'push', id, story.id);
    await settle(t);
    expect(sink.forDevice(device.id)).toHaveLength(1);
    const left = await t.herald.stores.subscribers.pushSubscriptions(id);
    expect(left.map((d) => d.endpoint)).toEqual([device.subscription.endpoint]);
    expect((await record(id, story.id))!.status).toBe('sent');
  });

  it('413: trims the payload and retries once; the URL survives whole', async () => {
    const { id, device } = await subscriberWithDevice();
    const url = `https://news.example.test/${'long-path-segment/'.repeat(78)}end`;
    const story = await newStory({ url, title: 'Japan '.repeat(30), summary: 'Very long summary. '.repeat(400) });
    await enqueueAlert(t, 'push', id, story.id);
    await settle(t);
    const statuses = sink.requests.filter((r) => r.deviceId === device.id).map((r) => r.status);
    expect(statuses).toEqual([413, 201]);
    expect(sink.forDevice(device.id)[0]!.payload.url).toBe(url);
    expect((await record(id, story.id))!.status).toBe('sent');
  });

  it('429 with Retry-After, then 500: retried with backoff and sent exactly once', async () => {
    const { id, device } = await subscriberWithDevice();
    sink.script(device.id, [{ status: 429, headers: { 'retry-after': '1' } }, { status: 500 }]);
    const story = await newStory();
    await enqueueAlert(t, 'push', id, story.id);
    await t.waitIdle(20_000);
    expect(sink.requests.filter((r) => r.deviceId === device.id).map((r) => r.status)).toEqual([429, 500, 201]);
    expect(sink.forDevice(device.id)).toHaveLength(1);
    const rec = await record(id, story.id);
    expect(rec).toMatchObject({ status: 'sent', attempts: 3 });
    expect(rec!.lastError).toContain('push service answered 500');
  });

  it('two devices, one answering 500 once (the first device, or the last): the retry reaches it, the other gets the alert once', async () => {
    const story = await newStory();
    const readers = await Promise.all([0, 1].map(async (failing) => {
      const { id, device: first } = await subscriberWithDevice();
      const second = sink.newDevice();
      await t.herald.stores.subscribers.addPushSubscription(id, second.subscription, clock.now());
      // The order the dispatcher sends in is the devices hash's (not always the order they were added in):
      // each reader must really have its failing device sent to first, or last.
      const inOrder = (await t.herald.stores.subscribers.pushSubscriptions(id)).map((d) => [first, second].find((x) => x.subscription.endpoint === d.endpoint)!);
      expect(inOrder).toHaveLength(2);
      sink.script(inOrder[failing]!.id, [{ status: 500 }]);
      await enqueueAlert(t, 'push', id, story.id);
      return { id, devices: inOrder, failing };
    }));
    await t.waitIdle(30_000);
    for (const r of readers) {
      const [failed, fine] = r.failing === 0 ? r.devices : [...r.devices].reverse();
      expect(sink.requests.filter((q) => q.deviceId === failed!.id).map((q) => q.status)).toEqual([500, 201]);
      // Reached on the first attempt and marked then: the retry does not send to it again.
      expect(sink.requests.filter((q) => q.deviceId === fine!.id).map((q) => q.status)).toEqual([201]);
      expect(await record(r.id, story.id)).toMatchObject({ status: 'sent', attempts: 2 });
      expect((await record(r.id, story.id))!.devicesDone).toHaveLength(2);
    }
  });

  it('another 4xx is failed-permanent with the reason kept, and counted for the topic', async () => {
    const before = (await t.herald.stores.ledger.topicStats(['india'])).india!.push.failed;
    const { id, device } = await subscriberWithDevice({ topics: { india: { cadence: 'instant', channels: ['push'] } } });
    sink.script(device.id, [{ status: 400 }]);
    const story = await newStory();
    await enqueueAlert(t, 'push', id, story.id, 'india');
    await t.waitIdle();
    expect(sink.forDevice(device.id)).toHaveLength(0);
    const rec = await record(id, story.id);
    expect(rec).toMatchObject({ status: 'failed', attempts: 1 });
    expect(rec!.lastError).toBe(`${(await t.herald.stores.subscribers.pushSubscriptions(id))[0]!.id}: push service answered 400`);
    expect((await t.herald.stores.ledger.topicStats(['india'])).india!.push.failed).toBe(before + 1);
  });

  it('a subscription stored with a malformed key fails alone, recorded; the next subscriber still gets the alert', async () => {
    const bad = await addSubscriber(t, clock.now());
    await t.herald.stores.subscribers.addPushSubscription(bad, { endpoint: `https://127.0.0.1:${sink.port}/push/nope`, keys: { p256dh: 'AAAA', auth: 'BBBB' } }, clock.now());
    const { id: good, device } = await subscriberWithDevice();
    const story = await newStory();
    await enqueueAlert(t, 'push', bad, story.id);
    await enqueueAlert(t, 'push', good, story.id);
    await t.waitIdle();
    const rec = await record(bad, story.id);
    expect(rec!.status).toBe('failed');
    expect(rec!.lastError).toMatch(/invalid subscription keys: .*p256dh/);
    expect(sink.forDevice(device.id)).toHaveLength(1);
  });

  it('signs VAPID once per push service and reuses one keep-alive connection pool', async () => {
    const before = sink.connections();
    const subs = await Promise.all(Array.from({ length: 8 }, () => subscriberWithDevice()));
    const story = await newStory();
    for (const s of subs) await enqueueAlert(t, 'push', s.id, story.id);
    await settle(t);
    const got = subs.flatMap((s) => sink.forDevice(s.device.id));
    expect(got).toHaveLength(8);
    const auth = new Set(sink.requests.map((r) => r.headers.authorization));
    expect(auth.size).toBe(1);
    expect(sink.connections() - before).toBeLessThan(8);
  });

  describe('quiet hours, bursts and the daily cap', () => {
    it('holds non-urgent pushes in quiet hours and sends them as one bundle when they end; breaking passes', async () => {
      clock.set('2027-01-15T18:00:00Z'); // 23:30 in Kolkata
      const sentBefore = (await t.herald.stores.ledger.topicStats(['japan', 'india']));
      const alertsSent = async () => (await t.herald.stores.stats.totals())['herald_alerts_total{channel="push",outcome="sent"}'] ?? 0;
      const metricSentBefore = await alertsSent();
      const { id, device } = await subscriberWithDevice({
        timeZone: 'Asia/Kolkata',
        topics: { japan: { cadence: 'instant', channels: ['push'] }, india: { cadence: 'instant', channels: ['push'] } },
        prefs: { quietHours: { from: '22:00', to: '07:00' } },
      });
      const s1 = await newStory();
      const s2 = await newStory();
      const s3 = await newStory({ title: 'India story' });
      const breaking = await newStory({ title: 'BREAKING: strong quake near Tokyo' });
      await enqueueAlert(t, 'push', id, s1.id, 'japan');
      await enqueueAlert(t, 'push', id, s2.id, 'japan');
      await enqueueAlert(t, 'push', id, s3.id, 'india');
      await enqueueAlert(t, 'push', id, breaking.id, 'japan');
      await settle(t);
      expect(sink.forDevice(device.id).map((p) => p.payload.title)).toEqual([breaking.title]);
      expect(await record(id, s1.id)).toMatchObject({ status: 'held', reason: 'quiet-hours' });

      clock.set('2027-01-16T01:31:00Z'); // 07:01 in Kolkata
      await releaseDelayed(t);
      const got = sink.forDevice(device.id);
      expect(got).toHaveLength(2);
      expect(got[1]!.payload.title).toBe('3 new stories in Japan, India');
      expect(got[1]!.payload.stories).toEqual([s1.id, s2.id, s3.id]);
      for (const s of [s1, s2, s3]) expect(await record(id, s.id)).toMatchObject({ status: 'sent', reason: 'quiet-hours', via: `bundle:${Date.parse('2027-01-16T01:30:00Z')}` });
      await releaseDelayed(t);
      expect(sink.forDevice(device.id)).toHaveLength(2);
      // Each alert counts once (the breaking push and the three bundled ones); the bundle itself does not.
      const after = await t.herald.stores.ledger.topicStats(['japan', 'india']);
      expect(after.japan!.push.sent - sentBefore.japan!.push.sent).toBe(3);
      expect(after.india!.push.sent - sentBefore.india!.push.sent).toBe(1);
      // /metrics agrees with the API: four alerts sent, not five (the bundle's own record is no alert).
      expect(await alertsSent() - metricSentBefore).toBe(4);

      // A click on the bundle (what the service worker posts) counts the alerts it carried, under their topics, once;
      // a story it did not carry (the breaking one went alone) is not counted by it. Before, no topic counted it.
      const token = await t.herald.stores.subscribers.issueToken(id);
      const click = (body: object) => fetch(`${t.baseUrl}/api/me/clicks`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
      const bundle = { storyId: got[1]!.payload.storyId, channel: 'push', stories: [...(got[1]!.payload.stories as string[]), breaking.id] };
      expect(await click(bundle)).toEqual({ counted: true });
      expect(await click(bundle)).toEqual({ counted: false });
      const clicked = await t.herald.stores.ledger.topicStats(['japan', 'india']);
      expect(clicked.japan!.push.clicked - after.japan!.push.clicked).toBe(2);
      expect(clicked.india!.push.clicked - after.india!.push.clicked).toBe(1);
      expect((await record(id, breaking.id))!.clickedAt).toBeNull();
    });

    /** Saves the reader's quiet hours through the settings API, as their browser does. */
    const quietHoursSaver = async (id: string) => {
      const token = await t.herald.stores.subscribers.issueToken(id);
      return async (quietHours: { from: string; to: string } | null) => {
        const res = await fetch(`${t.baseUrl}/api/me`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ delivery: { quietHours } }) });
        expect(res.status).toBe(200);
      };
    };
    /** Waits until the device has `n` pushes (a bundle brought forward runs at once, outside releaseDelayed). */
    const pushesArrive = async (deviceId: string, n: number) => {
      const deadline = Date.now() + 10_000;
      while (sink.forDevice(deviceId).length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await settle(t);
    };
    /** The bundle's id, from the ledger id its notification names. */
    const bundleIdOfPush = (p: { payload: Record<string, unknown> }) => String(p.payload.storyId).slice('bundle-'.length);

    it('a reader who shortens their quiet hours gets the held pushes at the new end, and at once when they turn them off', async () => {
      clock.set('2027-01-18T23:00:00Z');
      const { id, device } = await subscriberWithDevice({ prefs: { quietHours: { from: '22:00', to: '07:00' } } });
      const saveQuietHours = await quietHoursSaver(id);
      const [s1, s2] = [await newStory(), await newStory()];
      await enqueueAlert(t, 'push', id, s1.id);
      await enqueueAlert(t, 'push', id, s2.id);
      await settle(t);
      expect(await record(id, s1.id)).toMatchObject({ status: 'held', reason: 'quiet-hours' });
      const oldEnd = Date.parse('2027-01-19T07:00:00Z');
      const bundle = async () => (await t.herald.queues.push.getJob(jobIds.bundle(id, String(oldEnd))))!;
      expect((await bundle()).delay).toBe(oldEnd - clock.now());

      // 22:00-00:00 from 23:30: the pending bundle is due at midnight, not at 07:00 (before, it still waited for 07:00).
      clock.set('2027-01-18T23:30:00Z');
      await saveQuietHours({ from: '22:00', to: '00:00' });
      expect(await (await bundle()).getState()).toBe('delayed');
      expect((await bundle()).delay).toBe(Date.parse('2027-01-19T00:00:00Z') - clock.now());
      expect(sink.forDevice(device.id)).toEqual([]);

      // Off: the held pushes go now, as one bundle.
      await saveQuietHours(null);
      await pushesArrive(device.id, 1);
      expect(sink.forDevice(device.id).map((p) => p.payload.stories)).toEqual([[s1.id, s2.id]]);
      for (const s of [s1, s2]) expect(await record(id, s.id)).toMatchObject({ status: 'sent', reason: 'quiet-hours', via: `bundle:${oldEnd}` });
      expect(await t.herald.stores.ledger.held(id, 'bundle')).toEqual([]);
    });

    it('a reader who turns quiet hours off, then on again with the same end, gets the pushes held since at that end, once', async () => {
      clock.set('2027-01-20T23:00:00Z');
      const sentBefore = (await t.herald.stores.ledger.topicStats(['japan'])).japan!.push.sent;
      const { id, device } = await subscriberWithDevice({ prefs: { quietHours: { from: '22:00', to: '07:00' } } });
      const saveQuietHours = await quietHoursSaver(id);
      const s1 = await newStory();
      await enqueueAlert(t, 'push', id, s1.id);
      await settle(t);
      expect(await record(id, s1.id)).toMatchObject({ status: 'held', reason: 'quiet-hours' });
      const end = Date.parse('2027-01-21T07:00:00Z');

      // Off: the bundle due at 07:00 is brought forward and sent now; its job is done (BullMQ keeps it for days).
      await saveQuietHours(null);
      await pushesArrive(device.id, 1);
      expect(sink.forDevice(device.id).map((p) => p.payload.stories)).toEqual([[s1.id]]);
      expect(await t.herald.queues.push.getJobState(jobIds.bundle(id, String(end)))).toBe('completed');

      // On again, the same 22:00-07:00: two pushes held side by side, both for 07:00.
      clock.set('2027-01-20T23:20:00Z');
      await saveQuietHours({ from: '22:00', to: '07:00' });
      const [s2, s3] = [await newStory(), await newStory()];
      await Promise.all([enqueueAlert(t, 'push', id, s2.id), enqueueAlert(t, 'push', id, s3.id)]);
      await settle(t);
      for (const s of [s2, s3]) expect(await record(id, s.id)).toMatchObject({ status: 'held', reason: 'quiet-hours' });

      clock.set('2027-01-21T07:01:00Z');
      await releaseDelayed(t);
      // Before: their bundle was added under the done job's id, which BullMQ ignored, and they stayed held.
      const got = sink.forDevice(device.id);
      expect(got.map((p) => (p.payload.stories as string[]).slice().sort())).toEqual([[s1.id], [s2.id, s3.id].sort()]);
      for (const s of [s2, s3]) expect(await record(id, s.id)).toMatchObject({ status: 'sent', reason: 'quiet-hours', via: `bundle:${bundleIdOfPush(got[1]!)}` });
      expect(await t.herald.stores.ledger.get(id, String(got[1]!.payload.storyId), 'push')).toMatchObject({ status: 'sent' });
      expect(await t.herald.stores.ledger.held(id, 'bundle')).toEqual([]);
      // Once: no second bundle for the two holds, and each alert counted once.
      await releaseDelayed(t);
      expect(sink.forDevice(device.id)).toHaveLength(2);
      expect((await t.herald.stores.ledger.topicStats(['japan'])).japan!.push.sent - sentBefore).toBe(3);
    });

    it('a bundle due by the queue while its dispatcher still reads the quiet hours as on waits for their end, and goes then', async () => {
      clock.set('2027-01-22T23:00:00Z');
      const sentBefore = (await t.herald.stores.ledger.topicStats(['japan'])).japan!.push.sent;
      const { id, device } = await subscriberWithDevice({ prefs: { quietHours: { from: '22:00', to: '07:00' } } });
      const s1 = await newStory();
      await enqueueAlert(t, 'push', id, s1.id);
      await settle(t);
      expect(await record(id, s1.id)).toMatchObject({ status: 'held', reason: 'quiet-hours' });

      // The job comes due by the queue's clock while the dispatcher's still says 06:59:30 (two machines' clocks): it
      // finds the reader quiet until 07:00, its own release time, and moves itself there.
      clock.set('2027-01-23T06:59:30Z');
      await releaseDelayed(t);
      expect(sink.forDevice(device.id)).toEqual([]);
      expect(await record(id, s1.id)).toMatchObject({ status: 'held', reason: 'quiet-hours' });

      clock.set('2027-01-23T07:00:30Z');
      await releaseDelayed(t);
      // Before: the move re-added the running job's own id, which BullMQ ignored, and the push stayed held.
      const got = sink.forDevice(device.id);
      expect(got.map((p) => p.payload.stories)).toEqual([[s1.id]]);
      expect(await record(id, s1.id)).toMatchObject({ status: 'sent', reason: 'quiet-hours', via: `bundle:${bundleIdOfPush(got[0]!)}` });
      expect(await t.herald.stores.ledger.held(id, 'bundle')).toEqual([]);
      await releaseDelayed(t);
      expect(sink.forDevice(device.id)).toHaveLength(1);
      expect((await t.herald.stores.ledger.topicStats(['japan'])).japan!.push.sent - sentBefore).toBe(1);
    });

    it('bundles a burst: the first push goes at once, the next matches within the window go as one', async () => {
      clock.set('2027-01-16T06:00:00Z');
      const { id, device } = await subscriberWithDevice();
      const [a, b, c] = [await newStory(), await newStory(), await newStory()];
      await enqueueAlert(t, 'push', id, a.id);
      await settle(t);
      clock.advance(30_000);
      await enqueueAlert(t, 'push', id, b.id);
      clock.advance(30_000);
      await enqueueAlert(t, 'push', id, c.id);
      await settle(t);
      expect(sink.forDevice(device.id)).toHaveLength(1);
      expect(await record(id, b.id)).toMatchObject({ status: 'held', reason: 'burst' });
      clock.advance(61_000);
      await releaseDelayed(t);
      expect(sink.forDevice(device.id).map((p) => p.payload.title)).toEqual([a.title, '2 new stories in Japan']);
    });

    it('bundles a burst whose matches are sent side by side (stories classified together): one push, then one bundle', async () => {
      clock.set('2027-01-16T09:00:00Z');
      const { id, device } = await subscriberWithDevice();
      // A push service that takes a moment: the three jobs (concurrency 4) are all past their claim before any ends.
      sink.script(device.id, [{ status: 201, delayMs: 400 }, { status: 201, delayMs: 400 }, { status: 201, delayMs: 400 }]);
      const stories = [await newStory(), await newStory(), await newStory()];
      await Promise.all(stories.map((s) => enqueueAlert(t, 'push', id, s.id)));
      await settle(t);
      // Before: each job read "no push yet" at its claim, and the reader got three notifications at once.
      expect(sink.forDevice(device.id)).toHaveLength(1);
      const statuses = await Promise.all(stories.map(async (s) => (await record(id, s.id))!.status));
      expect(statuses.filter((s) => s === 'sent')).toHaveLength(1);
      expect(statuses.filter((s) => s === 'held')).toHaveLength(2);
      clock.advance(121_000);
      await releaseDelayed(t);
      const got = sink.forDevice(device.id);
      expect(got).toHaveLength(2);
      expect(got[1]!.payload.title).toBe('2 new stories in Japan');
      for (const s of stories) expect((await record(id, s.id))!.status).toBe('sent');
    });

    it('the daily cap holds; what exceeds it goes to the digest, marked in the ledger', async () => {
      clock.set('2027-01-17T03:00:00Z');
      const { id, device } = await subscriberWithDevice({ email: 'cap@example.test', digestTime: '20:00', prefs: { dailyPushCap: 2 } });
      await t.herald.enqueue('DigestTick', {}); // schedules nothing yet: rescheduling happens through the API
      const stories = [await newStory(), await newStory(), await newStory()];
      for (const s of stories) {
        await enqueueAlert(t, 'push', id, s.id);
        await settle(t);
        clock.advance(5 * 60_000);
      }
      expect(sink.forDevice(device.id)).toHaveLength(2);
      expect(await record(id, stories[2]!.id)).toMatchObject({ status: 'held', reason: 'cap' });
      expect(await t.herald.stores.ledger.pushesOn(id, '2027-01-17')).toBe(2);

      await t.herald.stores.digests.schedule(id, Date.parse('2027-01-17T20:00:00Z'));
      await t.herald.stores.digests.initWindow(id, Date.parse('2027-01-17T00:00:00Z'));
      clock.set('2027-01-17T20:01:00Z');
      await t.herald.enqueue('DigestTick', {});
      await settle(t);
      const mails = smtp.to('cap@example.test');
      expect(mails).toHaveLength(1);
      expect(mails[0]!.text).toContain(stories[2]!.title);
      expect(mails[0]!.text).not.toContain(stories[0]!.title);
      expect(await record(id, stories[2]!.id)).toMatchObject({ status: 'skipped', reason: 'cap', via: 'digest:2027-01-17' });
    });
  });
});

/**
 * HERALD_PUSH_RATE_PER_SECOND reaches the dispatcher's sender: one alert to a reader's eight devices, all on
 * one push service, is paced to the configured rate (the sender's own pacing is tested in push-transport).
 */
describe('push dispatch: the configured rate per push service', () => {
  const clock = manualClock('2027-01-15T06:00:00Z');
  let sink: PushSink;
  let t: TestHerald;
  let world: PushWorld | undefined;
  beforeAll(async () => {
    world = await startPushWorld('push-rate', clock, { env: { HERALD_PUSH_RATE_PER_SECOND: '3' } });
    ({ sink, t } = world);
  }, 60_000);
  afterAll(() => world?.close());

  it('sends the eight pushes of one alert at no more than the configured rate, and every one arrives once', async () => {
    const id = await addSubscriber(t, clock.now());
    const devices = Array.from({ length: 8 }, () => sink.newDevice());
    for (const d of devices) await t.herald.stores.subscribers.addPushSubscription(id, d.subscription, clock.now());
    const story = makeStory(clock.now());
    await t.herald.stores.stories.put(story);
    await enqueueAlert(t, 'push', id, story.id);
    await settle(t);
    for (const d of devices) expect(sink.forDevice(d.id)).toHaveLength(1);
    const at = sink.requests.filter((r) => devices.some((d) => d.id === r.deviceId)).map((r) => r.at);
    // A bucket of 3 refilled at 3 per second: the other 5 need at least 1.67 s (the default rate, 500/s, sends
    // the eight within a few tens of milliseconds).
    expect(Math.max(...at) - Math.min(...at)).toBeGreaterThanOrEqual(1400);
    expect((await t.herald.stores.ledger.get(id, story.id, 'push'))!.status).toBe('sent');
  });
});
