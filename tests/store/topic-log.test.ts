import { afterAll, describe, expect, it } from 'vitest';
import { createStoryStore, TOPIC_LOG_RETENTION_MS, topicLogKey } from '../../src/store/stories.ts';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.ts';

/** The per-topic story logs digests read: trimmed to the retention, and gone once nothing is logged for as long. */
describe('topic logs', () => {
  const prefix = uniquePrefix('topic-log');
  const redis = testRedis();
  const stories = createStoryStore(redis, prefix);
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it('keeps the entries of the retention, and the log of a topic nothing matches any more expires with them', async () => {
    // A catalog topic taken out of the file, or an own alert whose removal stopped before its log was dropped:
    // no later write would trim the log, which stayed in Redis for ever.
    const now = Date.parse('2027-03-10T12:00:00Z');
    await stories.logForTopics('old', ['retired'], now - TOPIC_LOG_RETENTION_MS - 1);
    await stories.logForTopics('new', ['retired'], now);
    expect(await stories.loggedBetween('retired', 0, now)).toEqual(['new']);
    const ttl = await redis.pttl(topicLogKey(prefix, 'retired'));
    expect(ttl).toBeGreaterThan(TOPIC_LOG_RETENTION_MS - 60_000);
    expect(ttl).toBeLessThanOrEqual(TOPIC_LOG_RETENTION_MS);
  });
});
