import { afterAll, describe, expect, it } from 'vitest';
import { cachedStories } from '../../src/deliver/story-cache.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore, type StoryStore } from '../../src/store/stories.ts';
import { manualClock } from '../helpers/clock.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';

/** The dispatchers' story cache over a real store: fewer reads, never a stale or missing story for long. */
describe('delivery story cache', () => {
  const prefix = uniquePrefix('story-cache');
  const redis = createRedis(TEST_REDIS_URL, { name: 'story-cache-test' });
  const store = createStoryStore(redis, prefix);
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });
  const story = (id: string, title: string) => ({
    id, feedId: 'f1', guid: null, url: `https://news.example.test/${id}`, title, summary: 'Summary.',
    categories: [], publishedAt: 0, firstSeenAt: 0,
  });
  /** The real store, with its reads counted (and optionally failing). */
  const counting = (failNext = { on: false }) => {
    let reads = 0;
    const wrapped: StoryStore = {
      ...store,
      async get(id) {
        reads++;
        if (failNext.on) {
          failNext.on = false;
          throw new Error('connection lost');
        }
        return store.get(id);
      },
    };
    return { wrapped, reads: () => reads };
  };

  it("a batch's 50 alerts asking for their story side by side cost one read", async () => {
    await store.put(story('sc1', 'Japan and India sign a pact'));
    const { wrapped, reads } = counting();
    const cached = cachedStories(wrapped, manualClock('2027-03-01T09:00:00Z'));
    const got = await Promise.all(Array.from({ length: 50 }, () => cached.get('sc1')));
    expect(got.every((s) => s?.title === 'Japan and India sign a pact')).toBe(true);
    expect(reads()).toBe(1);
  });

  it('an edited story is read again after 30 s; a missing one and a failed read are not remembered', async () => {
    await store.put(story('sc2', 'First title'));
    const failNext = { on: false };
    const { wrapped, reads } = counting(failNext);
    const clock = manualClock('2027-03-01T09:00:00Z');
    const cached = cachedStories(wrapped, clock);
    expect((await cached.get('sc2'))?.title).toBe('First title');
    await redis.del(`${prefix}:{st:sc2}:story`);
    await store.put(story('sc2', 'Edited title'));
    clock.advance(29_000);
    expect((await cached.get('sc2'))?.title).toBe('First title');
    clock.advance(2_000);
    expect((await cached.get('sc2'))?.title).toBe('Edited title');
    expect(reads()).toBe(2);

    expect(await cached.get('sc3')).toBeNull();
    await store.put(story('sc3', 'Arrived later'));
    expect((await cached.get('sc3'))?.title).toBe('Arrived later');

    failNext.on = true;
    await expect(cached.get('sc4')).rejects.toThrow('connection lost');
    await store.put(story('sc4', 'Read on retry'));
    expect((await cached.get('sc4'))?.title).toBe('Read on retry');
  });
});
