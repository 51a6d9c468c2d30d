import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { FeedConfig } from '../config/catalog.ts';
import type { Clock, ItemIdentity, Story } from '../model.ts';
import { jobIds } from '../queue/jobs.ts';
import type { Enqueue } from '../queue/queues.ts';
import { hostOf, type FeedState, type FeedStore } from '../store/feeds.ts';
import type { IngestCandidate, StoryStore } from '../store/stories.ts';
import { fetchFeed, FetchError, type CacheHeaders } from './fetch-feed.ts';
import { encodeSignature, minhashSignature, NEAR_DUPLICATE_THRESHOLD } from './near-duplicate.ts';
import { identifyItem, itemDate, normalizeItem, toPlainText } from './normalize.ts';
import { parseFeedBody, ParseError, type ParsedFeed, type ParsedItem } from './parse-feed.ts';
import { medianGapMs, nextCheckAt } from './schedule.ts';
import { fallbackPollMs, maybeSubscribe, type WebSubSettings } from './websub.ts';

export interface IngestSettings {
  minIntervalSeconds: number;
  maxIntervalSeconds: number;
  fetchTimeoutMs: number;
  connectTimeoutMs: number;
  fetchMaxBytes: number;
  userAgent: string;
  allowPrivate: boolean;
  hostConcurrency: number;
  disableAfterDays: number;
  websub: WebSubSettings;
}

export interface PollDeps {
  feeds: FeedStore;
  stories: StoryStore;
  enqueue: Enqueue;
  clock: Clock;
  log: Logger;
  settings: IngestSettings;
}

const TICK_BATCH = 1000;
const leaseMs = (s: IngestSettings) => s.fetchTimeoutMs + 60_000;

/**
 * Enqueues a fetch of every due feed whose host has a free slot (at most `hostConcurrency` fetches in flight
 * per host, so one publisher with many feeds is never hammered). A feed whose host is busy stays due.
 */
export async function runPollTick(deps: PollDeps): Promise<{ enqueued: number; deferred: number }> {
  const now = deps.clock.now();
  // Every due feed is looked at, a page at a time: a host with more due feeds than one page (a site's 1,000
  // section feeds) filled the page with feeds it had no slot for, and kept every other host's due feeds out of
  // the tick for as long as its backlog lasted.
  const due: string[] = [];
  for (;;) {
    const page = await deps.feeds.due(now, TICK_BATCH, due.length);
    due.push(...page);
    if (page.length < TICK_BATCH) break;
  }
  const feeds = await deps.feeds.getMany(due);
  const picked: string[] = [];
  let deferred = 0;
  // A host found full stays full for the rest of the tick: its other due feeds are deferred without asking
  // Redis each time (a due feed holds no live slot: both its due time and its lease were set `leaseMs` ahead).
  const full = new Set<string>();
  for (const [k, feedId] of due.entries()) {
    const feed = feeds[k];
    if (!feed) {
      await deps.feeds.remove(feedId);
      continue;
    }
    const host = hostOf(feed.url);
    if (full.has(host) || !(await deps.feeds.acquireHost(host, feedId, now, leaseMs(deps.settings), deps.settings.hostConcurrency))) {
      full.add(host);
      deferred++;
      continue;
    }
    picked.push(feedId);
    // Out of the due range while its fetch runs; the fetch sets the real next check.
    await deps.feeds.scheduleNext(feedId, now + leaseMs(deps.settings));
  }
  await deps.enqueue.bulk('FeedFetch', picked.map((feedId) => ({ data: { feedId }, opts: { jobId: jobIds.feedFetch(feedId) } })));
  return { enqueued: picked.length, deferred };
}

export interface IngestReport {
  feedId: string;
  status: 'not-modified' | 'ok' | 'skipped';
  items: number;
  created: number;
  updated: number;
  merged: number;
  duplicates: number;
  skipped: string[];
}

const emptyReport = (feedId: string, status: IngestReport['status'], skipped: string[] = []): IngestReport =>
  ({ feedId, status, items: 0, created: 0, updated: 0, merged: 0, duplicates: 0, skipped });

/**
 * Fetches one feed and turns its items into stories, each new one handed to classification once.
 * A failure is recorded on the feed (shown to the operator), backs the feed off, and is rethrown so the
 * job shows it too: permanent ones (410, not a feed, malformed) as UnrecoverableError.
 */
