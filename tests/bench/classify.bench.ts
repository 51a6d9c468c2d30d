import { analyzeStory, compileTopic, explainStory, explainStoryLinear, TopicIndex, type CompiledTopic, type StoryText } from '../../src/classify/match.ts';
import { ratio, type Benchmark, type BenchResult } from './types.ts';
import { seededRandom } from '../helpers/random.ts';

/**
 * Classification cost per story against 100 to 100,000 topics: the inverted index beside a linear scan
 * that evaluates every topic, in the same run on the same stories.
 *
 * Synthetic but shaped like readers' own alerts: most name someone or something specific (a person as a
 * "First Last" phrase, a company, a place), often narrowed with AND/NOT or a field, drawn with a Zipf skew
 * from a vocabulary of 200,000 names of three or four syllables (news names people, companies and places by the hundred thousand).
 * Stories are 40 to 70 words: ordinary English plus a few of those names, with the same skew.
 */

const SYLLABLES = ['ka', 'ri', 'to', 'man', 'sha', 'de', 'lo', 'vin', 'ta', 'ne', 'ro', 'sun', 'pa', 'mi', 'gor', 'el', 'an', 'zu', 'bek', 'ha', 'ya', 'dor', 'li', 'vo'];
const ENGLISH = `the a of in on to and for with after over says said will new government minister market shares rise fall talks
  meeting report week year city people police court plan deal price prices workers company state national leaders
  officials support growth record first second last final team win season series home visit local public health
  school water power road rail bank rates policy budget tax trade plant project data service release film music
  show launch test study research early late month today night morning major small large high low open close`.split(/\s+/).filter(Boolean);
const CONTEXT = ['election', 'vote', 'merger', 'shares', 'match', 'film', 'visit', 'court', 'launch', 'budget', 'deal', 'police'];

function buildVocabulary(size: number, random: () => number): string[] {
  const seen = new Set<string>();
  while (seen.size < size) {
    const n = 3 + Math.floor(random() * 2);
    let w = '';
    for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    seen.add(w);
  }
  return [...seen];
}

