import type { Logger } from 'pino';
import type { Clock } from '../model.ts';
import type { Enqueue } from '../queue/queues.ts';
import { jobIds } from '../queue/jobs.ts';
import type { FeedStore } from '../store/feeds.ts';
import type { StoryStore } from '../store/stories.ts';
import { fetchFeed, FetchError } from './fetch-feed.ts';
import { normalizeItem } from './normalize.ts';
import { parseFeed, ParseError } from './parse-feed.ts';

export interface PollDeps {
  feeds: FeedStore;
  stories: StoryStore;
  enqueue: Enqueue;
  clock: Clock;
  log: Logger;
  settings: { pollIntervalSeconds: number; fetchTimeoutMs: number; fetchMaxBytes: number; userAgent: string };
}

const TICK_BATCH = 1000;

/** Enqueues a fetch of every due feed and pushes its next check out by the poll interval. */
export async function runPollTick(deps: PollDeps): Promise<number> {
  const now = deps.clock.now();
  const due = await deps.feeds.due(now, TICK_BATCH);
  await deps.enqueue.bulk(
    'FeedFetch',
    due.map((feedId) => ({ data: { feedId }, opts: { jobId: jobIds.feedFetch(feedId) } })),
  );
  for (const feedId of due) await deps.feeds.scheduleNext(feedId, now + deps.settings.pollIntervalSeconds * 1000);
  return due.length;
}

export interface IngestReport {
  feedId: string;
  status: 'not-modified' | 'ok';
  items: number;
  created: number;
  skipped: string[];
}

/**
 * Fetches one feed and turns new items into stories, each handed to classification once.
 * A failure is recorded on the feed (shown to the operator) and rethrown so the job shows it too.
 */
export async function ingestFeed(deps: PollDeps, feedId: string): Promise<IngestReport> {
  const feed = await deps.feeds.get(feedId);
  if (!feed) return { feedId, status: 'ok', items: 0, created: 0, skipped: [`feed ${feedId} is no longer configured`] };
  const state = await deps.feeds.state(feedId);
  const log = deps.log.child({ feed_id: feedId });
  let result;
  try {
    result = await fetchFeed({
      url: feed.url,
      etag: state.etag,
      lastModified: state.lastModified,
      timeoutMs: deps.settings.fetchTimeoutMs,
      maxBytes: deps.settings.fetchMaxBytes,
      userAgent: deps.settings.userAgent,
    });
  } catch (err) {
    await recordFailure(deps, feedId, feed.url, err, log);
    throw err;
  }
  const now = deps.clock.now();
  if (result.kind === 'not-modified') {
    await deps.feeds.recordSuccess(feedId, { status: 304, etag: state.etag, lastModified: state.lastModified }, now);
    return { feedId, status: 'not-modified', items: 0, created: 0, skipped: [] };
  }
  let parsed;
  try {
    parsed = await parseFeed(result.body);
  } catch (err) {
    await recordFailure(deps, feedId, feed.url, err, log);
    throw err;
  }
  const report: IngestReport = { feedId, status: 'ok', items: parsed.items.length, created: 0, skipped: [] };
  const toClassify: string[] = [];
  for (const item of parsed.items) {
    const n = normalizeItem(item, feedId, result.finalUrl, now);
    if ('skip' in n) {
      report.skipped.push(n.skip);
      continue;
    }
    const { created, id } = await deps.stories.addIfNew(n.story);
    if (created) report.created++;
    // Also re-queue a known story never classified (a poller that died between the two steps).
    if (created || (id === n.story.id && !(await deps.stories.isClassified(id)))) toClassify.push(id);
  }
  await deps.enqueue.bulk(
    'StoryClassify',
    toClassify.map((storyId) => ({ data: { storyId }, opts: { jobId: jobIds.storyClassify(storyId) } })),
  );
  await deps.feeds.recordSuccess(feedId, { status: result.status, etag: result.etag, lastModified: result.lastModified }, now);
  log.info({ items: report.items, created: report.created, skipped: report.skipped.length }, 'feed fetched');
  return report;
}

async function recordFailure(deps: PollDeps, feedId: string, url: string, err: unknown, log: Logger) {
  const status = err instanceof FetchError ? err.status : null;
  const code = err instanceof FetchError || err instanceof ParseError ? err.code : 'error';
  const message = `${code}: ${(err as Error).message}`;
  await deps.feeds.recordFailure(feedId, message, status, deps.clock.now());
  log.warn({ url, error_code: code, err: (err as Error).message }, `feed ${feedId} failed: ${(err as Error).message}`);
}
