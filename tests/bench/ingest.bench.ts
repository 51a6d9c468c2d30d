// Ingest benchmark: (1) the whole ingest stage (local HTTP fetch, decode, parse, normalize, exact dedup in
// Redis, near-duplicate dedup through its log) in items per second, beside bare rss-parser parseString on the
// same bytes; (2) conditional-GET polling through the poller's own path (Redis state, 304, reschedule) of many feeds.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import Parser from 'rss-parser';
import { OPTIONS } from '../../src/config/options.ts';
import { fetchFeed } from '../../src/ingest/fetch-feed.ts';
import { ingestBody, ingestFeed, type PollDeps } from '../../src/ingest/poll.ts';
import type { Enqueue } from '../../src/queue/queues.ts';
import { createFeedStore } from '../../src/store/feeds.ts';
import { createRedis, isCluster, type RedisClient } from '../../src/store/redis.ts';
import { createStoryStore, type IngestCandidate } from '../../src/store/stories.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { redisCpuSeconds } from './support.ts';
import { ratio, type Benchmark, type BenchResult } from './types.ts';

/** Starts tests/bench/feed-server.mjs in a child process; resolves with its base URL. */
async function servePublisher(): Promise<{ base: string; close(): Promise<void> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./feed-server.mjs', import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'] });
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

const cpuMsSince = (from: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1000;
};

/**
 * What Redis spends on one hash field written, on this machine: HSETs of 17 new fields beside HSETs of one,
 * from Redis' own per-command accounting. A new story writes about 8 fields (its record's 4, its link claim
 * and 3 seen entries; its feed's source is the record) and one line of the near-duplicate log, so this bounds
 * what Redis costs per new item.
 */