/** Zipf(s) sampler over ranks 0..n-1 by inverse CDF on a precomputed table. */
function zipf(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / Math.pow(i + 1, s);
  return () => {
    const x = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/**
 * Skew of how often a name is picked, by topics and by stories alike. At 0.7 the most common name is in
 * about 0.4% of topics and of story mentions: popular people are followed by many readers, most alerts
 * are about someone few others follow.
 */
const ZIPF_S = 0.7;

const cap = (w: string) => w[0]!.toUpperCase() + w.slice(1);

function makeTopics(count: number, vocab: string[], pick: () => number, random: () => number): CompiledTopic[] {
  const name = () => cap(vocab[pick()]!);
  const ctx = () => CONTEXT[Math.floor(random() * CONTEXT.length)]!;
  const out: CompiledTopic[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    const query =
      r < 0.3 ? `"${name()} ${name()}"`
        : r < 0.55 ? `${name()} AND (${ctx()} OR ${ctx()})`
          : r < 0.75 ? `${name()} OR ${name()} OR ${name()}`
            : r < 0.85 ? `"${name()} ${name()}" -${ctx()}`
              : r < 0.95 ? `title:${name()} ${ctx()}`
                : `${vocab[pick()]!.slice(0, -1)}*`;
    out.push(compileTopic({ id: `t${i}`, name: `Topic ${i}`, query }, { maxChars: 500, maxTerms: 32 }));
  }
  return out;
}

function makeStories(count: number, vocab: string[], pick: () => number, random: () => number): StoryText[] {
  const stories: StoryText[] = [];
  for (let i = 0; i < count; i++) {
    const words = (n: number, names: number) => {
      const out: string[] = [];
      for (let k = 0; k < n; k++) out.push(ENGLISH[Math.floor(random() * ENGLISH.length)]!);
      for (let k = 0; k < names; k++) out.splice(Math.floor(random() * out.length), 0, cap(vocab[pick()]!), ...(random() < 0.5 ? [cap(vocab[pick()]!)] : []));
      return out.join(' ');
    };
    stories.push({ title: words(8, 1 + Math.floor(random() * 2)), summary: `${words(35 + Math.floor(random() * 25), 2 + Math.floor(random() * 3))}.`, categories: [words(1, 0)] });
  }
  return stories;
}

/**
 * Per-story CPU time of `fn` over `stories` (after one warm-up pass), repeated until at least `minMs`.
 * CPU time, not wall time: the benchmark shares its machine (CI, other work), and a process waiting for a
 * core would otherwise be billed for the wait. Garbage collection on helper threads is counted.
 */
function timePerStory(stories: readonly StoryText[], fn: (s: StoryText) => unknown, minMs: number): number {
  for (const s of stories) fn(s);
  let n = 0;
  const start = process.cpuUsage();
  let spentMs = 0;
  do {
    for (const s of stories) fn(s);
    n += stories.length;
    const used = process.cpuUsage(start);
    spentMs = (used.user + used.system) / 1000;
  } while (spentMs < minMs);
  return spentMs / n;
}

const bench: Benchmark = {
  name: 'classify',
  async run(ctx) {
    const sizes = ctx.quick ? [100, 1_000, 10_000] : [100, 1_000, 10_000, 100_000];
    const random = seededRandom(20270115);
    const vocab = buildVocabulary(200_000, random);
    const pick = zipf(vocab.length, ZIPF_S, random);
    const stories = makeStories(ctx.quick ? 200 : 1000, vocab, pick, random);
    const all = makeTopics(sizes[sizes.length - 1]!, vocab, pick, random);
    const results: BenchResult[] = [];
    const perStory = new Map<number, { index: number; linear: number }>();

    // Warm the JIT on a mid-sized index first, so the smallest size is not measured cold.
    const warm = new TopicIndex(all.slice(0, 1_000));
    for (let i = 0; i < 3; i++) for (const s of stories) explainStory(s, warm);

    for (const size of sizes) {
      const topics = all.slice(0, size);
      const t0 = performance.now();
      const index = new TopicIndex(topics);
      const buildMs = performance.now() - t0;
      // The linear scan is slow at large sizes: fewer stories keep its share of the budget fixed.
      const linearStories = stories.slice(0, Math.max(10, Math.min(stories.length, Math.round(2_000_000 / size))));
      let matched = 0;
      for (const s of stories) matched += explainStory(s, index).length;
      // Both sides do the same work per story: analyze it once, then evaluate (all or the indexed) topics.
      const indexMs = timePerStory(stories, (s) => explainStory(s, index), ctx.quick ? 400 : 2000);
      const linearMs = timePerStory(linearStories, (s) => explainStoryLinear(analyzeStory(s), topics), ctx.quick ? 300 : 1500);
      perStory.set(size, { index: indexMs, linear: linearMs });
      ctx.log(`${size} topics: index built in ${buildMs.toFixed(0)} ms; ${(matched / stories.length).toFixed(2)} matches/story; index ${(indexMs * 1000).toFixed(1)} µs/story, linear ${(linearMs * 1000).toFixed(1)} µs/story`);
      results.push({
        name: `classify ${size.toLocaleString('en')} topics: stories/s, index vs linear scan`,
        value: 1000 / indexMs,
        unit: 'stories/s',
        baseline: { name: 'linear scan', value: 1000 / linearMs },
        ratio: ratio(linearMs, indexMs),
      });
    }
    const smallest = perStory.get(sizes[0]!)!;
    const largest = sizes[sizes.length - 1]!;
    results.push({
      name: `classify index: µs per story at ${largest.toLocaleString('en')} topics vs ${sizes[0]} (lower is better; goal ≤ 3×)`,
      value: perStory.get(largest)!.index * 1000,
      unit: 'µs/story',
      baseline: { name: `index, ${sizes[0]} topics`, value: smallest.index * 1000 },
      ratio: ratio(perStory.get(largest)!.index, smallest.index),
    });
    return results;
  },
};
export default bench;
