import type { Clock, Story } from '../model.ts';
import type { StoryStore } from '../store/stories.ts';

const TTL_MS = 30_000;
const MAX_ENTRIES = 2000;

/**
 * The story store with `get` cached in this process for 30 s: a story matched by a topic with 100,000
 * instant followers is read once per dispatcher, not 100,000 times. Stories change rarely after they are
 * stored; an edit shows up in alerts within the TTL. Misses (null) are not cached.
 */
export function cachedStories(store: StoryStore, clock: Clock): StoryStore {
  const cache = new Map<string, { story: Story; until: number }>();
  return {
    ...store,
    async get(id: string) {
      const now = clock.now();
      const hit = cache.get(id);
      if (hit && hit.until > now) return hit.story;
      const story = await store.get(id);
      if (story) {
        if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
        cache.set(id, { story, until: now + TTL_MS });
      }
      return story;
    },
  };
}
