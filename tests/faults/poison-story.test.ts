import { afterAll, describe, expect, it } from 'vitest';
import { jobIds } from '../../src/queue/jobs.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore, storyKey } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { makeStory } from '../deliver/support/world.ts';
import { waitFor, type HeraldProcess } from '../helpers/processes.ts';
import { createReader } from '../helpers/readers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { faultEnv, startRole, stopRole } from './support.ts';

/**
 * A story record corrupted in Redis (its JSON cut short, as a hand edit or a half-restored backup leaves
 * it) makes classification throw. The classifier process moves that job to failed at once with the reason,
 * instead of five retries, and classifies the stories around it as usual.
 */
describe('a poison story in classification', () => {
  const prefix = uniquePrefix('faultpoison');
  const redis = createRedis(TEST_REDIS_URL, { name: 'fault-poison' });
  const queueConnection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'fault-poison-q' });
  const queues = createQueues(queueConnection, prefix);
  const enqueue = createEnqueue(queues);
  const stories = createStoryStore(redis, prefix);
  const subscribers = createSubscriberStore(redis, prefix);
  let classifier: HeraldProcess | undefined;

  afterAll(async () => {
    if (classifier) await stopRole(classifier, 'SIGKILL');
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueConnection.quit()]);
  });

  it('moves to failed on its first attempt with its reason; the other stories fan out', async () => {
    const now = Date.now();
    const { id: reader } = await createReader(subscribers, { email: null, timeZone: 'UTC', digestTime: '08:00' }, now);
    await subscribers.setFollows(reader, { japan: { cadence: 'instant', channels: ['push'] } });
    const good = [makeStory(now, { title: 'Tokyo talks one' }), makeStory(now, { title: 'Tokyo talks two' }), makeStory(now, { title: 'Tokyo talks three' })];
    const poison = makeStory(now, { title: 'Tokyo talks poisoned' });
    for (const s of [...good, poison]) await stories.put(s);
    await redis.hset(storyKey(prefix, poison.id), 'json', '{"title":"Tokyo talks poi');

    // Poison in the middle of the queue: the stories after it must not wait on it.
    const order = [good[0]!, poison, good[1]!, good[2]!];
    for (const s of order) await enqueue('StoryClassify', { storyId: s.id }, { jobId: jobIds.storyClassify(s.id) });
    classifier = await startRole('classifier', faultEnv(prefix));
    await waitFor(async () => {
      const c = await queues.classify.getJobCounts('completed', 'failed');
      return (c.completed ?? 0) + (c.failed ?? 0) === order.length;
    }, 30_000, 'every story to be classified or failed');

    const failed = await queues.classify.getFailed();
    expect(failed.map((j) => j.data)).toEqual([{ storyId: poison.id }]);
    expect(failed[0]!.attemptsMade).toBe(1);
    expect(failed[0]!.failedReason).toBe(`story ${poison.id} is corrupt in Redis: ${failedParseMessage()}`);
    const alerts = (await queues.push.getJobs(['waiting', 'delayed', 'prioritized'])).map((j) => (j.data as { storyId: string }).storyId);
    expect(alerts.sort()).toEqual(good.map((s) => s.id).sort());
    expect(classifier.out.stdout).toContain('"job_name":"StoryClassify"');
    expect(classifier.out.stdout).toContain('"final":true');
  });
});

/** The exact JSON.parse message for the cut-short record, as this Node version words it. */
function failedParseMessage(): string {
  try {
    JSON.parse('{"title":"Tokyo talks poi');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('unreachable: the record above is not valid JSON');
}
