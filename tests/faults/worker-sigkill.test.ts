import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestMessageId } from '../../src/digest/send-digest.ts';
import { jobIds } from '../../src/queue/jobs.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import type { Role } from '../../src/runtime/herald.ts';
import { createDigestStore } from '../../src/store/digests.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { waitFor, type HeraldProcess } from '../helpers/processes.ts';
import { createReader } from '../helpers/readers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { startPushSink, type PushSink } from '../deliver/support/push-sink.ts';
import { startScriptedSmtp, type ScriptedSmtp } from '../deliver/support/smtp.ts';
import { faultEnv, rss, startRole, startSlowFeeds, stopRole, tally } from './support.ts';

const FEEDS = 10; // one new story each
const PUSH_READERS = 800;
const EMAIL_READERS = 200;
const DIGEST_READERS = 100;
const PUSH_CONCURRENCY = 4;
/** Alerts per fan-out batch job: a killed push process had at most PUSH_CONCURRENCY x PUSH_BATCH sends in flight. */
const PUSH_BATCH = 4;
const EMAIL_CONCURRENCY = 4;

/**
 * Every worker role runs as its own process (`herald worker <role>`) and each is killed with SIGKILL while
 * it has work in hand, then started again: the poller mid-fetch, the classifier mid-fan-out, the push,
 * email and digest dispatchers mid-send. 10 stories reach 1,000 instant readers (10,000 alerts: 8,000
 * push, 2,000 email) and 100 daily readers get a digest. Afterwards nothing is lost and nothing doubled,
 * by the ledger and by what the local push service and SMTP server received. A send on the wire when its
 * process died cannot be known to have arrived, so it goes again with the same Topic / Message-ID: those
 * same-id resends are bounded by what was in flight.
 */
