import { describe, expect, it } from 'vitest';
import { analyzeStory, compileTopic, compileTopics, explainStory, explainStoryLinear, matchStory, TopicIndex, type StoryText } from '../../src/classify/match.ts';
import { compileCatalog } from '../../src/classify/registry.ts';
import { loadTopics } from '../../src/config/catalog.ts';

const story = (title: string, summary = '', categories: string[] = [], extra: Partial<StoryText> = {}): StoryText => ({ title, summary, categories, ...extra });
const one = (query: string) => compileTopics([{ id: 'q', name: 'Q', query }]);
const matches = (query: string, s: StoryText) => matchStory(s, one(query)).some((m) => m.topicId === 'q');

const seed = story(
  'India and Japan foreign ministers hold talks in Tokyo on Quad and UN reform',
  'External Affairs Minister S. Jaishankar and his Japanese counterpart met in Tokyo to deepen cooperation in the Indo-Pacific, coordinate within the Quad, press for reform of the UN Security Council, work together on 5G and secure supply chains, and take up joint projects in third countries.',
  ['Diplomacy'],
  { feedId: 'wire', url: 'https://news.wire.example.test/world/1' },
);

describe('matching: text analysis', () => {
  it.each([
    ['stems plain terms', 'talk', story('Ministers hold talks'), true],
    ['stems phrases too', '"foreign minister"', story('Foreign ministers meet'), true],
    ['phrases need adjacent words', '"foreign minister"', story('Foreign trade minister resigns'), false],
    ['phrases do not span two categories', '"world cricket"', story('x', '', ['World', 'Cricket']), false],
    ['phrases match within one category', '"world cup"', story('x', '', ['ICC World Cup']), true],
    ['folds case', 'TOKYO', story('tokyo stocks rise'), true],
    ['folds diacritics both ways', 'sao paulo', story('Floods in São Paulo'), true],
    ['possessives', 'india', story("India's exports rise"), true],
    ['whole words only', 'india', story('Indiana governor signs bill'), false],
    ['Japanese, segmented by Intl.Segmenter', '東京', story('東京で日印外相会談'), true],
    ['katakana words split by ICU still match as a phrase', 'クアッド', story('日印外相、クアッドを協議'), true],
    ['Hindi', 'भारत', story('भारत और जापान के विदेश मंत्रियों की बैठक'), true],
    ['prefix', 'jaishank*', story('Jaishankar meets Wang Yi'), true],
    ['prefix is not a stem match', 'jaishank*', story('Shankar meets Wang Yi'), false],
    ['title: scope', 'title:tokyo', story('Talks end', 'in Tokyo'), false],
    ['summary: scope', 'summary:tokyo', story('Talks end', 'in Tokyo'), true],
    ['category: scope', 'category:cricket', story('Kerala win', '', ['Cricket']), true],
    ['source: feed id', 'source:wire japan', seed, true],
    ['source: host and parent domain', 'source:wire.example.test japan', seed, true],
    ['source: other feed', 'source:other japan', seed, false],
    ['lang: guessed from the script', 'lang:ja 会談', story('東京で日印外相会談'), true],
    ['lang: English story', 'lang:ja japan', seed, false],
    ['NOT excludes', 'japan -cricket', story('Japan beat India at cricket'), false],
    ['the example alert', '"Jaishankar" AND (Japan OR Quad)', seed, true],
    ['the example alert, wrong person', '"Modi" AND (Japan OR Quad)', seed, false],
  ])('%s', (_name, query, s, expected) => {
    expect(matches(query, s)).toBe(expected);
  });

  it('reads only the configured length of a huge story', () => {
    const huge = story('Budget', `${'filler words here '.repeat(5000)} Tokyo`);
    expect(matchStory(huge, one('tokyo'), { maxFieldChars: 1000 })).toEqual([]);
    expect(matchStory(huge, one('tokyo'), { maxFieldChars: 200_000 }).map((m) => m.topicId)).toEqual(['q']);
  });
});

