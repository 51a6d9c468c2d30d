import { describe, expect, it } from 'vitest';
import { createAnalysisCache } from '../../src/classify/analysis-cache.ts';
import { compileTopic, DEFAULT_STORY_LIMITS, explainStory, TopicIndex } from '../../src/classify/match.ts';
import { backtestQuery, PREVIEW_CHUNK } from '../../src/classify/preview.ts';
import type { Story } from '../../src/model.ts';

const at = Date.parse('2027-01-15T00:00:00Z');
const story = (n: number, title: string, summary = '', extra: Partial<Story> = {}): Story => ({
  id: `s${n}`, feedId: 'wire', guid: null, url: `https://news.wire.example.test/${n}`, title, summary, categories: ['World'], publishedAt: at - n, firstSeenAt: at - n, ...extra,
});
const STORIES: Story[] = [
  story(1, 'Jaishankar meets Quad counterparts in Tokyo', 'The ministers discussed the Indo-Pacific.'),
  story(2, 'Budget session opens in Parliament', 'External Affairs Minister Jaishankar answered questions on Japan ties.'),
  story(3, 'Semiconductor plant opens in Gujarat', 'Chipmaking comes to India.', { feedId: 'tech', url: 'https://chips.example.org/3' }),
  story(4, '東京で日印外相会談', '外相が会談した。'),
  story(5, 'Osaka Expo closes', 'Visitors from around the world.'),
  // Enough stories for several chunks, so the replay yields between them.
  ...Array.from({ length: PREVIEW_CHUNK * 2 + 7 }, (_, i) => story(100 + i, `Market update ${i}: shares move`, 'Stocks closed mixed.')),
];
const opts = (analyses = createAnalysisCache({ maxStories: 10_000, storyLimits: DEFAULT_STORY_LIMITS })) => ({ quality: 'all' as const, bestMinScore: 3, analyses });
const query = (q: string) => compileTopic({ id: 'query', name: 'Preview', query: q });

describe('alert preview', () => {
  it.each([
    'jaishankar AND (japan OR quad)',
    '"foreign minister" OR jaishankar',
    'semiconduct* india',
    'source:tech plant',
    'source:example.org chipmaking',
    'lang:ja 会談',
    'title:shares -update',
    'shares OR stocks',
    'zyzzyva',
  ])('finds what matching every story in full finds: %s', async (q) => {
    const topic = query(q);
    const index = new TopicIndex([topic]);
    const expected = STORIES.flatMap((s) => explainStory(s, index).map((m) => ({ storyId: s.id, score: m.score, why: m.why })));
    const result = await backtestQuery(topic, STORIES, opts());
    expect(result.stories.map((m) => ({ storyId: m.storyId, score: m.score, why: m.why }))).toEqual(expected);
    expect(result.scanned).toBe(STORIES.length);
  });

  it('a second preview over the same stories tokenizes none of them again; an edited story is tokenized again', async () => {
    const o = opts();
    await backtestQuery(query('jaishankar'), STORIES, o);
    expect(o.analyses.tokenized).toBe(STORIES.length);
    const second = await backtestQuery(query('osaka OR quad'), STORIES, o);
    expect(o.analyses.tokenized).toBe(STORIES.length);
    expect(second.stories.map((m) => m.storyId)).toEqual(['s1', 's5']);

    // The publisher changed story 5's title: the edit time differs, so its old words must not be matched.
    const edited = STORIES.map((s) => (s.id === 's5' ? { ...s, title: 'Kyoto festival closes', updatedAt: at + 1000 } : s));
    const third = await backtestQuery(query('osaka OR quad'), edited, o);
    expect(o.analyses.tokenized).toBe(STORIES.length + 1);
    expect(third.stories.map((m) => m.storyId)).toEqual(['s1']);
  });

  it('keeps at most maxStories analyses, dropping the least recently used', async () => {
    const o = opts(createAnalysisCache({ maxStories: 3, storyLimits: DEFAULT_STORY_LIMITS }));
    await backtestQuery(query('jaishankar'), STORIES.slice(0, 3), o);
    await backtestQuery(query('jaishankar'), STORIES.slice(0, 1), o);
    await backtestQuery(query('jaishankar'), STORIES.slice(3, 5), o);
    expect(o.analyses.size).toBe(3);
    expect(o.analyses.tokenized).toBe(5);
    // s1 was used again after s2 and s3, so it stayed; s2 went first.
    await backtestQuery(query('jaishankar'), STORIES.slice(0, 1), o);
    expect(o.analyses.tokenized).toBe(5);
    await backtestQuery(query('jaishankar'), STORIES.slice(1, 2), o);
    expect(o.analyses.tokenized).toBe(6);
  });
});
