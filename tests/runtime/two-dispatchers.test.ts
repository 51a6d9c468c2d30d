import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { spawnHerald, waitFor, type HeraldProcess } from '../helpers/processes.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { queueEmailAlerts, workerEnv } from '../helpers/worker-env.ts';

/** Two dispatcher processes on one queue share the work; no alert is sent twice. */
describe('two email dispatcher processes', () => {
  const prefix = uniquePrefix('two-dispatchers');
  const redis = createRedis(TEST_REDIS_URL);
  const queueRedis = createRedis(TEST_REDIS_URL, { forQueue: true });
  const queues = createQueues(queueRedis, prefix);
  const ledger = createLedger(redis, prefix);
  const N = 300;
  const storyId = 'story-two-dispatchers';
  let smtp: SmtpSink;
  let ids: string[] = [];
  const procs: HeraldProcess[] = [];

  beforeAll(async () => {
    smtp = await startSmtpSink({ delayMs: 5 });
    ids = await queueEmailAlerts({ subscribers: createSubscriberStore(redis, prefix), stories: createStoryStore(redis, prefix), enqueue: createEnqueue(queues) }, N, storyId);
  });
  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueRedis.quit(), smtp.close()]);
  });

  it('delivers every alert exactly once, with both processes taking part', async () => {
    for (let i = 0; i < 2; i++) procs.push(spawnHerald(['worker', 'email'], workerEnv(prefix, { SMTP_URL: smtp.url, HERALD_EMAIL_CONCURRENCY: '4' })));
    await waitFor(async () => ((await queues.email.getJobCounts("completed")).completed ?? 0) >= N, 60_000, `${N} completed jobs`);
    for (const p of procs) p.child.kill('SIGTERM');
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0]);

    expect(smtp.mails).toHaveLength(N);
    for (let i = 0; i < N; i++) expect(smtp.to(`reader${i}@example.test`)).toHaveLength(1);
    const records = await Promise.all(ids.map((id) => ledger.get(id, storyId, 'email')));
    expect(records.every((r) => r?.status === 'sent' && r.attempts === 1)).toBe(true);
    // Jobs record the worker (host:pid:queue) that processed them: both processes took part.
    const jobs = await queues.email.getJobs(['completed'], 0, N);
    const workersSeen = new Set(jobs.map((j) => j.processedBy?.split(':')[1]).filter(Boolean));
    expect(workersSeen.size).toBe(2);
  }, 90_000);
});