export async function ingestFeed(deps: PollDeps, feedId: string): Promise<IngestReport> {
  const feed = await deps.feeds.get(feedId);
  // Removed since the tick queued this fetch: `remove` freed the host slot taken for it.
  if (!feed) return emptyReport(feedId, 'skipped', [`feed ${feedId} is no longer configured`]);
  // Read before the state: a resume between the two moves it, and the unschedule below then leaves the feed be.
  const scheduledAt = await deps.feeds.scheduledAt(feedId);
  const state = await deps.feeds.state(feedId);
  const host = hostOf(feed.url);
  if (state.disabledAt) {
    await deps.feeds.unschedule(feedId, scheduledAt);
    await deps.feeds.releaseHost(host, feedId);
    return emptyReport(feedId, 'skipped', [`feed ${feedId} is disabled: ${state.disabledReason ?? ''}`]);
  }
  try {
    // After the feed was read (see feeds.remove): a removal from now on leaves this fetch its slot.
    await deps.feeds.markFetching(feedId, leaseMs(deps.settings));
    return await fetchAndIngest(deps, feed, state);
  } finally {
    await deps.feeds.releaseHost(host, feedId);
  }
}

async function fetchAndIngest(deps: PollDeps, feed: FeedConfig, state: FeedState): Promise<IngestReport> {
  const s = deps.settings;
  const log = deps.log.child({ feed_id: feed.id });
  let result;
  try {
    result = await fetchFeed({
      url: feed.url,
      etag: state.etag,
      lastModified: state.lastModified,
      validatorsUrl: state.validatorsUrl,
      timeoutMs: s.fetchTimeoutMs,
      connectTimeoutMs: s.connectTimeoutMs,
      maxBytes: s.fetchMaxBytes,
      userAgent: s.userAgent,
      allowPrivate: s.allowPrivate,
    });
  } catch (err) {
    throw await handleFailure(deps, feed, err, log);
  }
  const now = deps.clock.now();
  if (result.permanentUrl && result.permanentUrl !== feed.url) {
    // RFC 9110 §15.4.2/§15.4.9: a permanent redirect means the feed moved; poll the new URL from now on.
    await deps.feeds.updateUrl(feed.id, result.permanentUrl);
    log.info({ from: feed.url, to: result.permanentUrl }, 'feed moved permanently: URL updated');
  }
  if (result.kind === 'not-modified') {
    // RFC 9111 §4.3.4: a 304's own validators update the stored ones (a server that retagged the same bytes then
    // knows only the new tag); kept, the old one was sent on every poll and every poll was a full download.
    await deps.feeds.recordSuccess(feed.id, { status: 304, etag: result.etag ?? state.etag, lastModified: result.lastModified ?? state.lastModified, validatorsUrl: result.finalUrl }, now);
    // An unchanged feed names the hub it named before: the lease is renewed from the state, or a feed that stays
    // unchanged through the renewal window (304 on every fallback poll) would let its subscription lapse.
    const ws = state.websub;
    const websub = ws ? await maybeSubscribe(deps, feed.id, ws, { hub: ws.hub, topic: ws.topic }, now) : ws;
    await scheduleAfterSuccess(deps, feed.id, { ...state, websub }, result.cache, null, now);
    return emptyReport(feed.id, 'not-modified');
  }
  let parsed: ParsedFeed;
  let report: IngestReport;
  try {
    ({ parsed, report } = await ingestBody(deps, feed.id, result.body, { contentType: result.contentType, baseUrl: result.finalUrl }));
  } catch (err) {
    throw await handleFailure(deps, feed, err, log);
  }
  // Read as the stories' own dates are (localized names, zone-less dates as UTC), or a feed whose dates only
  // parseFeedDate reads would never be found stale, and one with zone-less dates would seem hours off.
  const dates = parsed.items.map(itemDate).filter((t): t is number => t !== null);
  // A loop, not Math.max(...dates): spreading a huge archive's dates overflows the call stack.
  const newest = dates.reduce((a, b) => (b > a ? b : a), -Infinity);
  await deps.feeds.recordSuccess(
    feed.id,
    {
      status: result.status,
      // Validators from this answer replace the old ones; a server that stopped sending them gets none back.
      etag: result.etag,
      lastModified: result.lastModified,
      validatorsUrl: result.finalUrl,
      // A feed's title is HTML as parsed (an Atom text title escaped): stored as the text `feeds check` shows.
      title: toPlainText(parsed.title, 300),
      format: parsed.format,
      lastItemAt: dates.length ? Math.min(newest, now) : null,
      cadenceMs: medianGapMs(dates),
    },
    now,
  );
  const hub = parsed.hub ?? result.hubLinks.find((l) => l.rel === 'hub')?.href ?? null;
  const self = parsed.self ?? result.hubLinks.find((l) => l.rel === 'self')?.href ?? result.finalUrl;
  const websub = hub ? await maybeSubscribe(deps, feed.id, state.websub, { hub, topic: self }, now) : state.websub;
  await scheduleAfterSuccess(deps, feed.id, { ...state, websub }, result.cache, parsed, now);
  if (report.created > 0) await deps.feeds.recordItems(feed.id, report.created, now);
  log.info({ items: report.items, created: report.created, updated: report.updated, merged: report.merged, skipped: report.skipped.length }, 'feed fetched');
  return report;
}