describe('matching: scores, thresholds and explanations', () => {
  it('weighs title above category above summary, and explains the strongest evidence first', () => {
    const [m] = explainStory(seed, one('japan OR japanese OR tokyo'));
    expect(m!.score).toBe(3 + 3 + 1);
    expect(m!.why).toBe('Matched: Japan in title, Tokyo in title, Japanese in summary');
    expect(m!.hits.map((h) => [h.term, h.field, h.text, h.weight])).toEqual([
      ['japan', 'title', 'Japan', 3],
      ['japanese', 'summary', 'Japanese', 1],
      ['tokyo', 'title', 'Tokyo', 3],
    ]);
  });

  it('drops matches below the topic minimum score', () => {
    const idx = new TopicIndex([compileTopic({ id: 'tech', name: 'Tech', query: '5G OR chips', minScore: 2 })]);
    expect(matchStory(seed, idx)).toEqual([]);
    expect(matchStory(story('5G auction opens'), idx).map((m) => m.score)).toEqual([3]);
  });

  it('a child topic match counts for its parent, saying through which child', () => {
    const idx = compileTopics([
      { id: 'sports', name: 'Sports', query: 'tennis' },
      { id: 'cricket', name: 'Cricket', query: 'wickets OR "ranji trophy"', parent: 'sports' },
    ]);
    const out = matchStory(story('Kerala beat Karnataka by six wickets in Ranji Trophy thriller'), idx);
    expect(out).toEqual([
      { topicId: 'cricket', score: 6, why: 'Matched: wickets in title, Ranji Trophy in title' },
      { topicId: 'sports', score: 6, why: 'Matched: wickets in title, Ranji Trophy in title (via Cricket)' },
    ]);
  });
});

describe('TopicIndex', () => {
  const catalog = compileCatalog(loadTopics('config/topics.json'));

  it('evaluates only topics filed under the story words', () => {
    const idx = new TopicIndex(catalog);
    // Football's "Kerala Blasters" is filed under its longest word, "blasters": no candidate here.
    const candidates = idx.candidates(analyzeStory(story('Kerala beat Karnataka in Ranji Trophy')));
    expect(candidates.map((c) => c.id).sort()).toEqual(['cricket', 'india']);
    expect(idx.candidates(analyzeStory(story('Kerala Blasters sign a striker'))).map((c) => c.id).sort()).toEqual(['football', 'india']);
    expect(idx.size).toBe(12);
  });

  it('replaces and removes topics', () => {
    const idx = new TopicIndex([compileTopic({ id: 'a', name: 'A', query: 'tokyo' })]);
    expect(matchStory(seed, idx).map((m) => m.topicId)).toEqual(['a']);
    idx.add(compileTopic({ id: 'a', name: 'A', query: 'osaka' }));
    expect(matchStory(seed, idx)).toEqual([]);
    idx.add(compileTopic({ id: 'b', name: 'B', query: 'jaishank*' }));
    expect(matchStory(seed, idx).map((m) => m.topicId)).toEqual(['b']);
    idx.remove('b');
    expect(matchStory(seed, idx)).toEqual([]);
    expect(idx.size).toBe(1);
  });

  // A topic filed under "the" or "news" was a candidate of every story: evaluated for each, the index a linear scan.
  it.each([
    ['the zyzzyva', 'zyzzyva'],
    ['zyzzyva the', 'zyzzyva'],
    ['news about zyzzyva', 'zyzzyva'],
    ['news about japan', 'japan'],
    ['"the zyzzyva"', 'zyzzyva'],
    ['"of the" zyzzyva', 'zyzzyva'],
    ['new* zyzzyva', 'zyzzyva'],
    ['"the Hague" OR "bank of Japan"', 'hague, japan'],
  ])('files %j under its least common word (%s), not a word nearly every story has', (query, word) => {
    const idx = new TopicIndex([compileTopic({ id: 'a', name: 'A', query })]);
    const everyday = analyzeStory(story('The news of the day: new talks on the bank', 'The minister said the news was about the year ahead.'));
    expect(idx.candidates(everyday)).toEqual([]);
    for (const w of word.split(', ')) expect(idx.candidates(analyzeStory(story(`Talk of ${w}`))).map((c) => c.id)).toEqual(['a']);
  });

  it('files an AND under its rarest side, never under the language', () => {
    const idx = new TopicIndex([compileTopic({ id: 'a', name: 'A', query: 'lang:en AND jaishankar' })]);
    expect(idx.candidates(analyzeStory(story('English words only')))).toEqual([]);
    expect(matchStory(seed, idx).map((m) => m.topicId)).toEqual(['a']);
  });
});

