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

  it('a story logged again (a classification retried or run twice) keeps its first time: it is in one digest window', async () => {
    // Re-stamped at the second run, a story the 08:00 digest had listed was listed again by the next one.
    const first = Date.parse('2027-03-10T07:50:00Z');
    const digest = Date.parse('2027-03-10T08:00:00Z');
    await stories.logForTopics('rerun', ['japan'], first);
    expect(await stories.loggedBetween('japan', first - 3_600_000, digest)).toEqual(['rerun']);
    await stories.logForTopics('rerun', ['japan'], digest + 5 * 60_000);
    expect(await stories.loggedBetween('japan', digest, digest + 86_400_000)).toEqual([]);
    expect(await stories.loggedBetween('japan', first - 3_600_000, digest)).toEqual(['rerun']);
  });
});
