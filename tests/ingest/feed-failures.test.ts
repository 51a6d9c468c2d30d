import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestFeed, runPollTick, type PollDeps } from '../../src/ingest/poll.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createFeedStore } from '../../src/store/feeds.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { manualClock } from '../helpers/clock.ts';
import { freePort } from '../helpers/herald.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';

/** A broken feed is logged and recorded with a clear error naming it; the other feeds go on. */
describe('feeds that fail', () => {
  const prefix = uniquePrefix('feed-fail');
  const redis = createRedis(TEST_REDIS_URL);
  const queueRedis = createRedis(TEST_REDIS_URL, { forQueue: true });
  const queues = createQueues(queueRedis, prefix);
  const logLines: Record<string, unknown>[] = [];
  const sink = new Writable({ write: (chunk, _enc, cb) => (logLines.push(JSON.parse(chunk.toString())), cb()) });
  let server: FixtureServer;
  let deps: PollDeps;

  beforeAll(async () => {
    server = await startFixtureServer({
      '/good.xml': { file: 'feeds/india-japan.xml' },
      '/error.xml': { status: 500, body: 'Internal Server Error' },
      '/garbage.xml': { body: '\u0000\u0001 this is not XML at all <<<' },
      '/page.html': { headers: { 'content-type': 'text/html' }, body: '<!doctype html><html><head><title>News</title></head><body>Hi</body></html>' },
    });
    const feeds = createFeedStore(redis, prefix);
    const closedPort = await freePort();
    await feeds.sync([
      { id: 'good', url: server.url('/good.xml') },
      { id: 'error', url: server.url('/error.xml') },
      { id: 'garbage', url: server.url('/garbage.xml') },
      { id: 'html', url: server.url('/page.html') },
      { id: 'silent', url: `http://127.0.0.1:${closedPort}/feed.xml` },
    ], 0);
    deps = {
      feeds, stories: createStoryStore(redis, prefix), enqueue: createEnqueue(queues), clock: manualClock('2027-01-15T00:00:00Z'),
      log: pino({ level: 'info' }, sink),
      settings: {
        minIntervalSeconds: 300, maxIntervalSeconds: 3600, fetchTimeoutMs: 3000, connectTimeoutMs: 2000, fetchMaxBytes: 5_000_000, userAgent: 'Herald-test',
        allowPrivate: true, hostConcurrency: 10, disableAfterDays: 7, websub: { enabled: false, leaseSeconds: 86400, fallbackSeconds: 3600, timeoutMs: 3000, callbackBase: 'http://127.0.0.1', allowPrivate: true, userAgent: 'Herald-test' },
      },
    };
  });
  afterAll(async () => {
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueRedis.quit(), server.close()]);
  });

  it('a poll tick enqueues every due feed once and pushes their next check out', async () => {
    expect(await runPollTick(deps)).toMatchObject({ enqueued: 5 });
    expect(await runPollTick(deps)).toMatchObject({ enqueued: 0 });
    expect(await queues.feeds.getJobCountByTypes('waiting')).toBe(5);
  });

  it.each([
    ['error', 'http-status', /^HTTP 500 Internal Server Error from http:\/\/127\.0\.0\.1:\d+\/error\.xml/],
    ['garbage', 'not-a-feed', /the body is neither XML nor JSON/],
    ['html', 'html-not-feed', /^got an HTML page, not a feed/],
    ['silent', 'network', /ECONNREFUSED/],
  ])('feed "%s" fails with a clear error (%s), recorded on the feed and logged with its id', async (feedId, code, error) => {
    await expect(ingestFeed(deps, feedId)).rejects.toThrow();
    const state = await deps.feeds.state(feedId);
    expect(state.lastErrorCode).toBe(code);
    expect(state.lastError).toMatch(error);
    expect(state.consecutiveFailures).toBe(1);
    const line = logLines.find((l) => l.feed_id === feedId && l.level === 40);
    expect(String(line?.msg)).toContain(`feed ${feedId} failed`);
  });

  it('the good feed still yields its stories', async () => {
    const report = await ingestFeed(deps, 'good');
    expect(report).toMatchObject({ status: 'ok', items: 2, created: 2 });
    expect((await deps.feeds.state('good')).lastError).toBeNull();
  });
});