describe('SIGKILL of each worker role during a fan-out of 10,000 alerts', () => {
  const prefix = uniquePrefix('faultkill');
  const redis = createRedis(TEST_REDIS_URL, { name: 'fault-kill' });
  const queueConnection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'fault-kill-q' });
  const queues = createQueues(queueConnection, prefix);
  const enqueue = createEnqueue(queues);
  const subscribers = createSubscriberStore(redis, prefix);
  const ledger = createLedger(redis, prefix);
  const digests = createDigestStore(redis, prefix);
  const running = new Set<HeraldProcess>();
  let sink: PushSink;
  let smtp: ScriptedSmtp;
  let publisher: Awaited<ReturnType<typeof startSlowFeeds>>;
  let env: Record<string, string>;

  const start = async (role: Role) => {
    const p = await startRole(role, env);
    running.add(p);
    return p;
  };
  const kill = async (p: HeraldProcess) => {
    await stopRole(p, 'SIGKILL');
    running.delete(p);
  };

  beforeAll(async () => {
    sink = await startPushSink({ delayMs: 2 });
    smtp = await startScriptedSmtp({ delayMs: 2 });
    const now = Date.now();
    const docs: Record<string, string> = {};
    for (let f = 0; f < FEEDS; f++) {
      docs[`/feed-${f}.xml`] = rss(`Wire ${f}`, [{
        guid: `wire-${f}-1`, title: `Tokyo summit, report ${f}`, link: `https://wire.example.test/${f}/1`,
        description: `Leaders meet in Japan (${f}).`, pubDate: new Date(now - 60_000),
      }]);
    }
    // Answers take 400 ms: fetches are in flight when the poller is killed.
    publisher = await startSlowFeeds(docs, 400);
    env = faultEnv(prefix, {
      feeds: Array.from({ length: FEEDS }, (_, f) => ({ id: `wire-${f}`, url: publisher.url(`/feed-${f}.xml`) })),
      extra: {
        SMTP_URL: smtp.url,
        HERALD_PUSH_CA_FILE: sink.caFile,
        HERALD_PUSH_CONCURRENCY: String(PUSH_CONCURRENCY),
        HERALD_PUSH_BATCH_SIZE: String(PUSH_BATCH),
        HERALD_EMAIL_CONCURRENCY: String(EMAIL_CONCURRENCY),
        HERALD_POLL_CONCURRENCY: '4',
        HERALD_WEBSUB: 'false',
      },
    });
  });
  afterAll(async () => {
    for (const p of running) p.child.kill('SIGKILL');
    await Promise.all([...running].map((p) => p.exited));
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueConnection.quit()]);
    await Promise.all([sink?.close(), smtp?.close(), publisher?.close()]);
  });

  it('poller, classifier, push, email and digest each killed mid-work: 0 lost, 0 doubled', async () => {
    const now = Date.now();
    const pushReaders: { id: string; deviceId: string }[] = [];
    const emailReaders: string[] = [];
    const digestReaders: string[] = [];
    for (let r = 0; r < PUSH_READERS; r++) {
      const { id } = await createReader(subscribers, { email: null, timeZone: 'UTC', digestTime: '08:00' }, now);
      await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
      const d = sink.newDevice();
      await subscribers.addPushSubscription(id, d.subscription, now);
      pushReaders.push({ id, deviceId: d.id });
    }
    for (let r = 0; r < EMAIL_READERS; r++) {
      const { id } = await createReader(subscribers, { email: `instant${r}@faults.test`, timeZone: 'UTC', digestTime: '08:00' }, now);
      await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['email'] } });
      emailReaders.push(id);
    }
    for (let r = 0; r < DIGEST_READERS; r++) {
      const { id } = await createReader(subscribers, { email: `daily${r}@faults.test`, timeZone: 'UTC', digestTime: '08:00' }, now);
      await subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
      await digests.initWindow(id, now - 24 * 60 * 60 * 1000);
      digestReaders.push(id);
    }

    // Poller: killed with fetches in flight; its jobs come back to the restarted poller.
    const poller1 = await start('poller');
    await Promise.all(Array.from({ length: FEEDS }, (_, f) => enqueue('FeedFetch', { feedId: `wire-${f}` }, { jobId: jobIds.feedFetch(`wire-${f}`) })));
    await waitFor(() => publisher.totalHits() >= 1, 20_000, 'a feed fetch to be in flight');
    await kill(poller1);
    const classifyJobs = async () => (await queues.classify.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed'])).filter((j) => j.name === 'StoryClassify');
    // Killed with its fetches unfinished: nothing ingested yet.
    expect(await classifyJobs()).toHaveLength(0);
    const poller2 = await start('poller');
    await waitFor(async () => (await classifyJobs()).length >= FEEDS, 60_000, 'every feed to yield its story');
    await kill(poller2);
    const storyIds = [...new Set((await classifyJobs()).map((j) => (j.data as { storyId: string }).storyId))];
    expect(storyIds).toHaveLength(FEEDS);

    // Classifier: killed once its fan-out has begun.
    const classifier1 = await start('classifier');
    await waitFor(async () => (await queues.push.count()) > 0 || (await queues.email.count()) > 0, 30_000, 'the fan-out to begin');
    await kill(classifier1);
    // Killed with stories still to classify.
    expect((await queues.classify.getJobCounts('completed')).completed ?? 0).toBeLessThan(FEEDS);
    const classifier2 = await start('classifier');
    await waitFor(async () => ((await queues.classify.getJobCounts('completed')).completed ?? 0) >= FEEDS, 60_000, 'every story to be classified');
    await kill(classifier2);
    expect((await queues.classify.getJobCounts('failed')).failed).toBe(0);

    // Digests are due now for the daily readers, as the minute sweep would hand them out.
    const date = new Date(now).toISOString().slice(0, 10);
    await enqueue.bulk('DigestSend', digestReaders.map((subscriberId) => ({
      data: { subscriberId, localDate: date, dueAt: now },
      opts: { jobId: jobIds.digest(subscriberId, date), backoff: { type: 'delivery', delay: 200 } },
    })));

    // Dispatchers: each killed mid-send, then started again.
    const push1 = await start('push');
    const email1 = await start('email');
    const digest1 = await start('digest');
    const digestMails = () => smtp.mails.filter((m) => m.messageId?.startsWith('<digest.')).length;
    await Promise.all([
      (async () => {
        await waitFor(() => sink.received.length >= 1500, 90_000, 'pushes to be under way');
        await kill(push1);
      })(),
      (async () => {
        await waitFor(() => smtp.accepted() - digestMails() >= 300, 90_000, 'alert emails to be under way');
        await kill(email1);
      })(),
      (async () => {
        await waitFor(() => digestMails() >= 15, 90_000, 'digests to be under way');
        await kill(digest1);
      })(),
    ]);
    const atKill = { push: sink.received.length, email: smtp.accepted() - digestMails(), digest: digestMails() };
    expect(atKill.push).toBeLessThan(PUSH_READERS * FEEDS);
    expect(atKill.email).toBeLessThan(EMAIL_READERS * FEEDS);
    expect(atKill.digest).toBeLessThan(DIGEST_READERS);
    const second = [await start('push'), await start('email'), await start('digest')];

    const statuses = async (channel: 'push' | 'email', ids: string[]) => {
      const out = [];
      for (const sub of ids) for (const st of storyIds) out.push(await ledger.get(sub, st, channel));
      return out;
    };
    await waitFor(async () => {
      const [p, e] = await Promise.all([statuses('push', pushReaders.map((r) => r.id)), statuses('email', emailReaders)]);
      const digestsDone = await Promise.all(digestReaders.map((id) => digests.record(id, date).then((r) => r.status ?? null)));
      return [...p, ...e].every((r) => r !== null && ['sent', 'failed', 'skipped'].includes(r.status)) && digestsDone.every((s) => s !== null && s !== 'sending');
    }, 150_000, 'every alert and digest to end');
    for (const p of second) await stopRole(p, 'SIGTERM');

    // By the ledger: every alert sent once, every digest sent.
    const pushRecords = await statuses('push', pushReaders.map((r) => r.id));
    const emailRecords = await statuses('email', emailReaders);
    expect(pushRecords.filter((r) => r?.status === 'sent')).toHaveLength(PUSH_READERS * FEEDS);
    expect(emailRecords.filter((r) => r?.status === 'sent')).toHaveLength(EMAIL_READERS * FEEDS);
    expect(await Promise.all(digestReaders.map((id) => digests.record(id, date).then((r) => r.status ?? null)))).toEqual(digestReaders.map(() => 'sent'));

    // By the push service: each (device, story) shown once to the reader; raw resends bounded by what was in flight.
    const shown = tally(sink.received.map((p) => {
      expect(p.headers.topic).toBe(p.payload.storyId);
      return `${p.deviceId}/${String(p.payload.storyId)}`;
    }));
    expect(shown.distinct).toEqual(new Set(pushReaders.flatMap((r) => storyIds.map((st) => `${r.deviceId}/${st}`))));
    expect(shown.repeated.every(([, n]) => n === 2)).toBe(true);
    // A resend is possible only for a send in flight when the process died: one per alert a batch had out.
    expect(shown.repeated.length).toBeLessThanOrEqual(PUSH_CONCURRENCY * PUSH_BATCH);

    // By the SMTP server: each alert's and each digest's Message-ID arrived; resends carry the same id.
    const ids = tally(smtp.mails.map((m) => m.messageId ?? ''));
    const expected = new Set([
      ...emailReaders.flatMap((sub) => storyIds.map((st) => `<alert.${sub}.${st}.email@localhost>`)),
      ...digestReaders.map((sub) => digestMessageId(sub, date, 'localhost')),
    ]);
    expect(ids.distinct).toEqual(expected);
    // The email and digest dispatchers each had at most their concurrency in flight when killed.
    expect(ids.repeated.length).toBeLessThanOrEqual(2 * EMAIL_CONCURRENCY);
    process.stderr.write(`faults/sigkill: at kill ${JSON.stringify(atKill)}; same-id resends push ${shown.repeated.length}, mail ${ids.repeated.length}\n`);
  }, 300_000);
});
