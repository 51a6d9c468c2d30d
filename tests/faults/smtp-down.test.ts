import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestMessageId } from '../../src/digest/send-digest.ts';
import { jobIds } from '../../src/queue/jobs.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createDigestStore } from '../../src/store/digests.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { makeStory } from '../deliver/support/world.ts';
import { waitFor, type HeraldProcess } from '../helpers/processes.ts';
import { createReader } from '../helpers/readers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { faultEnv, startRole, startSwitchableSmtp, stopRole, tally } from './support.ts';

const READERS = 300;
const OUTAGE_MS = 60_000;

/**
 * The mail relay goes down for 60 seconds in the middle of the morning's digests (421 to every new
 * connection and to every MAIL FROM). The digest dispatcher process keeps retrying with backoff; once the
 * relay is back every reader has their digest, exactly once by Message-ID, and none is recorded as failed.
 */
describe('SMTP down for 60 seconds during digests', () => {
  const prefix = uniquePrefix('faultsmtp');
  const redis = createRedis(TEST_REDIS_URL, { name: 'fault-smtp' });
  const queueConnection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'fault-smtp-q' });
  const queues = createQueues(queueConnection, prefix);
  const enqueue = createEnqueue(queues);
  const subscribers = createSubscriberStore(redis, prefix);
  const stories = createStoryStore(redis, prefix);
  const digests = createDigestStore(redis, prefix);
  let smtp: Awaited<ReturnType<typeof startSwitchableSmtp>>;
  let worker: HeraldProcess | undefined;

  beforeAll(async () => {
    smtp = await startSwitchableSmtp();
  });
  afterAll(async () => {
    if (worker) await stopRole(worker, 'SIGKILL');
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueConnection.quit(), smtp?.close()]);
  });

  it('every digest is delivered after the outage, none twice', async () => {
    const now = Date.now();
    const story = makeStory(now - 60_000, { title: 'Tokyo digest story' });
    await stories.put(story);
    await stories.logForTopics(story.id, ['japan'], now - 60_000);
    const readers: string[] = [];
    for (let r = 0; r < READERS; r++) {
      const { id } = await createReader(subscribers, { email: `daily${r}@faults.test`, timeZone: 'UTC', digestTime: '08:00' }, now);
      await subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
      await digests.initWindow(id, now - 24 * 60 * 60 * 1000);
      readers.push(id);
    }
    const date = new Date(now).toISOString().slice(0, 10);
    await enqueue.bulk('DigestSend', readers.map((subscriberId) => ({
      data: { subscriberId, localDate: date, dueAt: now },
      // 1 s base: ten attempts with doubling backoff span well over the 60 s outage.
      opts: { jobId: jobIds.digest(subscriberId, date), backoff: { type: 'delivery', delay: 1000 } },
    })));

    worker = await startRole('digest', faultEnv(prefix, { extra: { SMTP_URL: smtp.url, HERALD_EMAIL_CONCURRENCY: '4', HERALD_SMTP_RATE_PER_SECOND: '100' } }));
    await waitFor(() => smtp.accepted.length >= 20, 30_000, 'digests to be under way');
    smtp.setDown(true);
    const downAt = Date.now();
    const acceptedBefore = smtp.accepted.length;
    expect(acceptedBefore).toBeLessThan(READERS);
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    smtp.setDown(false);
    const upAt = Date.now();

    const status = async () => Promise.all(readers.map(async (id) => (await digests.record(id, date)).status ?? null));
    await waitFor(async () => (await status()).every((s) => s === 'sent' || s === 'failed'), 120_000, 'every digest to end');
    await stopRole(worker, 'SIGTERM');

    expect(await status()).toEqual(readers.map(() => 'sent'));
    expect(smtp.refusals()).toBeGreaterThan(0);
    // Nothing got through while the relay was down (beyond sends already past MAIL FROM), and the rest came after.
    expect(smtp.accepted.filter((m) => m.at > downAt + 1000 && m.at < upAt).length).toBe(0);
    const ids = tally(smtp.accepted.map((m) => m.messageId));
    expect(ids.distinct).toEqual(new Set(readers.map((id) => digestMessageId(id, date, 'localhost'))));
    expect(ids.repeated).toEqual([]);
    const failedJobs = await queues.digest.getFailed();
    expect(failedJobs).toEqual([]);
  }, 240_000);
});
