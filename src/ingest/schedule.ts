import type { FeedHints } from './parse-feed.ts';

/**
 * When to check a feed next: the longest interval any of its own hints asks for, bounded by the operator's
 * minimum and maximum, then moved out of the hours and days the feed says to skip. Pure: the clock is passed in.
 */
export interface ScheduleInput {
  now: number;
  minIntervalMs: number;
  maxIntervalMs: number;
  hints?: Partial<FeedHints>;
  /** HTTP caching and rate-limit headers of the last answer. */
  cacheControl?: string | null;
  /** Age of the answer in seconds (a cache's copy): max-age counts from when the origin made it. */
  age?: string | null;
  expires?: string | null;
  retryAfter?: string | null;
  /** Consecutive failures so far (0 after a success): exponential backoff. */
  failures?: number;
  /** A WebSub subscription delivers updates: polling is only the fallback, at this interval. */
  pushFallbackMs?: number | null;
}

const PERIOD_MS: Record<string, number> = {
  hourly: 3_600_000,
  daily: 86_400_000,
  weekly: 7 * 86_400_000,
  monthly: 30 * 86_400_000,
  yearly: 365 * 86_400_000,
};
const DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** max-age (or s-maxage) of a Cache-Control header in ms; no-cache/no-store say nothing about polling. */
export function maxAgeMs(cacheControl: string | null | undefined): number | null {
  if (!cacheControl) return null;
  const m = /(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*"?(\d+)"?/i.exec(cacheControl);
  return m ? Number(m[1]) * 1000 : null;
}

/** Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3), as a delay from now in ms. */
export function retryAfterMs(value: string | null | undefined, now: number): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : null;
}

export function hintIntervalMs(hints: Partial<FeedHints> | undefined): number | null {
  if (!hints) return null;
  const candidates: number[] = [];
  if (hints.ttlMinutes) candidates.push(hints.ttlMinutes * 60_000);
  // The syndication module's default period is daily: sy:updateFrequency alone means that many times a day.
  const period = hints.updatePeriod ?? (hints.updateFrequency ? 'daily' : null);
  if (period && PERIOD_MS[period]) candidates.push(PERIOD_MS[period]! / (hints.updateFrequency ?? 1));
  return candidates.length ? Math.max(...candidates) : null;
}

/** Moves `at` forward, hour by hour, out of skipHours (0-23, GMT per RSS 2.0) and skipDays. */
export function skipForward(at: number, skipHours: readonly number[] = [], skipDays: readonly string[] = []): number {
  const hours = new Set(skipHours.map((h) => h % 24));
  const days = new Set(skipDays.map((d) => d.toLowerCase()));
  if (hours.size === 0 && days.size === 0) return at;
  if (hours.size === 24 && days.size === 0) return at; // a feed skipping every hour is misconfigured: ignore it
  let t = at;
  // Bounded: a week of hours always contains an allowed one unless every day is skipped.
  for (let i = 0; i < 24 * 8; i++) {
    const d = new Date(t);
    if (!hours.has(d.getUTCHours()) && !days.has(DAYS[d.getUTCDay()]!)) return t;
    t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours() + 1);
  }
  return at;
}

export function nextCheckAt(input: ScheduleInput): number {
  const { now, minIntervalMs, maxIntervalMs } = input;
  const asked: number[] = [minIntervalMs];
  const hinted = hintIntervalMs(input.hints);
  if (hinted) asked.push(hinted);
  // RFC 9111 §4.2.3: what is left of max-age is max-age minus the copy's Age. Behind a CDN the answer is often
  // most of max-age old, and counting the whole of it again from now polled up to twice as late as needed.
  const maxAge = maxAgeMs(input.cacheControl);
  const age = /^\s*\d+\s*$/.test(input.age ?? '') ? Number(input.age) * 1000 : 0;
  if (maxAge !== null) asked.push(maxAge - age);
  // RFC 9111 §5.3: when max-age or s-maxage is present, Expires is ignored. A server sending both (a CDN adding
  // a far Expires to the origin's short max-age) was otherwise polled as late as the Expires date.
  else if (input.expires) {
    const t = Date.parse(input.expires);
    if (Number.isFinite(t)) asked.push(t - now);
  }
  const retry = retryAfterMs(input.retryAfter, now);
  if (retry) asked.push(retry);
  if (input.failures && input.failures > 0) asked.push(minIntervalMs * 2 ** Math.min(input.failures - 1, 20));
  if (input.pushFallbackMs) asked.push(input.pushFallbackMs);
  const interval = Math.min(Math.max(...asked), maxIntervalMs);
  return skipForward(now + interval, input.hints?.skipHours, input.hints?.skipDays);
}

/**
 * A feed is stale when its newest item is older than several times its usual gap between items
 * (and at least a day): it may have moved or stopped without telling anyone.
 */
export function isStale(lastItemAt: number | null, cadenceMs: number | null, now: number): boolean {
  if (lastItemAt === null) return false;
  // Too few dated items to know the feed's rhythm: a week without a new one.
  if (cadenceMs === null) return now - lastItemAt > UNKNOWN_CADENCE_STALE_MS;
  return now - lastItemAt > Math.max(4 * cadenceMs, 86_400_000);
}
const UNKNOWN_CADENCE_STALE_MS = 7 * 86_400_000;

/** Median gap between consecutive publication times: robust to a burst or a long pause. */
export function medianGapMs(times: readonly number[]): number | null {
  const sorted = [...new Set(times)].sort((a, b) => a - b);
  if (sorted.length < 3) return null;
  const gaps = sorted.slice(1).map((t, i) => t - sorted[i]!).sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)] ?? null;
}
