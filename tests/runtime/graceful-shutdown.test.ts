import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeQueues, createEnqueue, createQueues, type Queues } from '../../src/queue/queues.ts';
import { jobIds } from '../../src/queue/jobs.ts';
import { createDigestStore } from '../../src/store/digests.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis, type RedisClient } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { spawnHerald, waitFor } from '../helpers/processes.ts';
import { createReader } from '../helpers/readers.ts';
import { makeStory } from '../deliver/support/world.ts';
import { queueEmailAlerts, workerEnv } from '../helpers/worker-env.ts';

/**
 * An email dispatcher's world for one describe: stores and queues under a prefix of its own, a local SMTP sink, and
 * `n` readers each with a queued email alert of `storyId` (`subscriberIds`); torn down after the describe.
 */
function emailAlertsQueued(name: string, n: number, storyId: string, sinkOpts: { delayMs: number }, jobOpts: { attempts?: number } = {}) {
  const prefix = uniquePrefix(name);
  const redis = createRedis(TEST_REDIS_URL);
  // Queues are made in beforeAll: BullMQ writes their meta keys as it makes them, and a describe left out by a name
  // filter (-t) runs no afterAll to delete them.
  let queueRedis: RedisClient | undefined;
  let queues: Queues | undefined;
  const world = {
    prefix, ledger: createLedger(redis, prefix), smtp: undefined as unknown as SmtpSink, subscriberIds: [] as string[],
    get queues(): Queues {
      if (!queues) throw new Error('the queues are made in beforeAll');
      return queues;
    },
  };
  beforeAll(async () => {
    queueRedis = createRedis(TEST_REDIS_URL, { forQueue: true });
    queues = createQueues(queueRedis, prefix);
    world.smtp = await startSmtpSink(sinkOpts);
    const deps = { subscribers: createSubscriberStore(redis, prefix), stories: createStoryStore(redis, prefix), enqueue: createEnqueue(queues) };
    world.subscriberIds.push(...(await queueEmailAlerts(deps, n, storyId, jobOpts)));
  });
  afterAll(async () => {
    if (queues) await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueRedis?.quit(), world.smtp?.close()]);
  });
  return world;
}

/** SIGTERM while a dispatcher is sending: in-flight sends finish, the rest stay queued, nothing is lost or doubled. */
describe('stopping an email dispatcher with SIGTERM', () => {
  const N = 20;
  const storyId = 'story-sigterm-1';
  const world = emailAlertsQueued('sigterm', N, storyId, { delayMs: 150 });
  const { prefix, ledger, subscriberIds } = world;

  const startWorker = () => spawnHerald(['worker', 'email'], workerEnv(prefix, { SMTP_URL: world.smtp.url, HERALD_EMAIL_CONCURRENCY: '2' }));

  it('finishes in-flight sends, leaves the rest queued, and a new worker sends each once', async () => {
    const first = startWorker();
    const deadline = Date.now() + 20_000;
    while (world.smtp.mails.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    first.child.kill('SIGTERM');
    expect(await first.exited, first.out.stderr).toBe(0);

    const statuses = await Promise.all(subscriberIds.map((s) => ledger.get(s, storyId, 'email')));
    const sent = statuses.filter((r) => r?.status === 'sent').length;
    // Nothing was left half-done: every claimed alert was sent before the process exited.
    expect(statuses.filter((r) => r?.status === 'sending')).toHaveLength(0);
    expect(sent).toBe(world.smtp.mails.length);
    expect(sent).toBeLessThan(N);
    const counts = await world.queues.email.getJobCounts('waiting', 'active', 'completed');
    expect(counts.waiting).toBe(N - sent);
    expect(counts.active).toBe(0);

    const second = startWorker();
    const deadline2 = Date.now() + 20_000;
    while (world.smtp.mails.length < N && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500));
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    for (let i = 0; i < N; i++) expect(world.smtp.to(`reader${i}@example.test`), `reader${i}`).toHaveLength(1);
  }, 60_000);
});

/**
 * SIGTERM while a dispatcher's jobs wait for the SMTP server's rate limit (here 1 mail a second, ten claimed): the
 * waiting mails are not handed over after the signal, the process exits at once and cleanly, none is left "sending".
 */