describe('TopicIndex under churn', () => {
  it('finds what a linear scan finds after thousands of topics were added, replaced and removed', () => {
    const words = ['tokyo', 'osaka', 'quad', 'jaishankar', 'kerala', 'wickets', 'japanese', 'ministers', 'summit', 'reform'];
    const queryOf = (i: number) =>
      [`${words[i % 10]}`, `"${words[i % 10]} ${words[(i + 3) % 10]}"`, `${words[i % 10]} AND (${words[(i + 1) % 10]} OR ${words[(i + 2) % 10]})`, `${words[i % 10]}* -${words[(i + 5) % 10]}`, `title:${words[i % 10]}`][i % 5]!;
    const idx = new TopicIndex();
    const live = new Map<string, ReturnType<typeof compileTopic>>();
    for (let i = 0; i < 3000; i++) {
      const t = compileTopic({ id: `t${i}`, name: `T${i}`, query: queryOf(i) });
      idx.add(t);
      live.set(t.id, t);
    }
    // Two removals in three leave the program arena mostly holes: it is compacted on the way.
    for (let i = 0; i < 3000; i++) {
      if (i % 3 === 0) continue;
      idx.remove(`t${i}`);
      live.delete(`t${i}`);
    }
    for (let i = 0; i < 3000; i += 6) {
      const t = compileTopic({ id: `t${i}`, name: `T${i}`, query: queryOf(i + 1) });
      idx.add(t);
      live.set(t.id, t);
    }
    expect(idx.size).toBe(1000);
    const view = (ms: readonly { topicId: string; score: number; why: string }[]) => ms.map((m) => `${m.topicId}:${m.score}:${m.why}`);
    const found = view(matchStory(seed, idx));
    expect(found.length).toBeGreaterThan(100);
    expect(found).toEqual(view(explainStoryLinear(seed, [...live.values()])));
  });
});

describe('TopicIndex: removing topics filed under one word', () => {
  // Three ways to be filed under "japan": beside a source (a source costs more), twice over (both sides of the
  // OR need "japan": two entries of one topic in one list), and as a prefix beside a language.
  const N = 60;
  const queryOf = (i: number) => [`japan source:feed${i}`, `japan OR "bank of japan"`, `japan* lang:en`][i % 3]!;
  const topic = (i: number, query = queryOf(i)) => compileTopic({ id: `t${i}`, name: `T${i}`, query });
  const news = story('Bank of Japan raises rates', 'Tokyo markets rose.', [], { feedId: 'feed3' });
  const elsewhere = story('Osaka expo closes');

  type Op = ['add', number, string?] | ['remove', number];
  const range = (from: number, to: number, step = 1) => Array.from({ length: Math.ceil((to - from) / step) }, (_, k) => from + k * step);
  const removeAll = (ids: number[]): Op[] => ids.map((i) => ['remove', i]);
  it.each<[string, Op[]]>([
    ['oldest first', removeAll(range(0, N))],
    ['newest first', removeAll(range(0, N).reverse())],
    ['every third, then the rest', removeAll([...range(0, N, 3), ...range(1, N, 3), ...range(2, N, 3)])],
    ['each removed and added back in turn', range(0, N).flatMap((i): Op[] => [['remove', i], ['add', i]])],
    ['each replaced by a query filed elsewhere, then back', [...range(0, N).map((i): Op => ['add', i, `osaka t${i}x`]), ...range(0, N, 2).map((i): Op => ['add', i])]],
    ['removed twice, and unknown ids', [...removeAll([5, 5, 17, 999]), ['add', 5], ...removeAll([5, 6])]],
  ])('%s: after every step the candidates are exactly the topics left, and matches are a linear scan\'s', (_, ops) => {
    const live = new Map(range(0, N).map((i) => [`t${i}`, topic(i)]));
    const idx = new TopicIndex(live.values());
    const ids = (ts: { id: string }[]) => ts.map((t) => t.id).sort();
    const view = (ms: readonly { topicId: string; score: number }[]) => ms.map((m) => `${m.topicId}:${m.score}`);
    for (const op of ops) {
      if (op[0] === 'remove') {
        idx.remove(`t${op[1]}`);
        live.delete(`t${op[1]}`);
      } else {
        const t = topic(op[1], op[2]);
        idx.add(t);
        live.set(t.id, t);
      }
      const filedUnderJapan = [...live.values()].filter((t) => !t.query.startsWith('osaka'));
      expect(ids(idx.candidates(analyzeStory(news)))).toEqual(ids(filedUnderJapan));
      expect(ids(idx.candidates(analyzeStory(elsewhere)))).toEqual(ids([...live.values()].filter((t) => t.query.startsWith('osaka'))));
      expect(view(matchStory(news, idx))).toEqual(view(explainStoryLinear(news, [...live.values()])));
      expect(idx.size).toBe(live.size);
    }
  });
});