async function redisMicrosPerField(redis: RedisClient, prefix: string, calls: number): Promise<number> {
  const hsetUsec = async () => Number(/cmdstat_hset:calls=\d+,usec=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  const run = async (fields: number, key: string) => {
    const before = await hsetUsec();
    for (let i = 0; i < calls; i += 100) {
      const pipe = redis.pipeline();
      for (let j = i; j < i + 100; j++) {
        const args: string[] = [];
        for (let f = 0; f < fields; f++) args.push(`${f}:${j.toString(36)}`, `story-${j}-${f}-0123456789`);
        pipe.hset(key, ...args);
      }
      await pipe.exec();
    }
    return (await hsetUsec()) - before;
  };
  const one = await run(1, `${prefix}:fieldcost:1`);
  const many = await run(17, `${prefix}:fieldcost:17`);
  return (many - one) / calls / 16;
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
      const rounds = ctx.quick ? 3 : 8;
      // Unmeasured rounds first, alike for both sides. A poller runs for days: what counts is its throughput once
      // V8 has optimized it, and functions called once per feed (60 times a round) were still being compiled,
      // on threads that share the cores with Redis, three rounds in.
      const warmups = ctx.quick ? 1 : 3;
      // The publisher runs in its own process: generating and serving bytes is the publisher's cost, not Herald's.
      const site = await servePublisher();
      // Every round reads different feeds (different stories), so a first-time ingest really creates stories.
      const url = (round: number, d: number, first: number) => `${site.base}/doc/${round * DOCS + d}/${first}.xml`;
      const bytes = async (round: number, first: number) =>
        Promise.all(Array.from({ length: DOCS }, async (_, d) => Buffer.from(await (await fetch(url(round, d, first))).arrayBuffer())));
      const sample = await bytes(0, NEW_PER_POLL);
      ctx.log(`documents: ${DOCS} × ${ITEMS} items per round, ${rounds} rounds, ${Math.round(sample.reduce((n, d) => n + d.length, 0) / DOCS / ITEMS)} bytes per item`);
      const parser = new Parser();
      const ms = { newBare: 0, newPipe: 0, newNoStore: 0, steadyBare: 0, steadyPipe: 0 };
      let feedSeq = 0;
      const bare = async (docs: Buffer[]) => {
        const t0 = performance.now();
        for (const doc of docs) await parser.parseString(doc.toString('utf8'));
        return performance.now() - t0;
      };
      const ingestAll = async (feedIds: string[], round: number, first: number, expect: (r: { created: number; merged: number; duplicates: number }) => boolean, via: PollDeps = deps) => {
        const t0 = performance.now();
        // As the poller runs it: POLLER_CONCURRENCY feeds at once, so Redis and HTTP round trips overlap with
        // parsing the next feed.
        await pool(feedIds.map((id, d) => [id, d] as const), POLLER_CONCURRENCY, async ([feedId, d]) => {
          const res = await fetchFeed({ url: url(round, d, first), etag: null, lastModified: null, connectTimeoutMs: 5000, timeoutMs: 15000, maxBytes: settings.fetchMaxBytes, userAgent: 'Herald-bench', allowPrivate: true });
          if (res.kind !== 'ok') throw new Error('expected a body');
          const { report } = await ingestBody(via, feedId, res.body, { contentType: res.contentType, baseUrl: res.finalUrl });
          if (!expect(report)) throw new Error(`unexpected ingest outcome ${JSON.stringify(report)}`);
        });
        return performance.now() - t0;
      };
      // A bound, not Herald: the same path with a story store that builds every story, its fingerprint and its
      // stored JSON as the real one does and writes nothing. The first-time ratio cannot exceed this one's.
      const withoutStore: PollDeps = {
        ...deps,
        stories: {
          ingestBatch: async (cands: readonly IngestCandidate[]) => cands.map((c) => {
            const story = c.story();
            c.fingerprint();
            JSON.stringify(story);
            return { outcome: 'created' as const, id: c.id };
          }),
        } as unknown as PollDeps['stories'],
      };
      // The two cases run as separate phases, so one case's garbage is not collected on the other's time.
      const roundIds = Array.from({ length: rounds + warmups }, () => Array.from({ length: DOCS }, () => `bench-${feedSeq++}`));
      // Warm-up, not measured, alike for both: whole rounds of other feeds (JIT, connections, Redis scripts).
      for (let w = rounds; w < rounds + warmups; w++) {
        await bare(await bytes(w, NEW_PER_POLL));
        await ingestAll(roundIds[w]!, w, NEW_PER_POLL, (r) => r.created === ITEMS);
      }
      // CPU as well as time: the pipeline's work is split between Herald and Redis, which share two cores here.
      const cpu = { bare: 0, herald: 0, redis: 0 };
      for (let round = 0; round < rounds; round++) {
        const docs = await bytes(round, NEW_PER_POLL);
        let c0 = process.cpuUsage();
        ms.newBare += await bare(docs);
        cpu.bare += cpuMsSince(c0);
        const r0 = await redisCpuSeconds(redis);
        c0 = process.cpuUsage();
        ms.newPipe += await ingestAll(roundIds[round]!, round, NEW_PER_POLL, (r) => r.created === ITEMS);
        cpu.herald += cpuMsSince(c0);
        cpu.redis += ((await redisCpuSeconds(redis)) - r0) * 1000;
        ms.newNoStore += await ingestAll(roundIds[round]!, round, NEW_PER_POLL, (r) => r.created === ITEMS, withoutStore);
      }
      for (let round = 0; round < rounds; round++) {
        ms.steadyBare += await bare(await bytes(round, 0));
        ms.steadyPipe += await ingestAll(roundIds[round]!, round, 0, (r) => r.created === NEW_PER_POLL && r.duplicates === ITEMS - NEW_PER_POLL);
      }
      await site.close();
      const items = rounds * DOCS * ITEMS;
      const rate = (t: number) => items / (t / 1000);
      ctx.log(`ingest: ${items} items per case; new feed: pipeline ${ms.newPipe.toFixed(0)} ms, without the store ${ms.newNoStore.toFixed(0)} ms, bare ${ms.newBare.toFixed(0)} ms; steady state: pipeline ${ms.steadyPipe.toFixed(0)} ms, bare ${ms.steadyBare.toFixed(0)} ms`);
      results.push({ name: 'ingest pipeline, feed seen for the first time (every item new), items/s', value: Math.round(rate(ms.newPipe)), unit: 'items/s', baseline: { name: 'rss-parser parseString', value: Math.round(rate(ms.newBare)) }, ratio: ratio(rate(ms.newPipe), rate(ms.newBare)) });
      const perCpuS = (ms: number) => items / (ms / 1000);
      ctx.log(`first-time ingest CPU per item: Herald ${((cpu.herald * 1000) / items).toFixed(0)} µs, Redis ${((cpu.redis * 1000) / items).toFixed(0)} µs; bare parseString ${((cpu.bare * 1000) / items).toFixed(0)} µs`);
      if (!isCluster(redis)) results.push({ name: 'ingest pipeline, first time, items per CPU-second of Herald and Redis together', value: Math.round(perCpuS(cpu.herald + cpu.redis)), unit: 'items/CPU-s', baseline: { name: 'parseString items/CPU-s', value: Math.round(perCpuS(cpu.bare)) }, ratio: ratio(perCpuS(cpu.herald + cpu.redis), perCpuS(cpu.bare)) });
      results.push({ name: 'the same without the story store (fetch, decode, parse, normalize, MinHash; nothing written): the bound on the ratio above', value: Math.round(rate(ms.newNoStore)), unit: 'items/s', baseline: { name: 'rss-parser parseString', value: Math.round(rate(ms.newBare)) }, ratio: ratio(rate(ms.newNoStore), rate(ms.newBare)) });
      results.push({ name: `ingest pipeline, steady-state re-poll (${NEW_PER_POLL} of ${ITEMS} items new), items/s`, value: Math.round(rate(ms.steadyPipe)), unit: 'items/s', baseline: { name: 'rss-parser parseString', value: Math.round(rate(ms.steadyBare)) }, ratio: ratio(rate(ms.steadyPipe), rate(ms.steadyBare)) });

      // (2) Conditional-GET polling: every feed answers 304 to its ETag.
      const FEEDS = ctx.quick ? 1000 : 10_000;
      const CONC = 64;
      const notModified = await servePublisher();
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

      // Redis' own accounting is per node: on a cluster these two rows would read one node of several.
      const perField = isCluster(redis) ? null : await redisMicrosPerField(redis, prefix, ctx.quick ? 2000 : 20_000);
      if (perField !== null) results.push({ name: 'Redis time per hash field written (HSET of 17 fields beside HSET of 1; what each new story pays about 8 times)', value: Math.round(perField * 100) / 100, unit: 'µs', baseline: null, ratio: null });

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
