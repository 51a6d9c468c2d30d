import type { Story } from '../model.ts';
import type { DigestGroup } from '../deliver/email/render.ts';

/** Pure digest composition: which stories, in which groups, marked how. Tested table by table. */

const STOP = new Set(['the', 'and', 'for', 'with', 'from', 'that', 'this', 'into', 'over', 'after', 'says', 'said', 'new', 'are', 'was', 'has', 'have', 'its', 'his', 'her', 'their', 'amid', 'near']);

function titleTokens(title: string): Set<string> {
  return new Set(
    title
      .toLowerCase()
      .replace(/<[^>]*>/g, ' ')
      .split(/[^\p{L}\p{N}]+/u)
      // Numbers stay whatever their length: "magnitude 6" and "magnitude 7" are different stories.
      .filter((w) => (w.length >= 3 || /\d/.test(w)) && !STOP.has(w)),
  );
}

const canonicalUrl = (url: string) => {
  try {
    const u = new URL(url);
    return `${u.hostname.replace(/^www\./, '')}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return url;
  }
};

/** Two wire copies of one event usually share most title words; 0.6 keeps distinct follow-ups apart. */
export const NEAR_DUPLICATE_SIMILARITY = 0.6;

interface TitleKey {
  tokens: Set<string>;
  /** The figures in the title (a toll, a magnitude, a score), sorted. */
  numbers: string;
}

/**
 * Tokens of a title, remembered: every reader's digest of a busy topic compares the same stories' titles,
 * so they are tokenized once per process, not once per pair per digest. Bounded: cleared when full.
 */
const keyCache = new Map<string, TitleKey>();
const KEY_CACHE_MAX = 10_000;
function titleKey(title: string): TitleKey {
  let key = keyCache.get(title);
  if (key) return key;
  const tokens = titleTokens(title);
  key = { tokens, numbers: [...tokens].filter((w) => /\d/.test(w)).sort().join(' ') };
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(title, key);
  return key;
}

function keySimilarity(a: TitleKey, b: TitleKey): number {
  if (a.tokens.size === 0 || b.tokens.size === 0) return 0;
  // Different figures (a toll, a magnitude, a score) make different stories however alike the words.
  if (a.numbers !== b.numbers) return 0;
  let common = 0;
  for (const t of a.tokens) if (b.tokens.has(t)) common++;
  return common / (a.tokens.size + b.tokens.size - common);
}

export function titleSimilarity(a: string, b: string): number {
  return keySimilarity(titleKey(a), titleKey(b));
}

/** Keeps the first of each group of near-duplicates (same page, or titles at least 60% alike). */
export function collapseNearDuplicates<S extends Pick<Story, 'title' | 'url'>>(stories: readonly S[]): S[] {
  const kept: { story: S; key: TitleKey }[] = [];
  const urls = new Set<string>();
  for (const s of stories) {
    const url = canonicalUrl(s.url);
    if (urls.has(url)) continue;
    const key = titleKey(s.title);
    if (kept.some((k) => keySimilarity(k.key, key) >= NEAR_DUPLICATE_SIMILARITY)) continue;
    urls.add(url);
    kept.push({ story: s, key });
  }
  return kept.map((k) => k.story);
}

/**
 * Groups stories by the reader's topics (their order), newest first; a story in two topics is listed once,
 * under the first; near-duplicates across the whole digest collapse into one; stories already pushed to
 * the reader are marked, or left out when they chose so.
 */
export function composeDigest(input: {
  topicStories: { topicId: string; storyIds: string[] }[];
  stories: ReadonlyMap<string, Story>;
  topicName: (id: string) => string;
  pushed: ReadonlySet<string>;
  pushedMode: 'mark' | 'omit';
}): { groups: DigestGroup[]; storyIds: string[] } {
  const seen = new Set<string>();
  const ordered: { topicId: string; story: Story }[] = [];
  for (const { topicId, storyIds } of input.topicStories) {
    const list = storyIds
      .filter((id) => !seen.has(id) && input.stories.has(id))
      .map((id) => input.stories.get(id)!)
      .filter((s) => !(input.pushedMode === 'omit' && input.pushed.has(s.id)))
      .sort((a, b) => b.publishedAt - a.publishedAt);
    for (const s of list) {
      seen.add(s.id);
      ordered.push({ topicId, story: s });
    }
  }
  const keep = new Set(collapseNearDuplicates(ordered.map((o) => o.story)));
  const groups = new Map<string, DigestGroup>();
  const storyIds: string[] = [];
  for (const { topicId, story } of ordered) {
    if (!keep.has(story)) continue;
    storyIds.push(story.id);
    let g = groups.get(topicId);
    if (!g) groups.set(topicId, (g = { topicId, topicName: input.topicName(topicId), stories: [] }));
    g.stories.push({ title: story.title, summary: story.summary, url: story.url, pushed: input.pushed.has(story.id) });
  }
  return { groups: [...groups.values()], storyIds };
}