async function scheduleAfterSuccess(deps: PollDeps, feedId: string, state: FeedState, cache: CacheHeaders, parsed: ParsedFeed | null, now: number) {
  const s = deps.settings;
  const active = state.websub?.status === 'active' && (state.websub.leaseUntil ?? 0) > now;
  const fallbackMs = active ? fallbackPollMs(s.websub.fallbackSeconds * 1000, s.minIntervalSeconds * 1000, state.websub!.leaseUntil, now) : null;
  await deps.feeds.scheduleNext(
    feedId,
    nextCheckAt({
      now,
      minIntervalMs: s.minIntervalSeconds * 1000,
      maxIntervalMs: s.maxIntervalSeconds * 1000,
      hints: parsed?.hints,
      cacheControl: cache.cacheControl,
      age: cache.age,
      expires: cache.expires,
      pushFallbackMs: fallbackMs,
    }),
  );
}

/**
 * An item handed to the story store. Normalizing and fingerprinting wait until the store says the item is new
 * or changed: most items of a re-polled feed are neither. A class rather than an object of closures per item:
 * V8 drops the optimized code of closures that died at each full collection, and these were made for every
 * item of every fetch.
 */
class FeedItemCandidate implements IngestCandidate {
  private built: Story | { skip: string } | null = null;

  constructor(private readonly item: ParsedItem, private readonly ident: ItemIdentity, private readonly baseUrl: string, private readonly now: number) {}

  get feedId(): string {
    return this.ident.feedId;
  }
  get guid(): string | null {
    return this.ident.guid;
  }
  get contentHash(): string {
    return this.ident.contentHash;
  }
  get id(): string {
    return this.ident.id;
  }
  get url(): string {
    return this.ident.url;
  }
  get canonicalUrl(): string | null {
    return this.ident.canonicalUrl;
  }

  story(): Story | { skip: string } {
    if (this.built) return this.built;
    const n = normalizeItem(this.item, this.ident.feedId, this.baseUrl, this.now, this.ident);
    return (this.built = 'skip' in n ? n : n.story);
  }

  fingerprint(): { signature: string } {
    const s = this.story();
    // No bucket names: the near-duplicate index derives the bands from the signature (bandBucketHashes).
    return { signature: encodeSignature('skip' in s ? minhashSignature('', '') : minhashSignature(s.title, s.summary)) };
  }
}

/** Classification jobs for new stories, one per story (its job id makes a repeat a no-op). */
function classifyJobs(storyIds: string[]) {
  const jobs: { data: { storyId: string }; opts: { jobId: string } }[] = [];
  for (const storyId of storyIds) jobs.push({ data: { storyId }, opts: { jobId: jobIds.storyClassify(storyId) } });
  return jobs;
}

/**
 * The part shared by polling and WebSub deliveries: bytes to parsed feed to stories (exact and near-duplicate
 * dedup in one batch), new stories queued for classification.
 */
