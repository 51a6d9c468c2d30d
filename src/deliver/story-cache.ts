import type { Clock, Story } from '../model.ts';
import type { StoryStore } from '../store/stories.ts';

const TTL_MS = 30_000;
const MAX_ENTRIES = 2000;

/**
 * The story store with `get` cached in this process for 30 s: a story matched by a topic with 100,000
 * instant followers is read once per dispatcher, not 100,000 times. Stories change rarely after they are
 * stored; an edit shows up in alerts within the TTL. The read itself is shared: a batch's alerts ask for
 * their story side by side, before any answer is back, and all wait for the one read. Misses (null) and
 * failed reads are not kept.
 */
export function cachedStories(store: StoryStore, clock: Clock): StoryStore {
  const cache = new Map<string, { story: Promise<Story | null>; until: number }>();
  const forget = (id: string, entry: { story: Promise<Story | null> }) => {
    if (cache.get(id) === entry) cache.delete(id);
  };
  return {
    ...store,
    get(id: string) {
      const now = clock.now();
      const hit = cache.get(id);
      if (hit && hit.until > now) return hit.story;
      if (hit) cache.delete(id);
      if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
      const entry = { story: store.get(id), until: now + TTL_MS };
      cache.set(id, entry);
      entry.story.then(
        (story) => {
          if (!story) forget(id, entry);
        },
        () => forget(id, entry),
      );
      return entry.story;
    },
  };
}
