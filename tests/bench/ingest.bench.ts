// Ingest benchmark: (1) the whole ingest stage (local HTTP fetch, decode, parse, normalize, exact and
// near-duplicate dedup in Redis) in items per second, beside bare rss-parser parseString on the same bytes;
// (2) conditional-GET polling through the poller's own path (Redis state, 304, reschedule) of many feeds.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import Parser from 'rss-parser';
import { OPTIONS } from '../../src/config/options.ts';
import { fetchFeed } from '../../src/ingest/fetch-feed.ts';
import { ingestBody, ingestFeed, type PollDeps } from '../../src/ingest/poll.ts';
import type { Enqueue } from '../../src/queue/queues.ts';
import { createFeedStore } from '../../src/store/feeds.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { ratio, type Benchmark, type BenchResult } from './types.ts';

const WORDS = 'minister council budget election storm harbour rail strike court ruling market shares energy prices water supply school hospital bridge festival museum river coast police report talks summit trade vaccine satellite launch drought harvest'.split(' ');

/** Deterministic pseudo-random text, so every run measures the same documents. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
/** Items `first`..`first + items - 1` of feed `doc`; an item's text depends only on (doc, index). */
export function makeFeed(doc: number, items: number, first = 0): Buffer {
  const body = Array.from({ length: items }, (_, k) => {
    const i = first + k;
    const r = rng(doc * 100_003 + i + 1);
    const words = (n: number) => Array.from({ length: n }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ');
    const title = `${words(9)} ${doc}-${i}`;
    // About 2 KB per item, the median of the real feeds in the shared corpus (news feeds with a teaser and full text).
    const desc = `<p>${words(40)}</p><p><a href="https://news.example.test/${doc}/${i}">${words(6)}</a> &amp; ${words(20)}</p>`;
    const full = `<p>${words(60)}</p><figure><img src="https://news.example.test/${doc}/${i}.jpg" alt="${words(5)}"/><figcaption>${words(8)}</figcaption></figure><p>${words(70)}</p><p>${words(50)}</p>`;
    return `<item><title>${title}</title><link>https://news.example.test/${doc}/${i}?utm_source=rss</link><guid isPermaLink="false">g-${doc}-${i}</guid>
<description><![CDATA[${desc}]]></description><content:encoded><![CDATA[${full}]]></content:encoded><pubDate>${new Date(Date.UTC(2027, 0, 1) + (doc * items + i) * 60_000).toUTCString()}</pubDate>
<category>${WORDS[i % WORDS.length]}</category><dc:creator>Reporter ${i % 7}</dc:creator></item>`;
  }).join('\n');
  return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Bench feed ${doc}</title><link>https://news.example.test/</link>
<description>Benchmark feed</description><language>en</language><ttl>30</ttl>
${body}
</channel></rss>`);
}

/** Starts tests/bench/feed-server.mjs in a child process serving the documents; resolves with its base URL. */
async function servePublisher(docs: Buffer[]): Promise<{ base: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  const file = join(dir, 'feeds.json');
  writeFileSync(file, JSON.stringify(docs.map((d) => d.toString('base64'))));
  const child = spawn(process.execPath, [fileURLToPath(new URL('./feed-server.mjs', import.meta.url)), file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`feed server exited with ${code}`)));
  });
  return {
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      child.kill();
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const settings: PollDeps['settings'] = {
  minIntervalSeconds: 300, maxIntervalSeconds: 21600, fetchTimeoutMs: 15000, connectTimeoutMs: 5000, fetchMaxBytes: 5 * 1024 * 1024,
  userAgent: 'Herald-bench', allowPrivate: true, hostConcurrency: 1_000_000, disableAfterDays: 7,
  websub: { enabled: false, callbackBase: 'http://127.0.0.1:1', leaseSeconds: 86400, fallbackSeconds: 7200, allowPrivate: true, userAgent: 'Herald-bench', timeoutMs: 1000 },
};
// Classification is the next stage: the benchmark measures ingestion up to the dedup decision.
const discard = Object.assign(async () => undefined, { bulk: async () => undefined }) as unknown as Enqueue;

async function pool<T>(items: T[], concurrency: number, fn: (t: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** The poller's default concurrency (HERALD_POLL_CONCURRENCY). */
const POLLER_CONCURRENCY = Number(OPTIONS.find((o) => o.env === 'HERALD_POLL_CONCURRENCY')?.default ?? 16);

const bench: Benchmark = {
  name: 'ingest',
  async run(ctx) {
    const results: BenchResult[] = [];
    const redis = createRedis(TEST_REDIS_URL, { name: 'bench-ingest' });
    const prefix = uniquePrefix('bench-ingest');
    const log = pino({ level: 'silent' });
    const clock = { now: () => Date.UTC(2027, 0, 20) };
    const deps: PollDeps = { feeds: createFeedStore(redis, prefix), stories: createStoryStore(redis, prefix), enqueue: discard, clock, log, settings };
    try {
      // (1) Ingest pipeline vs bare parseString on the same bytes, interleaved rounds. Two cases: a feed seen for
      // the first time (every item new: exact and near-duplicate lookups and a story record each), and the
      // steady state of polling, the same feed a little later with NEW_PER_POLL new items at the top.
      const DOCS = ctx.quick ? 12 : 60;
      const ITEMS = 50;
      const NEW_PER_POLL = 2;
      const first = Array.from({ length: DOCS }, (_, d) => makeFeed(d, ITEMS, NEW_PER_POLL));
      const later = Array.from({ length: DOCS }, (_, d) => makeFeed(d, ITEMS, 0));
      ctx.log(`documents: ${DOCS} × ${ITEMS} items, ${Math.round(first.reduce((n, d) => n + d.length, 0) / DOCS / ITEMS)} bytes per item`);
      // The publisher runs in its own process: serving bytes is the publisher's cost, not Herald's.
      const site = await servePublisher([...first, ...later]);
      const parser = new Parser();
      const rounds = ctx.quick ? 3 : 8;
      const ms = { newBare: 0, newPipe: 0, steadyBare: 0, steadyPipe: 0 };
      let feedSeq = 0;
      const bare = async (docs: Buffer[]) => {
        const t0 = performance.now();
        for (const doc of docs) await parser.parseString(doc.toString('utf8'));
        return performance.now() - t0;
      };
      const ingestAll = async (feedIds: string[], offset: number, expect: (r: { created: number; merged: number; duplicates: number }) => boolean) => {
        const t0 = performance.now();
        // As the poller runs it: a worker ingests POLLER_CONCURRENCY feeds at once, so Redis round trips overlap
        // with parsing the next feed.
        await pool(feedIds.map((id, d) => [id, d] as const), POLLER_CONCURRENCY, async ([feedId, d]) => {
          const res = await fetchFeed({ url: `${site.base}/${offset + d}.xml`, etag: null, lastModified: null, connectTimeoutMs: 5000, timeoutMs: 15000, maxBytes: settings.fetchMaxBytes, userAgent: 'Herald-bench', allowPrivate: true });
          if (res.kind !== 'ok') throw new Error('expected a body');
          const { report } = await ingestBody(deps, feedId, res.body, { contentType: res.contentType, baseUrl: res.finalUrl });
          if (!expect(report)) throw new Error(`unexpected ingest outcome ${JSON.stringify(report)}`);
        });
        return performance.now() - t0;
      };
      // Warm-up: JIT and connections.
      for (let d = 0; d < 3; d++) await parser.parseString(first[d]!.toString('utf8'));
      // The two cases run as separate phases, so one case's garbage is not collected on the other's time.
      const roundIds = Array.from({ length: rounds }, () => Array.from({ length: DOCS }, () => `bench-${feedSeq++}`));
      for (const ids of roundIds) {
        ms.newBare += await bare(first);
        ms.newPipe += await ingestAll(ids, 0, (r) => r.created + r.merged === ITEMS);
      }
      for (const ids of roundIds) {
        ms.steadyBare += await bare(later);
        ms.steadyPipe += await ingestAll(ids, DOCS, (r) => r.created + r.merged === NEW_PER_POLL && r.duplicates === ITEMS - NEW_PER_POLL);
      }
      await site.close();
      const items = rounds * DOCS * ITEMS;
      const rate = (t: number) => items / (t / 1000);
      ctx.log(`ingest: ${items} items per case; new feed: pipeline ${ms.newPipe.toFixed(0)} ms, bare ${ms.newBare.toFixed(0)} ms; steady state: pipeline ${ms.steadyPipe.toFixed(0)} ms, bare ${ms.steadyBare.toFixed(0)} ms`);
      results.push({ name: 'ingest pipeline, feed seen for the first time (every item new), items/s', value: Math.round(rate(ms.newPipe)), unit: 'items/s', baseline: { name: 'rss-parser parseString', value: Math.round(rate(ms.newBare)) }, ratio: ratio(rate(ms.newPipe), rate(ms.newBare)) });
      results.push({ name: `ingest pipeline, steady-state re-poll (${NEW_PER_POLL} of ${ITEMS} items new), items/s`, value: Math.round(rate(ms.steadyPipe)), unit: 'items/s', baseline: { name: 'rss-parser parseString', value: Math.round(rate(ms.steadyBare)) }, ratio: ratio(rate(ms.steadyPipe), rate(ms.steadyBare)) });

      // (2) Conditional-GET polling: every feed answers 304 to its ETag.
      const FEEDS = ctx.quick ? 1000 : 10_000;
      const CONC = 64;
      const notModified = await servePublisher(first.slice(0, 1));
      const ids = Array.from({ length: FEEDS }, (_, i) => `poll-${i}`);
      const now = clock.now();
      for (let i = 0; i < FEEDS; i += 1000) {
        const pipe = redis.pipeline();
        for (const id of ids.slice(i, i + 1000)) {
          pipe.hset(`${prefix}:feeds`, id, JSON.stringify({ id, url: `${notModified.base}/poll/${id}.xml` }));
          pipe.zadd(`${prefix}:feeds:due`, now, id);
          pipe.hset(`${prefix}:{f:${id}}:state`, { etag: '"same"', lastSuccessAt: String(now - 1000) });
        }
        await pipe.exec();
      }
      let t0 = performance.now();
      await pool(ids, CONC, async (id) => {
        const r = await ingestFeed(deps, id);
        if (r.status !== 'not-modified') throw new Error(`expected 304 for ${id}`);
      });
      const pollMs = performance.now() - t0;
      t0 = performance.now();
      await pool(ids, CONC, async (id) => {
        const res = await fetch(`${notModified.base}/poll/${id}.xml`, { headers: { 'if-none-match': '"same"' } });
        await res.arrayBuffer();
        if (res.status !== 304) throw new Error('expected 304');
      });
      const fetchMs = performance.now() - t0;
      await notModified.close();
      const pollRate = FEEDS / (pollMs / 1000);
      const fetchRate = FEEDS / (fetchMs / 1000);
      ctx.log(`polling: ${FEEDS} feeds answering 304, poller ${pollMs.toFixed(0)} ms, bare fetch ${fetchMs.toFixed(0)} ms`);
      results.push({ name: `conditional-GET polling of ${FEEDS} feeds (304), feeds/s`, value: Math.round(pollRate), unit: 'feeds/s', baseline: { name: 'bare fetch() with If-None-Match', value: Math.round(fetchRate) }, ratio: ratio(pollRate, fetchRate) });

      // (3) Hostile input: a billion-laughs document is refused, not expanded.
      const bomb = Buffer.from(`<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "${'x'.repeat(10_000)}"><!ENTITY b "${'&a;'.repeat(1000)}">]><rss version="2.0"><channel><title>${'&b;'.repeat(1000)}</title></channel></rss>`);
      const tries = ctx.quick ? 50 : 500;
      t0 = performance.now();
      for (let i = 0; i < tries; i++) await ingestBody(deps, 'bomb', bomb, { contentType: null, baseUrl: 'http://bomb.test/' }).catch(() => undefined);
      const bombMs = (performance.now() - t0) / tries;
      results.push({ name: 'entity-bomb refusal, ms per document (lower is better)', value: Math.round(bombMs * 1000) / 1000, unit: 'ms', baseline: null, ratio: null });
    } finally {
      await deletePrefix(redis, prefix);
      await redis.quit();
    }
    return results;
  },
};
export default bench;