export async function ingestBody(
  deps: Pick<PollDeps, 'stories' | 'enqueue' | 'clock' | 'settings'>,
  feedId: string,
  body: Uint8Array,
  opts: { contentType: string | null; baseUrl: string },
): Promise<{ parsed: ParsedFeed; report: IngestReport }> {
  const parsed = await parseFeedBody(body, { contentType: opts.contentType, baseUrl: opts.baseUrl, maxBytes: deps.settings.fetchMaxBytes });
  const now = deps.clock.now();
  const report: IngestReport = { ...emptyReport(feedId, 'ok'), items: parsed.items.length };
  const cands: IngestCandidate[] = [];
  for (const item of parsed.items) {
    const ident = identifyItem(item, feedId, opts.baseUrl);
    if ('skip' in ident) {
      report.skipped.push(ident.skip);
      continue;
    }
    cands.push(new FeedItemCandidate(item, ident, opts.baseUrl, now));
  }
  // Classification is queued by the store, between writing the stories and recording the items as seen.
  const handOver = (ids: string[]) => deps.enqueue.bulk('StoryClassify', classifyJobs(ids));
  const outcomes = await deps.stories.ingestBatch(cands, { threshold: NEAR_DUPLICATE_THRESHOLD, now, handOver });
  for (const o of outcomes) {
    if (o.outcome === 'created') report.created++;
    else if (o.outcome === 'updated') report.updated++;
    else if (o.outcome === 'merged') report.merged++;
    else if (o.outcome === 'skipped') report.skipped.push(o.reason);
    else report.duplicates++;
  }
  return { parsed, report };
}

/**
 * A WebSub delivery: the same path as a polled body. A body that is not a usable feed is recorded on the
 * feed like a failed poll would be (the hub has delivered; nothing to retry), and reported as skipped.
 */
export async function ingestPushed(deps: PollDeps, feedId: string, body: Uint8Array, contentType: string | null, baseUrl: string): Promise<IngestReport> {
  try {
    const { report } = await ingestBody(deps, feedId, body, { contentType, baseUrl });
    if (report.created > 0) await deps.feeds.recordItems(feedId, report.created, deps.clock.now());
    return report;
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    await deps.feeds.recordFailure(feedId, { code: err.code, message: `WebSub delivery: ${err.message}`, status: null }, deps.clock.now());
    return emptyReport(feedId, 'skipped', [err.message]);
  }
}

/**
 * Records the failure on the feed, backs it off exponentially (or as Retry-After asks), and disables it on
 * 410 Gone or after failing for `disableAfterDays`. Returns the error for the job to fail with.
 */
async function handleFailure(deps: PollDeps, feed: FeedConfig, err: unknown, log: Logger): Promise<Error> {
  const now = deps.clock.now();
  const s = deps.settings;
  const code = err instanceof FetchError || err instanceof ParseError ? err.code : 'error';
  const status = err instanceof FetchError ? err.status : null;
  const message = (err as Error).message;
  const run = await deps.feeds.recordFailure(feed.id, { code, message, status }, now);
  const permanent = code === 'gone' || err instanceof ParseError;
  const failed = permanent ? new UnrecoverableError(`${code}: ${message}`) : (err as Error);
  // Removed while this fetch ran: nothing to record, back off or disable; the job still shows the error.
  if (!run) return failed;
  const { failures, failingSince } = run;
  if (code === 'gone') {
    await deps.feeds.disable(feed.id, `410 Gone: the publisher removed ${feed.url}; remove the feed or set a new URL`, now);
    log.error({ url: feed.url, error_code: code }, `feed ${feed.id} disabled: ${message}`);
  } else if (now - failingSince >= s.disableAfterDays * 86_400_000) {
    await deps.feeds.disable(feed.id, `failing for ${s.disableAfterDays} days (${failures} attempts); last error: ${message}`, now);
    log.error({ url: feed.url, error_code: code, failures }, `feed ${feed.id} disabled after ${s.disableAfterDays} days of failures`);
  } else {
    const cache = err instanceof FetchError ? err.cache : null;
    await deps.feeds.scheduleNext(
      feed.id,
      nextCheckAt({
        now,
        minIntervalMs: s.minIntervalSeconds * 1000,
        maxIntervalMs: s.maxIntervalSeconds * 1000,
        failures,
        retryAfter: status === 429 || status === 503 ? cache?.retryAfter : null,
        cacheControl: null,
      }),
    );
    log.warn({ url: feed.url, error_code: code, failures }, `feed ${feed.id} failed: ${message}`);
  }
  return failed;
}
