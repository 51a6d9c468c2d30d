import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeQueues, createEnqueue, createQueues, groupBy, type Queues } from '../../src/queue/queues.ts';
import { createRedis, type RedisClient } from '../../src/store/redis.ts';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../helpers/redis.ts';

describe('groupBy', () => {
  it('keeps each group in input order', () => {
    const groups = groupBy(['a1', 'b1', 'a2', 'c1', 'b2'], (s) => s[0]);
    expect([...groups]).toEqual([['a', ['a1', 'a2']], ['b', ['b1', 'b2']], ['c', ['c1']]]);
  });

  // A topic with 300,000 email followers is one bulk call. Copying a group per item took 15 s for 40,000
  // items (this would need many minutes); the timeout is a bound against that, not a speed measure.
  it('groups 300,000 items into two groups in one pass', { timeout: 10_000 }, () => {
    const items = Array.from({ length: 300_000 }, (_, i) => i);
    const groups = groupBy(items, (i) => i % 2);
    expect(groups.get(0)).toHaveLength(150_000);
    expect(groups.get(1)![149_999]).toBe(299_999);
  });
});

describe('enqueue.bulk (real Redis)', () => {
  const prefix = uniquePrefix('enqueue');
  let connection: RedisClient;
  let queues: Queues;
  let redis: RedisClient;

  beforeAll(() => {
    connection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'enqueue-test' });
    queues = createQueues(connection, prefix);
    redis = testRedis();
  });
  afterAll(async () => {
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([connection.quit(), redis.quit()]);
  });

  it('adds every job of a large fan-out once, named by its id', { timeout: 60_000 }, async () => {
    const enqueue = createEnqueue(queues);
    const items = Array.from({ length: 5000 }, (_, i) => ({
      data: { subscriberId: `s${i}`, storyId: 'st1', topicId: 'japan', why: 'Matched: Japan in title' },
      opts: { jobId: `email-s${i}-st1` },
    }));
    await enqueue.bulk('AlertSendEmail', items);
    // The same ids again (a classifier retried): BullMQ keeps one job per id.
    await enqueue.bulk('AlertSendEmail', items.slice(0, 100));
    expect(await queues.email.getJobCountByTypes('waiting', 'delayed', 'prioritized')).toBe(5000);
    expect((await queues.email.getJob('email-s4999-st1'))?.data.subscriberId).toBe('s4999');
  });
});