describe('stopping an email dispatcher with SIGTERM while mails wait for the SMTP rate limit', () => {
  const N = 10;
  const storyId = 'story-sigterm-rate-1';
  const world = emailAlertsQueued('sigtermrate', N, storyId, { delayMs: 0 });
  const { prefix, ledger, subscriberIds } = world;

  it('sends nothing new after the signal, exits within seconds with code 0, and leaves the rest queued', async () => {
    const worker = spawnHerald(['worker', 'email'], workerEnv(prefix, {
      SMTP_URL: world.smtp.url, HERALD_EMAIL_CONCURRENCY: '10', HERALD_SMTP_RATE_PER_SECOND: '1', HERALD_SHUTDOWN_TIMEOUT_SECONDS: '6',
    }));
    const claimed = async () => (await Promise.all(subscriberIds.map((s) => ledger.get(s, storyId, 'email')))).filter((r) => r?.status === 'sending' || r?.status === 'sent').length;
    const deadline = Date.now() + 20_000;
    while ((world.smtp.mails.length < 1 || (await claimed()) < N) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const mailsAtSignal = world.smtp.mails.length;
    const stopAt = Date.now();
    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.out.stderr.slice(-1000)).toBe(0);
    // Before its shutdown timeout (6 s), which would have killed it with exit 1: not held by the waiting mails.
    expect(Date.now() - stopAt).toBeLessThan(6_000);
    // At most the one mail whose slot came up as the signal arrived.
    expect(world.smtp.mails.length - mailsAtSignal).toBeLessThanOrEqual(1);
    const records = await Promise.all(subscriberIds.map((s) => ledger.get(s, storyId, 'email')));
    expect(records.filter((r) => r?.status === 'sending')).toHaveLength(0);
    expect(records.filter((r) => r?.status === 'sent')).toHaveLength(world.smtp.mails.length);
    const counts = await world.queues.email.getJobCounts('waiting', 'delayed', 'active', 'failed');
    expect(counts.active).toBe(0);
    expect(counts.failed).toBe(0);
    expect((counts.waiting ?? 0) + (counts.delayed ?? 0)).toBe(N - world.smtp.mails.length);
  }, 60_000);
});

/**
 * SIGTERM while sends wait on an SMTP server that took the connection and the message but never answers: at the
 * shutdown timeout (4 s) the stuck sends are given up, their alerts handed back to their jobs, and the process exits
 * cleanly; a later worker sends each once. Each job is on its last attempt (attempts: 1): the stop is no attempt of
 * its own, or BullMQ would give the alert up as failed.
 */
describe('stopping an email dispatcher with SIGTERM while its sends get no answer from the SMTP server', () => {
  const N = 2;
  const storyId = 'story-sigterm-stuck-1';
  // Ten minutes without an answer: as good as never within this test.
  const world = emailAlertsQueued('sigtermstuck', N, storyId, { delayMs: 600_000 }, { attempts: 1 });
  const { prefix, ledger, subscriberIds } = world;

  it('abandons the stuck sends at the shutdown timeout, exits with code 0, and leaves the alerts to their jobs', async () => {
    const worker = spawnHerald(['worker', 'email'], workerEnv(prefix, { SMTP_URL: world.smtp.url, HERALD_EMAIL_CONCURRENCY: '2', HERALD_SHUTDOWN_TIMEOUT_SECONDS: '4' }));
    const records = () => Promise.all(subscriberIds.map((s) => ledger.get(s, storyId, 'email')));
    await waitFor(async () => (await records()).every((r) => r?.status === 'sending'), 20_000, 'both alerts to be claimed');
    // Time for both messages to reach the server, which then never answers.
    await new Promise((r) => setTimeout(r, 1000));
    const stopAt = Date.now();
    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.out.stderr.slice(-1000)).toBe(0);
    expect(Date.now() - stopAt).toBeLessThan(4_000);
    for (const r of await records()) {
      // Back to queued, counted as a reclaim: the server may have the message, so the retry may be a resend.
      expect(r).toMatchObject({ status: 'queued', reclaims: 1 });
      expect(r!.lastError).toMatch(/shutdown/);
    }
    const counts = await world.queues.email.getJobCounts('waiting', 'delayed', 'active', 'failed');
    expect(counts).toMatchObject({ active: 0, failed: 0 });
    expect((counts.waiting ?? 0) + (counts.delayed ?? 0)).toBe(N);

    // The jobs' retries, against a server that answers, send each alert once.
    const working = await startSmtpSink();
    try {
      await world.queues.email.promoteJobs();
      const next = spawnHerald(['worker', 'email'], workerEnv(prefix, { SMTP_URL: working.url }));
      await waitFor(async () => (await records()).every((r) => r?.status === 'sent'), 20_000, 'both alerts to be sent');
      next.child.kill('SIGTERM');
      expect(await next.exited).toBe(0);
      for (let i = 0; i < N; i++) expect(working.to(`reader${i}@example.test`), `reader${i}`).toHaveLength(1);
    } finally {
      await working.close();
    }
  }, 60_000);
});

