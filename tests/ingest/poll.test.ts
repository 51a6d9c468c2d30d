import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UnrecoverableError } from 'bullmq';
import Fastify from 'fastify';
import { ingestRoutes } from '../../src/ingest/routes.ts';
import { BATCH_HOOK, type BatchHook, type Command, type RedisClient } from '../../src/store/redis.ts';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { describeFeedHealth } from '../../src/ingest/health.ts';
import { ingestBody, ingestFeed, runPollTick, type PollDeps } from '../../src/ingest/poll.ts';
import type { HandlerMap } from '../../src/queue/jobs.ts';
import { closeQueues, createEnqueue, createQueues, startQueueWorker, type Queues } from '../../src/queue/queues.ts';
import { createFeedStore } from '../../src/store/feeds.ts';
import { createRedis, isClusterTarget, scanKeys } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { manualClock } from '../helpers/clock.ts';
import { fixture } from '../helpers/http-fixtures.ts';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../helpers/redis.ts';

type Answer = { status?: number; headers?: Record<string, string>; body?: string | Buffer };
interface Site {
  url(path: string): string;
  set(path: string, a: Answer | ((req: IncomingMessage) => Answer)): void;
  hits(path: string): IncomingMessage[];
  close(): Promise<void>;
}
async function startSite(host = '127.0.0.1'): Promise<Site> {
  const routes = new Map<string, Answer | ((req: IncomingMessage) => Answer)>();
  const seen = new Map<string, IncomingMessage[]>();
  const server: Server = createServer((req, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    seen.set(path, [...(seen.get(path) ?? []), req]);
    const r = routes.get(path);
    const a = typeof r === 'function' ? r(req) : r;
    if (!a) return void res.writeHead(404).end();
    res.writeHead(a.status ?? 200, { 'content-type': 'application/rss+xml', ...a.headers }).end(a.body ?? '');
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p) => `http://${host}:${port}${p}`,
    set: (p, a) => void routes.set(p, a),
    hits: (p) => seen.get(p) ?? [],
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

const rss = (items: string, channelExtra = '') =>
  `<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title><link>https://t.example.test/</link>${channelExtra}${items}</channel></rss>`;
const item = (o: { guid?: string; link?: string; title: string; summary?: string; date?: string }) =>
  `<item>${o.guid ? `<guid>${o.guid}</guid>` : ''}${o.link ? `<link>${o.link}</link>` : ''}<title>${o.title}</title><description>${o.summary ?? ''}</description>${o.date ? `<pubDate>${o.date}</pubDate>` : ''}</item>`;

const clock = manualClock('2027-01-13T10:00:00Z'); // Wednesday
const onCluster = isClusterTarget(TEST_REDIS_URL);
let redis: RedisClient;
let queueConn: RedisClient;
let queues: Queues;
let site: Site;
let prefix: string;
let deps: PollDeps;

const settings = {
  minIntervalSeconds: 300, maxIntervalSeconds: 6 * 3600, fetchTimeoutMs: 3000, connectTimeoutMs: 2000, fetchMaxBytes: 5 * 1024 * 1024,
  userAgent: 'Herald-test', allowPrivate: true, hostConcurrency: 2, disableAfterDays: 7,
  websub: { enabled: false, callbackBase: 'http://127.0.0.1:1', leaseSeconds: 86400, fallbackSeconds: 7200, allowPrivate: true, userAgent: 'Herald-test', timeoutMs: 2000 },
};

beforeAll(async () => {
  prefix = uniquePrefix('ingest-poll');
  redis = createRedis(TEST_REDIS_URL);
  queueConn = createRedis(TEST_REDIS_URL, { forQueue: true });
  queues = createQueues(queueConn, prefix);
  site = await startSite();
  deps = {
    feeds: createFeedStore(redis, prefix), stories: createStoryStore(redis, prefix), enqueue: createEnqueue(queues), clock,
    log: pino({ level: 'silent' }), settings,
  };
});
afterAll(async () => {
  await closeQueues(queues);
  await site.close();
  const r = testRedis();
  await deletePrefix(r, prefix);
  await r.quit();
  await Promise.all([redis.quit(), queueConn.quit()]);
});
beforeEach(() => clock.set('2027-01-13T10:00:00Z'));

const jobsOf = async (name: string) => (await queues[name === 'FeedFetch' ? 'feeds' : 'classify'].getJobs(['waiting', 'prioritized', 'delayed'])).filter((j) => j.name === name);
const fetchIds = async () => (await jobsOf('FeedFetch')).map((j) => (j.data as { feedId: string }).feedId).sort();

describe('poll tick', () => {
  it('enqueues only due feeds, at most hostConcurrency per host; the rest stay due for the next tick', async () => {
    const other = await startSite('127.0.0.2');
    try {
      const now = clock.now();
      for (const id of ['tick-a', 'tick-b', 'tick-c']) await deps.feeds.add({ id, url: site.url(`/${id}.xml`) }, now);
      await deps.feeds.add({ id: 'tick-d', url: other.url('/d.xml') }, now);
      await deps.feeds.add({ id: 'tick-later', url: other.url('/later.xml') }, now + 3_600_000);
      const r = await runPollTick(deps);
      expect(r).toEqual({ enqueued: 3, deferred: 1 });
      expect(await fetchIds()).toEqual(['tick-a', 'tick-b', 'tick-d']);
      // Nothing in flight finished: the next tick still holds tick-c back, and re-enqueues nothing.
      expect(await runPollTick(deps)).toEqual({ enqueued: 0, deferred: 1 });
      await deps.feeds.releaseHost(new URL(site.url('/')).host, 'tick-a');
      expect((await runPollTick(deps)).enqueued).toBe(1);
      expect(await fetchIds()).toContain('tick-c');
    } finally {
      await queues.feeds.drain();
      for (const id of ['tick-a', 'tick-b', 'tick-c', 'tick-d', 'tick-later']) await deps.feeds.remove(id);
      await other.close();
    }
  });
});

describe('removing a feed and its host slot', () => {
  const host = () => new URL(site.url('/')).host;
  const own = (): PollDeps => ({ ...deps, feeds: createFeedStore(redis, `${prefix}:remove`), settings: { ...settings, hostConcurrency: 1 } });

  it('a feed removed while its fetch waits in the queue frees its host\'s slot at once', async () => {
    // The tick took the host's one slot for "gone" and queued its fetch; the operator removes it meanwhile. Before,
    // the queued fetch found no feed and left the slot held for its whole lease (fetch timeout + 60 s, ~75 s by
    // default): every other feed of the host waited that long.
    const d = own();
    try {
      await d.feeds.add({ id: 'gone', url: site.url('/gone.xml') }, clock.now() - 1000);
      await d.feeds.add({ id: 'same-host', url: site.url('/same-host.xml') }, clock.now());
      expect(await runPollTick(d)).toEqual({ enqueued: 1, deferred: 1 });
      expect(await d.feeds.remove('gone')).toBe(true);
      expect(await d.feeds.hostInflight(host())).toBe(0);
      expect(await ingestFeed(d, 'gone')).toMatchObject({ status: 'skipped' });
      expect(await runPollTick(d)).toEqual({ enqueued: 1, deferred: 0 });
    } finally {
      await queues.feeds.drain();
      for (const id of ['gone', 'same-host']) await d.feeds.remove(id);
    }
  });

  it('a feed removed while its fetch runs keeps the slot until that fetch ends', async () => {
    // A site that answers only on the test's word: the fetch is under way until then.
    let answer: (() => void) | undefined;
    const slow = await new Promise<Server>((ok) => {
      const s = createServer((_req, res) => {
        answer = () => res.writeHead(200, { 'content-type': 'application/rss+xml' }).end(rss(item({ guid: 'slow-1', title: 'Slow' })));
      });
      s.listen(0, '127.0.0.1', () => ok(s));
    });
    const slowHost = `127.0.0.1:${(slow.address() as AddressInfo).port}`;
    const d = own();
    try {
      await d.feeds.add({ id: 'running', url: `http://${slowHost}/running.xml` }, clock.now());
      expect((await runPollTick(d)).enqueued).toBe(1);
      const fetching = ingestFeed(d, 'running');
      for (let i = 0; i < 100 && !answer; i++) await new Promise((r) => setTimeout(r, 20));
      expect(answer).toBeDefined();
      await d.feeds.remove('running');
      // Its fetch is under way: the slot stays taken, so the host still gets no more than its limit at once.
      expect(await d.feeds.hostInflight(slowHost)).toBe(1);
      answer!();
      await fetching;
      expect(await d.feeds.hostInflight(slowHost)).toBe(0);
    } finally {
      await queues.feeds.drain();
      await queues.classify.drain();
      await d.feeds.remove('running');
      slow.closeAllConnections();
      await new Promise((r) => slow.close(r));
    }
  });

  /** A site that answers each request only when the test says how: a fetch stays under way until then. */
  async function startHeldSite() {
    const waiting: ServerResponse[] = [];
    const server = createServer((_req, res) => void waiting.push(res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      url: (p: string) => `${base}${p}`,
      /** The next request that arrived (waiting up to 2 s for it), still unanswered. */
      async next(): Promise<ServerResponse> {
        for (let i = 0; i < 100 && waiting.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
        const res = waiting.shift();
        if (!res) throw new Error('no request reached the held site');
        return res;
      },
      close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
    };
  }
  /** Every key of the feed under this file's prefix (the feed store's and the story store's), with its TTL. */
  const keysOfFeed = async (feedId: string) => {
    const found: string[] = [];
    await scanKeys(redis, `${prefix}*{f:${feedId}}*`, async (keys) => void found.push(...keys));
    return Promise.all(found.sort().map(async (key) => ({ key, pttl: await redis.pttl(key) })));
  };
  const answerWith = (a: { status: number; headers?: Record<string, string>; body?: string }) => (res: ServerResponse) =>
    res.writeHead(a.status, { 'content-type': 'application/rss+xml', ...a.headers }).end(a.body ?? '');

  it.each([
    { outcome: 'new stories (200)', id: 'removed-ok', before: null, answer: answerWith({ status: 200, headers: { etag: '"r-1"' }, body: rss(item({ guid: 'removed-ok-1', title: 'Published as the feed was removed' })) }) },
    { outcome: 'not modified (304)', id: 'removed-304', before: answerWith({ status: 200, headers: { etag: '"r-304"' }, body: rss(item({ guid: 'removed-304-1', title: 'Known item' })) }), answer: answerWith({ status: 304 }) },
    { outcome: 'a server error (500)', id: 'removed-500', before: null, answer: answerWith({ status: 500 }) },
    { outcome: '410 Gone', id: 'removed-410', before: null, answer: answerWith({ status: 410 }) },
  ])('a feed removed while its fetch runs leaves no key behind when that fetch ends with $outcome, and is not polled again', async ({ id, before, answer }) => {
    // `herald feeds remove` deletes the feed's state, but the fetch under way wrote its outcome (validators,
    // failure count, a 410's "disabled", the day's item count, the next check) into it again afterwards: keys with
    // no TTL under noeviction, for a feed that no longer exists, and picked up by a feed later added with that id.
    const held = await startHeldSite();
    const d = own();
    const fetchOnce = async (then: (res: ServerResponse) => void, meanwhile: () => Promise<unknown> = async () => undefined) => {
      const fetching = ingestFeed(d, id).catch((e: unknown) => e);
      const res = await held.next();
      await meanwhile();
      then(res);
      return fetching;
    };
    try {
      await d.feeds.add({ id, url: held.url(`/${id}.xml`) }, clock.now());
      if (before) {
        await fetchOnce(before);
        clock.advance(3_600_000);
      }
      expect((await runPollTick(d)).enqueued).toBe(1);
      await fetchOnce(answer, async () => expect(await d.feeds.remove(id)).toBe(true));

      // What the operator checks: not listed, not scheduled, and nothing of it left in Redis for ever. (Keys with a
      // TTL may stay: the seen index of a fetch that brought stories, kept so a re-added feed does not alert on
      // them again, and the removal's own mark.)
      expect((await d.feeds.list()).map((f) => f.id)).not.toContain(id);
      expect(await d.feeds.due(clock.now() + 365 * 86_400_000, 1000)).not.toContain(id);
      clock.advance(365 * 86_400_000);
      expect((await runPollTick(d)).enqueued).toBe(0);
      const left = await keysOfFeed(id);
      expect(left.filter((k) => k.pttl < 0)).toEqual([]);
      expect(left.map((k) => k.key.slice(k.key.indexOf('}:') + 2)).filter((k) => k !== 'removed' && !k.startsWith('seen:'))).toEqual([]);
      // The same id added again starts clean: not disabled, no failures, no validators of the old fetch.
      await d.feeds.add({ id, url: held.url(`/${id}.xml`) }, clock.now());
      expect(await d.feeds.state(id)).toMatchObject({ etag: null, lastStatus: null, consecutiveFailures: 0, disabledAt: null, lastError: null, nextCheckAt: null });
    } finally {
      await queues.feeds.drain();
      await queues.classify.drain();
      await d.feeds.remove(id);
      await held.close();
    }
  });

  it('a feed removed just as its fetch learns of a permanent redirect is not listed again', async () => {
    // The fetch followed a 301 and reads the feed's registry entry to store the new URL; the operator's remove
    // lands right after that read. Writing the entry back with the new URL put the removed feed back in the
    // registry: listed by `herald feeds list` and the console, never polled (it is off the schedule).
    const sub = `${prefix}:remove`;
    const plain = createFeedStore(redis, sub);
    let removeOnNextRead = false;
    const racing = new Proxy(redis, {
      get(target, prop) {
        if (prop === 'hget') {
          return async (key: string, field: string) => {
            const entry = await target.hget(key, field);
            if (removeOnNextRead && key === `${sub}:feeds`) {
              removeOnNextRead = false;
              await plain.remove(field);
            }
            return entry;
          };
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const d: PollDeps = { ...own(), feeds: createFeedStore(racing as RedisClient, sub) };
    site.set('/moved-away.xml', { status: 301, headers: { location: '/moved-here.xml' } });
    // The fetch has read the feed by the time the new address is asked: the next read of it is the URL update's.
    site.set('/moved-here.xml', () => ((removeOnNextRead = true), { body: rss(item({ guid: 'moved-1', title: 'Moved and removed' })) }));
    try {
      await plain.add({ id: 'moved-away', url: site.url('/moved-away.xml') }, clock.now());
      await ingestFeed(d, 'moved-away');
      expect(removeOnNextRead).toBe(false);
      expect((await plain.list()).map((f) => f.id)).not.toContain('moved-away');
      expect(await plain.get('moved-away')).toBeNull();
    } finally {
      await queues.classify.drain();
      await plain.remove('moved-away');
    }
  });
});

describe('poll tick fairness', () => {
  it('a host with more due feeds than one page does not keep other hosts\' feeds out of the tick', async () => {
    // 1,000 section feeds of one site fell due just before a feed of another site; the site takes 2 at a time.
    const own: PollDeps = { ...deps, feeds: createFeedStore(redis, `${prefix}:fair`) };
    const now = clock.now();
    try {
      for (let k = 0; k < 1000; k++) await own.feeds.add({ id: `section-${k}`, url: `https://big.example.test/section/${k}.xml` }, now - 60_000 + k);
      await own.feeds.add({ id: 'small', url: 'https://small.example.test/feed.xml' }, now - 1000);
      expect(await runPollTick(own)).toEqual({ enqueued: 3, deferred: 998 });
      expect(await fetchIds()).toContain('small');
    } finally {
      await queues.feeds.drain();
    }
  });
});

describe('ingestFeed', () => {
  it('turns a feed into stories: exact dedup inside the feed, classification queued once, next check from <ttl>', async () => {
    site.set('/full.xml', (req) => (req.headers['if-none-match'] === '"full-1"' ? { status: 304 } : { headers: { etag: '"full-1"' }, body: fixture('feeds/formats/rss20-full.xml') }));
    await deps.feeds.add({ id: 'full', url: site.url('/full.xml') }, clock.now());
    const report = await ingestFeed(deps, 'full');
    expect(report).toMatchObject({ status: 'ok', items: 4, created: 3, duplicates: 1, updated: 0, merged: 0 });
    const classify = (await jobsOf('StoryClassify')).map((j) => (j.data as { storyId: string }).storyId);
    const stories = await deps.stories.getMany(classify);
    expect(stories.map((s) => s.title).sort()).toEqual(['An item with neither title nor link nor guid, identified by its content.', 'An item without a guid', 'Council approves new budget & tax plan']);
    const budget = stories.find((s) => s.guid === 'budget-2027')!;
    expect(budget).toMatchObject({ summary: 'The council approved the budget. Taxes rise by 2 %.', categories: ['Politics', 'Budget'], author: 'Jo Reporter', language: 'en-gb', image: 'https://rss20.example.test/budget.jpg' });
    // The invalid pubDate fell back to first seen.
    expect(stories.find((s) => s.title === 'An item without a guid')!.publishedAt).toBe(clock.now());
    const state = await deps.feeds.state('full');
    expect(state).toMatchObject({ etag: '"full-1"', consecutiveFailures: 0, format: 'rss2.0', lastError: null });
    expect(state.nextCheckAt).toBe(clock.now() + 120 * 60_000);

    clock.advance(3 * 3_600_000);
    const again = await ingestFeed(deps, 'full');
    expect(again.status).toBe('not-modified');
    expect(site.hits('/full.xml').at(-1)!.headers['if-none-match']).toBe('"full-1"');
    expect((await jobsOf('StoryClassify')).length).toBe(3);
    await queues.classify.drain();
  });

  it('an Atom feed whose text-typed titles hold "<" and ">" gives stories with those titles, and the feed its title, literally', async () => {
    site.set('/atom-text.xml', { headers: { 'content-type': 'application/atom+xml' }, body: fixture('feeds/atom/text-constructs.xml') });
    await deps.feeds.add({ id: 'atom-text', url: site.url('/atom-text.xml') }, clock.now());
    expect(await ingestFeed(deps, 'atom-text')).toMatchObject({ status: 'ok', created: 3 });
    const stories = await deps.stories.getMany((await jobsOf('StoryClassify')).map((j) => (j.data as { storyId: string }).storyId));
    // Before: 'Use for bold' and 'x': the text was read as HTML.
    expect(stories.map((st) => st.title).sort()).toEqual(['An HTML title', 'Use <b> for bold', 'x < y and y > z']);
    expect((await deps.feeds.state('atom-text')).title).toBe('Herald test: <code> & text constructs');
    await queues.classify.drain();
  });

  it('a feed listing its whole archive (6,000 items) becomes 6,000 stories; polled again, one edited item is updated and the rest are known', async () => {
    // One Redis command per lookup would hold tens of thousands of fields: Lua's unpack refused a feed of
    // 5,000 items ("too many results to unpack"), every poll.
    const N = 6000;
    const body = (edited: boolean) => rss(Array.from({ length: N }, (_, k) => item({
      guid: `archive-${k}`, link: `https://archive.example.test/${k}`,
      title: edited && k === 4321 ? 'Corrected: archive story 4321' : `Archive story ${k} on topic ${(k * 7919) % 1000}`,
      summary: `Story ${k}, words ${k % 13} and ${k % 17}.`,
    })).join(''));
    let etag = '"archive-1"';
    site.set('/archive.xml', () => ({ headers: { etag }, body: body(etag === '"archive-2"') }));
    await deps.feeds.add({ id: 'archive', url: site.url('/archive.xml') }, clock.now());
    expect(await ingestFeed(deps, 'archive')).toMatchObject({ status: 'ok', items: N, created: N, duplicates: 0 });
    expect((await jobsOf('StoryClassify')).length).toBe(N);

    etag = '"archive-2"';
    clock.advance(3_600_000);
    expect(await ingestFeed(deps, 'archive')).toMatchObject({ status: 'ok', items: N, created: 0, updated: 1, duplicates: N - 1 });
    expect((await jobsOf('StoryClassify')).length).toBe(N);
    await queues.classify.drain();
  }, 60_000);

  it('an updated item (same guid, new title) updates its story instead of making a new one', async () => {
    const v = (title: string) => rss(item({ guid: 'upd-1', link: 'https://upd.example.test/1', title, summary: 'Body.' }));
    site.set('/upd.xml', { body: v('Minister to resign') });
    await deps.feeds.add({ id: 'upd', url: site.url('/upd.xml') }, clock.now());
    const first = await ingestFeed(deps, 'upd');
    expect(first.created).toBe(1);
    const [job] = await jobsOf('StoryClassify');
    const id = (job!.data as { storyId: string }).storyId;
    site.set('/upd.xml', { body: v('Minister resigns after vote') });
    clock.advance(600_000);
    const second = await ingestFeed(deps, 'upd');
    expect(second).toMatchObject({ created: 0, updated: 1 });
    expect(await deps.stories.get(id)).toMatchObject({ title: 'Minister resigns after vote', updatedAt: clock.now() });
    expect((await jobsOf('StoryClassify')).length).toBe(1);
    await queues.classify.drain();
  });

  it('a poller that died after writing its stories but before recording them as seen does not make them new again', async () => {
    site.set('/crash.xml', { body: rss(item({ guid: 'crash-1', link: 'https://crash.example.test/1', title: 'Storm closes the harbour', summary: 'Ferries stopped.' })) });
    await deps.feeds.add({ id: 'crash', url: site.url('/crash.xml') }, clock.now());
    expect((await ingestFeed(deps, 'crash')).created).toBe(1);
    const [job] = await jobsOf('StoryClassify');
    const id = (job!.data as { storyId: string }).storyId;
    await deps.stories.markClassified(id, clock.now());
    // What a crash between the story write and the seen-index write leaves: the story, but no trace in the index.
    const seenKeys = await redis.keys(`${prefix}:{f:crash}:seen:*`);
    expect(seenKeys.length).toBeGreaterThan(0);
    await redis.del(...seenKeys);
    await queues.classify.drain();
    clock.advance(600_000);
    expect(await ingestFeed(deps, 'crash')).toMatchObject({ created: 0, duplicates: 1 });
    expect(await jobsOf('StoryClassify')).toHaveLength(0);
    expect(await deps.stories.get(id)).toMatchObject({ title: 'Storm closes the harbour' });
    expect(await deps.stories.classifiedAt(id)).not.toBeNull();
  });

  it('a fetch that dies before its new stories are queued for classification leaves them to the next fetch, which queues them once', async () => {
    // The queue's Redis fails once (a lost connection, a failover): the stories are written but no job exists.
    let failOnce = true;
    const flaky: PollDeps = {
      ...deps,
      enqueue: Object.assign((...a: Parameters<PollDeps['enqueue']>) => deps.enqueue(...a), {
        bulk: (async (name, items) => {
          if (failOnce && name === 'StoryClassify') {
            failOnce = false;
            throw new Error('Connection is closed.');
          }
          return deps.enqueue.bulk(name, items);
        }) as PollDeps['enqueue']['bulk'],
      }),
    };
    site.set('/handover.xml', { body: rss(item({ guid: 'ho-1', link: 'https://ho.example.test/1', title: 'Bridge closed after barge strike', summary: 'Traffic is diverted.' })) });
    await deps.feeds.add({ id: 'handover', url: site.url('/handover.xml') }, clock.now());
    await expect(ingestFeed(flaky, 'handover')).rejects.toThrow('Connection is closed.');
    expect(await jobsOf('StoryClassify')).toHaveLength(0);
    clock.advance(600_000);
    expect(await ingestFeed(flaky, 'handover')).toMatchObject({ created: 0, duplicates: 1 });
    const ids = (await jobsOf('StoryClassify')).map((j) => (j.data as { storyId: string }).storyId);
    expect(ids).toHaveLength(1);
    expect(await deps.stories.get(ids[0]!)).toMatchObject({ title: 'Bridge closed after barge strike' });
    // Queued now, so seen: a third fetch neither queues nor counts it again.
    clock.advance(600_000);
    expect(await ingestFeed(flaky, 'handover')).toMatchObject({ created: 0, duplicates: 1 });
    expect(await jobsOf('StoryClassify')).toHaveLength(1);
    await queues.classify.drain();
  });

  it('a publisher changing its guid scheme does not make known items new: the link still identifies them', async () => {
    site.set('/guids.xml', { body: rss(item({ guid: 'old-scheme-1', link: 'https://guids.example.test/a?utm_source=x', title: 'Same article' })) });
    await deps.feeds.add({ id: 'guids', url: site.url('/guids.xml') }, clock.now());
    expect((await ingestFeed(deps, 'guids')).created).toBe(1);
    site.set('/guids.xml', { body: rss(item({ guid: 'https://guids.example.test/a', link: 'https://guids.example.test/a', title: 'Same article, new headline' })) });
    clock.advance(600_000);
    expect(await ingestFeed(deps, 'guids')).toMatchObject({ created: 0, updated: 1 });
    await queues.classify.drain();
  });

  it('items of one feed that all link to its home page are each a story, and a new one is a new story, not an edit of the first', async () => {
    // A new guid on a known link is the same item only when the publisher changed its guids: here the other
    // guids are still listed, so the link names no item.
    const press = (titles: string[]) => rss(titles.map((t, k) => item({ guid: `press-${k}`, link: 'https://press.example.test/', title: t, summary: `${t}. Details in the release.` })).join(''));
    const titles = ['Ministry announces a rail line to the airport', 'Ministry publishes its annual budget report', 'Minister visits flood-hit districts'];
    site.set('/press.xml', { body: press(titles) });
    await deps.feeds.add({ id: 'press', url: site.url('/press.xml') }, clock.now());
    expect(await ingestFeed(deps, 'press')).toMatchObject({ created: 3, duplicates: 0 });
    site.set('/press.xml', { body: press([...titles, 'Ministry opens a consultation on water prices']) });
    clock.advance(600_000);
    expect(await ingestFeed(deps, 'press')).toMatchObject({ created: 1, updated: 0, duplicates: 3 });
    const stories = await deps.stories.getMany((await jobsOf('StoryClassify')).map((j) => (j.data as { storyId: string }).storyId));
    expect(stories.map((st) => st.title).sort()).toEqual([...titles, 'Ministry opens a consultation on water prices'].sort());
    await queues.classify.drain();
  });

  it('the same event carried by several feeds becomes one story with every source recorded', async () => {
    const summary = 'A magnitude 6.1 earthquake struck off the coast of Hokkaido in northern Japan on Tuesday, the Japan Meteorological Agency said. No tsunami warning was issued.';
    site.set('/wire.xml', { body: rss(item({ guid: 'w1', link: 'https://wire.example.test/quake', title: 'Earthquake of magnitude 6.1 strikes off Hokkaido, no tsunami warning', summary })) });
    site.set('/paper.xml', { body: rss(item({ guid: 'p1', link: 'https://paper.example.test/world/quake-hokkaido', title: 'Earthquake of magnitude 6.1 strikes off Hokkaido, no tsunami warning - Wire', summary })) });
    site.set('/aggregator.xml', { body: rss(item({ guid: 'agg-77', link: 'https://WIRE.example.test/quake?utm_source=agg&utm_medium=rss', title: 'Hokkaido quake', summary: 'See the full story.' })) });
    site.set('/other.xml', { body: rss(item({ guid: 'o1', link: 'https://other.example.test/snow', title: 'Hokkaido snow festival opens with record sculptures', summary: 'The Sapporo Snow Festival opened on Tuesday in northern Japan.' })) });
    for (const id of ['wire', 'paper', 'aggregator', 'other']) await deps.feeds.add({ id, url: site.url(`/${id}.xml`) }, clock.now());
    expect((await ingestFeed(deps, 'wire')).created).toBe(1);
    const merged = await ingestFeed(deps, 'paper');
    expect(merged).toMatchObject({ created: 0, merged: 1 });
    expect(await ingestFeed(deps, 'aggregator')).toMatchObject({ created: 0, merged: 1 });
    expect((await ingestFeed(deps, 'other')).created).toBe(1);
    const ids = (await jobsOf('StoryClassify')).map((j) => (j.data as { storyId: string }).storyId);
    expect(ids).toHaveLength(2);
    const quake = (await deps.stories.getMany(ids)).find((s) => s.feedId === 'wire')!;
    expect(quake.sources?.map((s) => s.feedId).sort()).toEqual(['aggregator', 'paper', 'wire']);
    expect(quake.sources?.find((s) => s.feedId === 'paper')?.url).toBe('https://paper.example.test/world/quake-hokkaido');
    // Polling the merged feed again finds its item already known: no new story, no new source.
    clock.advance(600_000);
    expect(await ingestFeed(deps, 'paper')).toMatchObject({ created: 0, merged: 0, duplicates: 1 });
    await queues.classify.drain();
  });

  it('an item merged as a near-duplicate passes its link on: a later item with that link joins the same story', async () => {
    // The paper's item joins the wire's story by its text; the aggregator only has the paper's link (with
    // tracking parameters) and no shared text, so the link alone must lead it to the wire's story.
    const summary = 'Heavy rain flooded the old town of Porto overnight and the river Douro rose two metres above its usual level, the city council said on Sunday.';
    const title = 'Floods in Porto as the Douro rises two metres overnight';
    const body = (o: Parameters<typeof item>[0]) => Buffer.from(rss(item(o)));
    const at = (feed: string) => ({ contentType: null, baseUrl: `https://${feed}.example.test/feed` });
    expect((await ingestBody(deps, 'wire-pt', body({ guid: 'wpt-1', link: 'https://wire-pt.example.test/porto', title, summary }), at('wire-pt'))).report.created).toBe(1);
    expect((await ingestBody(deps, 'paper-pt', body({ guid: 'ppt-1', link: 'https://paper-pt.example.test/porto-floods', title: `${title} - Wire`, summary }), at('paper-pt'))).report.merged).toBe(1);
    const agg = await ingestBody(deps, 'agg-pt', body({ guid: 'apt-1', link: 'https://paper-pt.example.test/porto-floods?utm_source=agg', title: 'Porto', summary: 'Read more.' }), at('agg-pt'));
    expect(agg.report).toMatchObject({ created: 0, merged: 1 });
    const ids = (await jobsOf('StoryClassify')).map((j) => (j.data as { storyId: string }).storyId);
    expect(ids).toHaveLength(1);
    expect((await deps.stories.get(ids[0]!))?.sources?.map((s) => s.feedId).sort()).toEqual(['agg-pt', 'paper-pt', 'wire-pt']);
    await queues.classify.drain();
  });

  it('two outlets\' wordless items (a photo, a video) stay two stories', async () => {
    const at = (feed: string) => ({ contentType: null, baseUrl: `https://${feed}.example.test/feed` });
    const a = await ingestBody(deps, 'pics-a', Buffer.from(rss(item({ guid: 'pa-1', link: 'https://pics-a.example.test/photo/1', title: '📷', summary: '' }))), at('pics-a'));
    const b = await ingestBody(deps, 'pics-b', Buffer.from(rss(item({ guid: 'pb-1', link: 'https://pics-b.example.test/video/9', title: '🎥 ▶', summary: '' }))), at('pics-b'));
    expect([a.report.created, b.report.created, b.report.merged]).toEqual([1, 1, 0]);
    await queues.classify.drain();
  });

  it('story records and their sources expire: kept 8 days after they were created or last changed, never for ever', async () => {
    const summary = 'The central bank raised its key interest rate by a quarter point to 4.5 percent on Thursday, its third rise this year, citing persistent inflation.';
    const title = 'Central bank raises key rate to 4.5 percent, third rise this year';
    const at = (feed: string) => ({ contentType: null, baseUrl: `https://${feed}.example.test/feed` });
    const created = await ingestBody(deps, 'ttl-wire', Buffer.from(rss(item({ guid: 'ttl-1', link: 'https://ttl-wire.example.test/rate', title, summary }))), at('ttl-wire'));
    expect(created.report.created).toBe(1);
    const [job] = await jobsOf('StoryClassify');
    const id = (job!.data as { storyId: string }).storyId;
    expect((await ingestBody(deps, 'ttl-paper', Buffer.from(rss(item({ guid: 'ttl-p', link: 'https://ttl-paper.example.test/rate', title: `${title} - Wire`, summary }))), at('ttl-paper'))).report.merged).toBe(1);
    const week = 8 * 86_400_000;
    const ttls = async (storyId: string) => Promise.all([redis.pttl(`${prefix}:{st:${storyId}}:story`), redis.pttl(`${prefix}:{st:${storyId}}:sources`)]);
    for (const ttl of await ttls(id)) expect(ttl).toBeGreaterThan(week - 60_000), expect(ttl).toBeLessThanOrEqual(week);
    // An imported story too.
    await deps.stories.put({ id: 'ttl-import', feedId: 'ttl-wire', guid: null, url: 'https://ttl-wire.example.test/import', title: 'Imported', summary: '', categories: [], publishedAt: clock.now(), firstSeenAt: clock.now(), sources: [{ feedId: 'ttl-paper', url: 'https://ttl-paper.example.test/import' }] });
    for (const ttl of await ttls('ttl-import')) expect(ttl).toBeGreaterThan(week - 60_000), expect(ttl).toBeLessThanOrEqual(week);
    await queues.classify.drain();
  });

  /** A story store whose batches matching `when` wait, once `held` says so, until `open()` is called. */
  const gatedStories = (when: (cmds: Command[]) => boolean) => {
    let open = () => undefined as void;
    const gate = new Promise<void>((r) => (open = r));
    let onHeld = () => undefined as void;
    const held = new Promise<void>((r) => (onHeld = r));
    const gated = new Proxy(redis, {
      get(target, prop) {
        if (prop === BATCH_HOOK) {
          return (async (cmds, send) => {
            if (when(cmds)) {
              onHeld();
              await gate;
            }
            return send(cmds);
          }) satisfies BatchHook;
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    return { stories: createStoryStore(gated as RedisClient, prefix), held, open };
  };
  const fire = (o: { title: string; summary: string }) => ({
    wire: Buffer.from(rss(item({ guid: `w-${o.title}`, link: `https://wire-fr.example.test/${encodeURIComponent(o.title)}`, ...o }))),
    paper: Buffer.from(rss(item({ guid: `p-${o.title}`, link: `https://paper-fr.example.test/${encodeURIComponent(o.title)}`, title: `${o.title} - Wire`, summary: o.summary }))),
    agg: Buffer.from(rss(item({ guid: `a-${o.title}`, link: `https://paper-fr.example.test/${encodeURIComponent(o.title)}?utm_source=agg`, title: `Read: ${o.title.split(' ').slice(0, 2).join(' ')}`, summary: 'More at the link.' }))),
  });
  const at = (feed: string) => ({ contentType: null, baseUrl: `https://${feed}.example.test/feed` });
  const sourcesOfTheOneStory = async () => {
    const ids = (await jobsOf('StoryClassify')).map((j) => (j.data as { storyId: string }).storyId);
    expect(ids).toHaveLength(1);
    return (await deps.stories.get(ids[0]!))?.sources?.map((s) => s.feedId).sort();
  };

  // The store's batches are held through runCommands' batch hook, which a cluster client does not use.
  it.skipIf(onCluster)('an item that joins by link the item of another feed while that one is being merged as a near-duplicate ends on the same story', async () => {
    // The paper's item claims its link, then waits (its near-duplicate decision not yet made) while the
    // aggregator's item, with the same link and no shared text, joins it by that link; then the paper's item is
    // merged into the wire's story. Both sources must end on the wire's story.
    const b = fire({ title: 'Forest fire near Marseille contained after three days', summary: 'Firefighters contained a forest fire that burned 2,000 hectares near Marseille after three days, the regional prefecture said on Wednesday.' });
    expect((await ingestBody(deps, 'wire-fr', b.wire, at('wire-fr'))).report.created).toBe(1);
    const paperStore = gatedStories((cmds) => cmds.some((c) => c[0] === 'heraldNear'));
    const paper = ingestBody({ ...deps, stories: paperStore.stories }, 'paper-fr', b.paper, at('paper-fr'));
    await paperStore.held;
    const agg = await ingestBody(deps, 'agg-fr', b.agg, at('agg-fr'));
    paperStore.open();
    expect((await paper).report.merged).toBe(1);
    expect(agg.report).toMatchObject({ created: 0, merged: 1 });
    expect(await sourcesOfTheOneStory()).toEqual(['agg-fr', 'paper-fr', 'wire-fr']);
    await queues.classify.drain();
  });

  it.skipIf(onCluster)('an item that read another feed\'s item as its link\'s owner just before that item was merged as a near-duplicate ends on the same story', async () => {
    // The other order: the aggregator reads the claim (the paper's item), then waits before writing while the
    // paper's item is merged into the wire's story and its claim re-pointed.
    const b = fire({ title: 'Lyon metro line B closed for a week of repairs', summary: 'Line B of the Lyon metro will close for a week from Monday for track repairs, the transport authority announced, with replacement buses every five minutes.' });
    expect((await ingestBody(deps, 'wire-fr', b.wire, at('wire-fr'))).report.created).toBe(1);
    const paperStore = gatedStories((cmds) => cmds.some((c) => c[0] === 'heraldNear'));
    const aggStore = gatedStories((cmds) => cmds.some((c) => c[0] === 'heraldJoinStory'));
    const paper = ingestBody({ ...deps, stories: paperStore.stories }, 'paper-fr', b.paper, at('paper-fr'));
    await paperStore.held;
    const agg = ingestBody({ ...deps, stories: aggStore.stories }, 'agg-fr', b.agg, at('agg-fr'));
    await aggStore.held;
    paperStore.open();
    expect((await paper).report.merged).toBe(1);
    aggStore.open();
    expect((await agg).report).toMatchObject({ created: 0, merged: 1 });
    expect(await sourcesOfTheOneStory()).toEqual(['agg-fr', 'paper-fr', 'wire-fr']);
    await queues.classify.drain();
  });

  it.skipIf(onCluster)('a poll and a WebSub delivery racing on a new item the publisher edits in between leave the story at the text the feed now has', async () => {
    // The poll fetched the first version and is slow to write it; the delivery, with the corrected title, is
    // ingested in between. The slower write must not put the first version back over the second for good.
    const v = (title: string) => Buffer.from(rss(item({ guid: 'race-1', link: 'https://race.example.test/1', title, summary: 'The bridge will reopen on Monday.' })));
    const at = { contentType: null, baseUrl: 'https://race.example.test/feed' };
    const slow = gatedStories((cmds) => cmds.some((c) => c[0] === 'hset' && String(c[1]).endsWith(':story')) || cmds.some((c) => String(c[0]).startsWith('heraldCreate')));
    const poll = ingestBody({ ...deps, stories: slow.stories }, 'race', v('Bridge to reopen on Tuesday'), at);
    await slow.held;
    expect((await ingestBody(deps, 'race', v('Bridge to reopen on Monday'), at)).report.created).toBe(1);
    slow.open();
    expect((await poll).report).toMatchObject({ created: 0, duplicates: 1 });
    // The feed now says Monday: whatever the race left, the next fetch of it ends with Monday.
    clock.advance(600_000);
    await ingestBody(deps, 'race', v('Bridge to reopen on Monday'), at);
    const [job] = await jobsOf('StoryClassify');
    expect(await deps.stories.get((job!.data as { storyId: string }).storyId)).toMatchObject({ title: 'Bridge to reopen on Monday' });
    await queues.classify.drain();
  });

  it.skipIf(onCluster)('a poll and a WebSub delivery racing on an edit do not put the older text back over the newer one for good', async () => {
    // The story exists; the poll fetched the second version and is slow to write it, the delivery brings the
    // third and is ingested in between. The third is what the feed says from then on.
    const v = (title: string) => Buffer.from(rss(item({ guid: 'edit-race-1', link: 'https://edit-race.example.test/1', title, summary: 'Counting continues.' })));
    const at = { contentType: null, baseUrl: 'https://edit-race.example.test/feed' };
    expect((await ingestBody(deps, 'edit-race', v('Election: early results'), at)).report.created).toBe(1);
    const slow = gatedStories((cmds) => cmds.some((c) => (c[0] === 'hset' || String(c[0]).startsWith('heraldUpdate')) && String(c[1]).endsWith(':story')));
    clock.advance(60_000);
    const poll = ingestBody({ ...deps, stories: slow.stories }, 'edit-race', v('Election: half the votes counted'), at);
    await slow.held;
    expect((await ingestBody(deps, 'edit-race', v('Election: final results'), at)).report.updated).toBe(1);
    slow.open();
    await poll;
    clock.advance(600_000);
    await ingestBody(deps, 'edit-race', v('Election: final results'), at);
    const [job] = await jobsOf('StoryClassify');
    expect(await deps.stories.get((job!.data as { storyId: string }).storyId)).toMatchObject({ title: 'Election: final results' });
    await queues.classify.drain();
  });

  it('five outlets carrying one wire story, ingested at the same instant, make one story and one classification', async () => {
    // As when their WebSub hubs deliver within the same moment: every ingest looks for near-duplicates before
    // any has written its own story. Different links, so only the near-duplicate decision can join them.
    const summary = 'Foreign ministers of India and Japan met in Tokyo on Monday and agreed to expand defence and semiconductor cooperation, officials said after the talks.';
    const outlets = ['wire2', 'times', 'herald', 'post', 'daily'];
    const bodies = outlets.map((o, k) => Buffer.from(rss(item({
      guid: `${o}-talks`, link: `https://${o}.example.test/world/${k}`,
      title: `India and Japan agree to expand defence and chip cooperation${k % 2 ? ' - Wire' : ''}`, summary,
    }))));
    const reports = (await Promise.all(outlets.map((o, k) => ingestBody(deps, o, bodies[k]!, { contentType: null, baseUrl: `https://${o}.example.test/feed` })))).map((r) => r.report);
    expect(reports.map((r) => r.created + r.merged)).toEqual([1, 1, 1, 1, 1]);
    expect(reports.reduce((n, r) => n + r.created, 0)).toBe(1);
    const ids = (await jobsOf('StoryClassify')).map((j) => (j.data as { storyId: string }).storyId);
    expect(ids).toHaveLength(1);
    expect((await deps.stories.get(ids[0]!))?.sources?.map((s) => s.feedId).sort()).toEqual([...outlets].sort());
    await queues.classify.drain();
  });

  it('next check from Cache-Control max-age counts the Age of a cached copy (a CDN\'s)', async () => {
    site.set('/cdn-aged.xml', { headers: { 'cache-control': 'public, max-age=3600', age: '3000' }, body: rss(item({ guid: 'aged-1', title: 'From a CDN edge' })) });
    await deps.feeds.add({ id: 'cdn-aged', url: site.url('/cdn-aged.xml') }, clock.now());
    await ingestFeed(deps, 'cdn-aged');
    // Before: an hour, though the edge's copy goes stale in ten minutes.
    expect((await deps.feeds.state('cdn-aged')).nextCheckAt).toBe(clock.now() + 10 * 60_000);
    await queues.classify.drain();
  });

  it('a permanent redirect updates the stored URL', async () => {
    site.set('/old-home.xml', { status: 301, headers: { location: '/new-home.xml' } });
    site.set('/new-home.xml', { body: rss(item({ guid: 'nh', title: 'Moved feed item' })) });
    await deps.feeds.add({ id: 'mover', url: site.url('/old-home.xml') }, clock.now());
    await ingestFeed(deps, 'mover');
    expect((await deps.feeds.get('mover'))!.url).toBe(site.url('/new-home.xml'));
    await queues.classify.drain();
  });
});

describe('conditional GET behind a temporary redirect', () => {
  it('the validators go to the URL that gave them: a feed behind a 302 is answered 304, not sent in full every poll', async () => {
    site.set('/short-link.xml', { status: 302, headers: { location: '/cdn/current.xml' } });
    site.set('/cdn/current.xml', (rq) => (rq.headers['if-none-match'] === '"c1"'
      ? { status: 304, headers: { etag: '"c1"' } }
      : { headers: { etag: '"c1"' }, body: rss(item({ guid: 'cdn-1', title: 'Behind a temporary redirect' })) }));
    await deps.feeds.add({ id: 'short-link', url: site.url('/short-link.xml') }, clock.now());
    expect((await ingestFeed(deps, 'short-link')).status).toBe('ok');
    clock.advance(600_000);
    // Before: the ETag went only to /short-link.xml, which redirects, and the URL that gave it got a plain GET.
    expect((await ingestFeed(deps, 'short-link')).status).toBe('not-modified');
    expect(site.hits('/cdn/current.xml').at(-1)!.headers['if-none-match']).toBe('"c1"');
    // The feed's own URL is still the one configured (a 302 teaches nothing) and is not sent the CDN's ETag.
    expect(site.hits('/short-link.xml').at(-1)!.headers['if-none-match']).toBeUndefined();
    expect((await deps.feeds.get('short-link'))!.url).toBe(site.url('/short-link.xml'));
    await queues.classify.drain();
  });
});

describe('conditional GET: a 304 that carries new validators', () => {
  it('keeps the ETag a 304 names, and sends it next time (RFC 9111 §4.3.4)', async () => {
    // The server's answer to "v1" is a 304 naming "v2" (its representation's tag changed, its bytes did not), and
    // it honours only the tag it last gave out.
    site.set('/retagged.xml', (rq) => rq.headers['if-none-match'] === '"v1"'
      ? { status: 304, headers: { etag: '"v2"' } }
      : rq.headers['if-none-match'] === '"v2"' ? { status: 304, headers: { etag: '"v2"' } }
        : { headers: { etag: '"v1"' }, body: rss(item({ guid: 'retag-1', title: 'Same bytes, new tag' })) });
    await deps.feeds.add({ id: 'retagged', url: site.url('/retagged.xml') }, clock.now());
    expect((await ingestFeed(deps, 'retagged')).status).toBe('ok');
    clock.advance(600_000);
    expect((await ingestFeed(deps, 'retagged')).status).toBe('not-modified');
    // Before: the stored tag stayed "v1" after the 304, so every later poll sent a tag the server no longer knew.
    expect((await deps.feeds.state('retagged')).etag).toBe('"v2"');
    clock.advance(600_000);
    expect((await ingestFeed(deps, 'retagged')).status).toBe('not-modified');
    expect(site.hits('/retagged.xml').at(-1)!.headers['if-none-match']).toBe('"v2"');
    await queues.classify.drain();
  });
});

describe('feed health', () => {
  const failWith = async (feedId: string) => ingestFeed(deps, feedId).then(() => null, (e: Error) => e);

  it('503 with Retry-After: failure counted, last error kept, next check honours Retry-After; success resets', async () => {
    site.set('/busy.xml', { status: 503, headers: { 'retry-after': '7200' } });
    await deps.feeds.add({ id: 'busy', url: site.url('/busy.xml') }, clock.now());
    const err = await failWith('busy');
    expect(err).not.toBeInstanceOf(UnrecoverableError);
    const s = await deps.feeds.state('busy');
    expect(s).toMatchObject({ consecutiveFailures: 1, lastErrorCode: 'http-status', lastStatus: 503, failingSince: clock.now() });
    expect(s.lastError).toContain('HTTP 503');
    expect(s.nextCheckAt).toBe(clock.now() + 7_200_000);
    site.set('/busy.xml', { body: rss(item({ guid: 'b1', title: 'Back' })) });
    clock.advance(7_200_000);
    await ingestFeed(deps, 'busy');
    expect(await deps.feeds.state('busy')).toMatchObject({ consecutiveFailures: 0, lastError: null, failingSince: null });
    await queues.classify.drain();
  });

  it('a feed dated in German is read for its last item and its rhythm, and flagged stale once it falls silent', async () => {
    // Before: Date.parse reads no German month, so the feed had no last item time and could never be stale.
    const days = ['Do, 10 Dez 2026 08:00:00 +0100', 'Fr, 11 Dez 2026 08:00:00 +0100', 'Sa, 12 Dez 2026 08:00:00 +0100'];
    site.set('/de.xml', { body: rss(days.map((date, i) => item({ guid: `de-${i}`, title: `Meldung ${i}`, date })).join('')) });
    await deps.feeds.add({ id: 'de', url: site.url('/de.xml') }, clock.now());
    await ingestFeed(deps, 'de');
    const s = await deps.feeds.state('de');
    expect(s.lastItemAt).toBe(Date.parse('2026-12-12T07:00:00Z'));
    expect(s.cadenceMs).toBe(86_400_000);
    expect(s.lastNewItemAt).toBe(clock.now());
    // 13 January 2027 is a month after its last item, far past four usual gaps.
    expect(describeFeedHealth((await deps.feeds.get('de'))!, s, clock.now()).status).toBe('stale');
    await queues.classify.drain();
  });

  it('consecutive failures back off exponentially, and a feed failing for 7 days is disabled', async () => {
    site.set('/down.xml', { status: 500 });
    await deps.feeds.add({ id: 'down', url: site.url('/down.xml') }, clock.now());
    const start = clock.now();
    const gaps: number[] = [];
    for (let i = 0; i < 4; i++) {
      await failWith('down');
      const s = await deps.feeds.state('down');
      gaps.push((s.nextCheckAt! - clock.now()) / 60_000);
      clock.set(s.nextCheckAt!);
    }
    expect(gaps).toEqual([5, 10, 20, 40]);
    clock.set(start + 7 * 86_400_000);
    await failWith('down');
    const s = await deps.feeds.state('down');
    expect(s.disabledAt).toBe(clock.now());
    expect(s.disabledReason).toContain('failing for 7 days');
    expect(await deps.feeds.due(clock.now() + 365 * 86_400_000, 1000)).not.toContain('down');
    // A config sync on restart puts it back on the schedule; the next fetch takes it off again without fetching.
    await deps.feeds.sync([{ id: 'down', url: site.url('/down.xml') }], clock.now());
    const hits = site.hits('/down.xml').length;
    expect(await ingestFeed(deps, 'down')).toMatchObject({ status: 'skipped' });
    expect(site.hits('/down.xml').length).toBe(hits);
    expect(await deps.feeds.due(clock.now() + 365 * 86_400_000, 1000)).not.toContain('down');
  });

  it('410 Gone disables the feed at once and tells the operator why', async () => {
    site.set('/gone.xml', { status: 410 });
    await deps.feeds.add({ id: 'gone', url: site.url('/gone.xml') }, clock.now());
    const err = await failWith('gone');
    expect(err).toBeInstanceOf(UnrecoverableError);
    const s = await deps.feeds.state('gone');
    expect(s).toMatchObject({ lastErrorCode: 'gone', lastStatus: 410 });
    expect(s.disabledReason).toContain('410 Gone');
  });

  /**
   * The feed store over a connection that runs `between` once, right after the first reply of command `name`:
   * the operator's resume landing in the few milliseconds between two of the store's own steps, on real Redis.
   */
  const racingStore = (name: string, between: () => Promise<unknown>) => {
    let pending: (() => Promise<unknown>) | null = between;
    const racing = new Proxy(redis, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        if (prop !== name) return v.bind(target);
        return async (...args: unknown[]) => {
          const reply = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          const run = pending;
          pending = null;
          if (run) await run();
          return reply;
        };
      },
    });
    return createFeedStore(racing, prefix);
  };
  const isDue = async (feedId: string) => (await deps.feeds.due(clock.now() + 365 * 86_400_000, 100_000)).includes(feedId);

  it('a resume landing between a fetch reading the feed as paused and taking it off the schedule wins: the feed stays scheduled', async () => {
    await deps.feeds.add({ id: 'resumed', url: site.url('/resumed.xml') }, clock.now());
    await deps.feeds.pause('resumed', clock.now());
    // A config sync puts the paused feed back on the schedule, due now; a fetch of it reads the state. The resume
    // comes at the same millisecond, so it leaves the feed due at the very time the fetch saw.
    await deps.feeds.sync([{ id: 'resumed', url: site.url('/resumed.xml') }], clock.now());
    const racing = racingStore('hgetall', () => deps.feeds.resume('resumed', clock.now()));
    expect(await ingestFeed({ ...deps, feeds: racing }, 'resumed')).toMatchObject({ status: 'skipped' });
    expect((await deps.feeds.state('resumed')).disabledAt).toBeNull();
    // Before: the fetch's unschedule removed the feed the resume had just put back: resumed, never polled again.
    expect(await isDue('resumed')).toBe(true);
  });

  it('a resume landing between a disable\'s state write and its schedule removal wins: the feed stays scheduled', async () => {
    await deps.feeds.add({ id: 'resumed-2', url: site.url('/resumed-2.xml') }, clock.now());
    const racing = racingStore('heraldUpdateFeedState', () => deps.feeds.resume('resumed-2', clock.now()));
    await racing.disable('resumed-2', 'failing for 7 days', clock.now());
    expect((await deps.feeds.state('resumed-2')).disabledAt).toBeNull();
    // Before: the disable's ZREM came after the resume's ZADD: resumed, never polled again.
    expect(await isDue('resumed-2')).toBe(true);
  });

  it('bad bodies leave a specific error on their feed and do not stop the other feeds', async () => {
    site.set('/html.xml', { headers: { 'content-type': 'text/html' }, body: fixture('feeds/hostile/html-with-alternate.html') });
    site.set('/bomb.xml', { body: fixture('feeds/hostile/billion-laughs.xml') });
    site.set('/cut.xml', { body: fixture('feeds/hostile/truncated.xml') });
    site.set('/fine.xml', { body: rss(item({ guid: 'fine-1', title: 'A fine item' })) });
    for (const id of ['html', 'bomb', 'cut', 'fine']) await deps.feeds.add({ id, url: site.url(`/${id}.xml`) }, clock.now());
    const results = await Promise.allSettled(['html', 'bomb', 'cut', 'fine'].map((id) => ingestFeed(deps, id)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'fulfilled']);
    expect(await deps.feeds.state('html')).toMatchObject({ lastErrorCode: 'html-not-feed' });
    expect((await deps.feeds.state('html')).lastError).toContain(site.url('/feeds/all.rss'));
    expect(await deps.feeds.state('bomb')).toMatchObject({ lastErrorCode: 'xml-entities' });
    expect((await deps.feeds.state('cut')).lastError).toContain('line 10');
    expect(await deps.feeds.state('fine')).toMatchObject({ consecutiveFailures: 0 });
    await queues.classify.drain();
  });

  it('a slow-loris feed times out and a redirect to a private address is refused when the guard is on', async () => {
    const slowSite = createServer((_req, res) => {
      res.writeHead(200);
      const t = setInterval(() => res.write(' '), 100);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => slowSite.listen(0, '127.0.0.1', r));
    const port = (slowSite.address() as AddressInfo).port;
    try {
      await deps.feeds.add({ id: 'slow', url: `http://127.0.0.1:${port}/slow.xml` }, clock.now());
      const slowDeps = { ...deps, settings: { ...settings, fetchTimeoutMs: 700 } };
      await ingestFeed(slowDeps, 'slow').catch(() => undefined);
      expect(await deps.feeds.state('slow')).toMatchObject({ lastErrorCode: 'timeout', consecutiveFailures: 1 });

      await deps.feeds.add({ id: 'private', url: site.url('/fine.xml') }, clock.now());
      await ingestFeed({ ...deps, settings: { ...settings, allowPrivate: false } }, 'private').catch(() => undefined);
      expect(await deps.feeds.state('private')).toMatchObject({ lastErrorCode: 'forbidden-address' });
    } finally {
      slowSite.closeAllConnections();
      await new Promise((r) => slowSite.close(r));
    }
  });
});

describe('WebSub from the poller', () => {
  it('renews the lease before it ends while the feed answers 304 Not Modified', async () => {
    const hubPosts = () => site.hits('/hub').filter((r) => r.method === 'POST').length;
    site.set('/hub', { status: 202 });
    const atom = `<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Quiet</title>
      <link rel="hub" href="${site.url('/hub')}"/><link rel="self" href="${site.url('/quiet.xml')}"/><id>urn:quiet</id><updated>2027-01-13T09:00:00Z</updated>
      <entry><id>q1</id><title>The only entry</title><link href="https://quiet.example.test/q1"/><updated>2027-01-13T09:00:00Z</updated></entry></feed>`;
    site.set('/quiet.xml', (req) => (req.headers['if-none-match'] === '"q-1"' ? { status: 304 } : { headers: { etag: '"q-1"', 'content-type': 'application/atom+xml' }, body: atom }));
    const pushDeps: PollDeps = { ...deps, settings: { ...settings, websub: { ...settings.websub, enabled: true } } };
    await deps.feeds.add({ id: 'quiet', url: site.url('/quiet.xml') }, clock.now());
    expect((await ingestFeed(pushDeps, 'quiet')).created).toBe(1);
    expect(hubPosts()).toBe(1);
    // The hub verified the request with a five-day lease.
    const ws = (await deps.feeds.state('quiet')).websub!;
    const leaseUntil = clock.now() + 5 * 86_400_000;
    await deps.feeds.setWebSub('quiet', { ...ws, status: 'active', leaseUntil });
    clock.advance(2 * 3_600_000);
    expect((await ingestFeed(pushDeps, 'quiet')).status).toBe('not-modified');
    expect(hubPosts()).toBe(1);
    // Less than a day before the lease ends the feed is still unchanged: the subscription is renewed all the same.
    clock.set(leaseUntil - 6 * 3_600_000);
    expect((await ingestFeed(pushDeps, 'quiet')).status).toBe('not-modified');
    expect(hubPosts()).toBe(2);
    expect((await deps.feeds.state('quiet')).websub).toMatchObject({ status: 'active', requestedAt: clock.now(), secret: ws.secret });
    await queues.classify.drain();
  });
});

describe('WebSub with a hub that verifies before it answers', () => {
  it('the verification that arrives while the subscription request is still open makes the subscription active', async () => {
    // Hubs may verify intent at once, before their 202 reaches us: the request must already be on record then,
    // and the answer must not put the verified subscription back to pending.
    const app = Fastify();
    await app.register(ingestRoutes, { feeds: deps.feeds, clock, maxBytes: 1_000_000, pushFallbackMs: 7_200_000, minIntervalMs: 300_000, leaseSeconds: 864_000, ingest: () => Promise.reject(new Error('no delivery expected')) });
    const callbackBase = await app.listen({ port: 0, host: '127.0.0.1' });
    const verified: number[] = [];
    const hub = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        const u = new URL(form.get('hub.callback')!);
        for (const [k, v] of Object.entries({ 'hub.mode': 'subscribe', 'hub.topic': form.get('hub.topic')!, 'hub.challenge': 'c-123', 'hub.lease_seconds': '864000' })) u.searchParams.set(k, v);
        void fetch(u).then((r) => verified.push(r.status)).finally(() => res.writeHead(202).end());
      });
    });
    await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
    const hubUrl = `http://127.0.0.1:${(hub.address() as AddressInfo).port}/`;
    try {
      site.set('/sync.xml', { headers: { link: `<${hubUrl}>; rel="hub", <${site.url('/sync.xml')}>; rel="self"` }, body: rss(item({ guid: 'sync-1', title: 'Synchronously verified' })) });
      await deps.feeds.add({ id: 'sync', url: site.url('/sync.xml') }, clock.now());
      const syncDeps: PollDeps = { ...deps, settings: { ...settings, websub: { ...settings.websub, enabled: true, callbackBase } } };
      await ingestFeed(syncDeps, 'sync');
      expect(verified).toEqual([200]);
      expect((await deps.feeds.state('sync')).websub).toMatchObject({ status: 'active', leaseUntil: clock.now() + 864_000_000 });
    } finally {
      hub.closeAllConnections();
      await new Promise((r) => hub.close(r));
      await app.close();
      await queues.classify.drain();
    }
  });
});

describe('poll tick and worker', () => {
  it('a feed whose fetch failed is fetched again when its backoff ends, and its host slot is free meanwhile', async () => {
    // Its own feed registry, so that the tick sees only this feed; the real queue and a real worker.
    const own: PollDeps = { ...deps, feeds: createFeedStore(redis, `${prefix}:retry`) };
    const conn = createRedis(TEST_REDIS_URL, { forQueue: true });
    const worker = startQueueWorker('feeds', { FeedFetch: (d: { feedId: string }) => ingestFeed(own, d.feedId) } as unknown as HandlerMap, {
      connection: conn, prefix, concurrency: 1, log: pino({ level: 'silent' }),
    });
    const until = async (what: () => Promise<boolean>) => {
      for (let t = 0; t < 100 && !(await what()); t++) await new Promise((r) => setTimeout(r, 50));
      return what();
    };
    const host = new URL(site.url('/')).host;
    try {
      site.set('/flaky.xml', { status: 500 });
      await own.feeds.add({ id: 'flaky', url: site.url('/flaky.xml') }, clock.now());
      expect((await runPollTick(own)).enqueued).toBe(1);
      expect(await until(async () => (await own.feeds.state('flaky')).consecutiveFailures === 1)).toBe(true);
      expect(await until(async () => (await own.feeds.hostInflight(host)) === 0)).toBe(true);

      site.set('/flaky.xml', { body: rss(item({ guid: 'flaky-1', title: 'Back again' })) });
      clock.set((await own.feeds.state('flaky')).nextCheckAt!);
      expect((await runPollTick(own)).enqueued).toBe(1);
      expect(await until(async () => (await own.feeds.state('flaky')).lastSuccessAt !== null)).toBe(true);
      expect(await own.feeds.state('flaky')).toMatchObject({ consecutiveFailures: 0, lastSuccessAt: clock.now() });
      expect(await until(async () => (await own.feeds.hostInflight(host)) === 0)).toBe(true);
    } finally {
      await worker.close();
      await conn.quit();
      await queues.classify.drain();
    }
  });
});

describe('feed registry', () => {
  it('config sync keeps a URL learned from a 301, but an operator edit of the file wins', async () => {
    await deps.feeds.sync([{ id: 'cfg', url: 'https://cfg.example.test/old.xml' }], clock.now());
    await deps.feeds.updateUrl('cfg', 'https://cfg.example.test/moved.xml');
    await deps.feeds.sync([{ id: 'cfg', url: 'https://cfg.example.test/old.xml' }], clock.now());
    expect((await deps.feeds.get('cfg'))!.url).toBe('https://cfg.example.test/moved.xml');
    await deps.feeds.sync([{ id: 'cfg', url: 'https://cfg.example.test/edited.xml', title: 'Edited' }], clock.now());
    expect(await deps.feeds.get('cfg')).toMatchObject({ url: 'https://cfg.example.test/edited.xml', title: 'Edited' });
  });
});
