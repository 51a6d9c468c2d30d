import { createAnalysisCache } from '../../src/classify/analysis-cache.ts';
import { compileTopic, DEFAULT_STORY_LIMITS, explainStory, TopicIndex } from '../../src/classify/match.ts';
import { backtestQuery } from '../../src/classify/preview.ts';
import type { Story } from '../../src/model.ts';
import { ratio, type Benchmark } from './types.ts';

/**
 * CPU time of one alert preview over the recent stories (HERALD_PREVIEW_MAX_STORIES, 5,000 by default, each
 * ~2 KB), without Redis: the preview as it was (every story analyzed again on every request) beside the
 * preview from the per-process analysis cache, warmed by one earlier preview, in the same run.
 */
const WORDS = `the a of in on to and for with after over says said will government minister market shares talks
  meeting report week year city people police court plan deal price workers company state national leaders
  officials support growth record season home visit local public health school water power road rail bank`.split(/\s+/).filter(Boolean);

function makeStories(n: number): Story[] {
  let seed = 20270115;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const text = (chars: number) => {
    const out: string[] = [];
    let len = 0;
    while (len < chars) {
      // One word in eight is a name: news names people and places by the thousand.
      const w = next() % 8 === 0 ? `name${(next() % 20_000).toString(36)}` : WORDS[next() % WORDS.length]!;
      out.push(w);
      len += w.length + 1;
    }
    return out.join(' ');
  };
  return Array.from({ length: n }, (_, i) => ({
    id: `s${i}`, feedId: 'wire', guid: null, url: `https://wire.example.test/${i}`, title: text(90), summary: text(1990), categories: ['World'], publishedAt: i, firstSeenAt: i,
  }));
}

function cpuMs(run: () => unknown): number {
  const start = process.cpuUsage();
  run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

async function cpuMsAsync(run: () => Promise<unknown>): Promise<number> {
  const start = process.cpuUsage();
  await run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

const bench: Benchmark = {
  name: 'preview',
  async run(ctx) {
    const stories = makeStories(ctx.quick ? 1000 : 5000);
    const queries = ['zyzzyva', '"Jaishankar" AND (Japan OR Quad)', 'name1a* OR market'].map((q, i) => compileTopic({ id: `q${i}`, name: 'Preview', query: q }));
    // What every preview did before the cache: analyze each story, then match.
    const uncached = (topic: (typeof queries)[number]) => {
      const index = new TopicIndex([topic]);
      for (const s of stories) explainStory(s, index, DEFAULT_STORY_LIMITS);
    };
    const analyses = createAnalysisCache({ maxStories: stories.length, storyLimits: DEFAULT_STORY_LIMITS });
    const opts = { quality: 'all' as const, bestMinScore: 3, analyses };
    const fillMs = await cpuMsAsync(() => backtestQuery(queries[0]!, stories, opts));
    let before = 0;
    let after = 0;
    for (const topic of queries) {
      before += cpuMs(() => uncached(topic));
      after += await cpuMsAsync(() => backtestQuery(topic, stories, opts));
    }
    before /= queries.length;
    after /= queries.length;
    ctx.log(`${stories.length} stories: first preview (fills the cache) ${fillMs.toFixed(0)} ms CPU; then ${after.toFixed(1)} ms per preview, vs ${before.toFixed(0)} ms analyzing every story`);
    return [{
      name: `preview over ${stories.length.toLocaleString('en')} stories: CPU ms per request, cached vs analyzing every story (lower is better)`,
      value: after,
      unit: 'ms',
      baseline: { name: 'analyzing every story', value: before },
      ratio: ratio(after, before),
    }];
  },
};
export default bench;