/**
 * The same for a digest: SIGTERM while its send waits on an SMTP server that never answers. Its job is on its last
 * attempt (attempts: 1): the abandoned send is handed back without counting, the date stays claimable, and a later
 * worker sends the digest once.
 */
describe('stopping a digest dispatcher with SIGTERM while its send gets no answer from the SMTP server', () => {
  const prefix = uniquePrefix('sigtermdigest');
  const redis = createRedis(TEST_REDIS_URL);
  let queueRedis: RedisClient | undefined;
  let queues: Queues | undefined;
  let stuck: SmtpSink | undefined;
  const digests = createDigestStore(redis, prefix);
  afterAll(async () => {
    if (queues) await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueRedis?.quit(), stuck?.close()]);
  });

  it('hands the digest back at the shutdown timeout, exits with code 0, and a later worker sends it once', async () => {
    queueRedis = createRedis(TEST_REDIS_URL, { forQueue: true });
    queues = createQueues(queueRedis, prefix);
    stuck = await startSmtpSink({ delayMs: 600_000 });
    const subscribers = createSubscriberStore(redis, prefix);
    const stories = createStoryStore(redis, prefix);
    const now = Date.now();
    const story = makeStory(now - 3_600_000, { title: 'Tokyo digest talks' });
    await stories.put(story);
    await stories.logForTopics(story.id, ['japan'], now - 3_600_000);
    const { id } = await createReader(subscribers, { email: 'daily@example.test', timeZone: 'UTC', digestTime: '08:00' }, now);
    await subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
    await digests.initWindow(id, now - 86_400_000);
    const date = new Date(now).toISOString().slice(0, 10);
    const jobId = jobIds.digest(id, date);
    await createEnqueue(queues).bulk('DigestSend', [{ data: { subscriberId: id, localDate: date, dueAt: now }, opts: { jobId, attempts: 1 } }]);

    const env = { HERALD_DIGEST_SETTLE_SECONDS: '0' };
    const worker = spawnHerald(['worker', 'digest'], workerEnv(prefix, { ...env, SMTP_URL: stuck.url, HERALD_SHUTDOWN_TIMEOUT_SECONDS: '4' }));
    await waitFor(async () => (await digests.record(id, date)).status === 'sending', 20_000, 'the digest to be claimed');
    // Time for the message to reach the server, which then never answers.
    await new Promise((r) => setTimeout(r, 1000));
    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.out.stderr.slice(-1000)).toBe(0);
    const job = await queues.digest.getJob(jobId);
    expect(await job?.getState()).toBe('delayed');
    expect(job?.attemptsMade).toBe(0);

    const working = await startSmtpSink();
    try {
      await queues.digest.promoteJobs();
      const next = spawnHerald(['worker', 'digest'], workerEnv(prefix, { ...env, SMTP_URL: working.url }));
      await waitFor(async () => (await digests.record(id, date)).status === 'sent', 20_000, 'the digest to be sent');
      next.child.kill('SIGTERM');
      expect(await next.exited).toBe(0);
      expect(working.to('daily@example.test')).toHaveLength(1);
      expect(working.to('daily@example.test')[0]!.subject).toMatch(/digest|Japan/i);
    } finally {
      await working.close();
    }
  }, 60_000);
});
