import type { Story } from '../model.ts';
import { tokenizeStory, type StoryLimits, type TokenizedStory } from './match.ts';

/**
 * The recent stories' analyses, kept per process for previews: every preview replays the same few thousand
 * stories, and tokenizing them was nearly all of its cost (~1 ms per 2 KB story; a few µs to check the cached
 * tokens for a query's words). Entries hold shared tokens, ~2–3 KB per story; the least recently used go past
 * `maxStories`.
 */
export interface AnalysisCache {
  /** The story's words, tokenized again only when the story is new here or was edited since. */
  tokensOf(story: Story): TokenizedStory;
  readonly size: number;
  /** Stories tokenized so far (cache misses): what a second preview over the same stories must not move. */
  readonly tokenized: number;
}

interface Entry {
  /** The story's edit time when it was tokenized: an edited story has another. */
  updatedAt: number;
  tokens: TokenizedStory;
}

export function createAnalysisCache(opts: { maxStories: number; storyLimits: StoryLimits }): AnalysisCache {
  const entries = new Map<string, Entry>();
  let tokenized = 0;
  return {
    tokensOf(story) {
      const updatedAt = story.updatedAt ?? 0;
      let entry = entries.get(story.id);
      if (entry) entries.delete(story.id);
      if (!entry || entry.updatedAt !== updatedAt) {
        entry = { updatedAt, tokens: tokenizeStory(story, opts.storyLimits) };
        tokenized++;
      }
      // Re-inserted last: a Map iterates in insertion order, so its first key is the least recently used.
      entries.set(story.id, entry);
      if (entries.size > opts.maxStories) entries.delete(entries.keys().next().value!);
      return entry.tokens;
    },
    get size() {
      return entries.size;
    },
    get tokenized() {
      return tokenized;
    },
  };
}
