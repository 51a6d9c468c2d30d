import { describe, expect, it } from 'vitest';
import { isForbiddenAddress } from '../../src/ingest/address-guard.ts';
import { describeFeedHealth } from '../../src/ingest/health.ts';
import { isStale, medianGapMs, nextCheckAt, retryAfterMs, skipForward } from '../../src/ingest/schedule.ts';
import type { FeedState } from '../../src/store/feeds.ts';

const NOW = Date.parse('2027-01-13T10:00:00Z'); // a Wednesday
const MIN = 5 * 60_000;
const MAX = 6 * 3_600_000;
const base = { now: NOW, minIntervalMs: MIN, maxIntervalMs: MAX };
const after = (at: number) => (at - NOW) / 60_000;

describe('nextCheckAt: the longest interval any hint asks for, within [min, max]', () => {
  it.each([
    ['no hints: the minimum', {}, 5],
    ['<ttl>120</ttl>', { hints: { ttlMinutes: 120 } }, 120],
    ['sy:updatePeriod hourly, frequency 2', { hints: { updatePeriod: 'hourly', updateFrequency: 2 } }, 30],
    ['sy:updatePeriod daily: capped at max', { hints: { updatePeriod: 'daily' } }, 360],
    ['sy:updateFrequency 8 without a period: daily is the default, 3 hours', { hints: { updatePeriod: null, updateFrequency: 8 } }, 180],
    ['Cache-Control max-age=1800', { cacheControl: 'public, max-age=1800' }, 30],
    ['Cache-Control s-maxage=600', { cacheControl: 's-maxage=600, max-age=60' }, 10],
    // RFC 9111 §4.2.3: a copy already 50 minutes old (a CDN's) is fresh for 10 more, not for another hour.
    ['max-age=3600 with Age: 3000', { cacheControl: 'max-age=3600', age: '3000' }, 10],
    ['max-age=3600 with Age past it: the minimum', { cacheControl: 'max-age=3600', age: '7200' }, 5],
    ['max-age=3600 with an unreadable Age: max-age', { cacheControl: 'max-age=3600', age: 'old' }, 60],
    ['Expires in 45 minutes', { expires: new Date(NOW + 45 * 60_000).toUTCString() }, 45],
    // RFC 9111 §5.3: with max-age (or s-maxage) present, Expires is ignored, even when it is later.
    ['max-age=600 and Expires in 2 hours: max-age', { cacheControl: 'max-age=600', expires: new Date(NOW + 120 * 60_000).toUTCString() }, 10],
    ['s-maxage=900 and Expires in 2 hours: s-maxage', { cacheControl: 's-maxage=900', expires: new Date(NOW + 120 * 60_000).toUTCString() }, 15],
    ['max-age=0 and Expires in 2 hours: the minimum', { cacheControl: 'no-cache, max-age=0', expires: new Date(NOW + 120 * 60_000).toUTCString() }, 5],
    ['no-cache without max-age: Expires still counts', { cacheControl: 'no-cache', expires: new Date(NOW + 45 * 60_000).toUTCString() }, 45],
    ['Retry-After: 3600 (seconds)', { retryAfter: '3600' }, 60],
    ['Retry-After as an HTTP date', { retryAfter: new Date(NOW + 90 * 60_000).toUTCString() }, 90],
    ['ttl 1 minute: raised to the minimum', { hints: { ttlMinutes: 1 } }, 5],
    ['the largest of several hints wins', { hints: { ttlMinutes: 20 }, cacheControl: 'max-age=2400' }, 40],
    ['3 failures: 5 × 2² minutes', { failures: 3 }, 20],
    ['20 failures: capped at max', { failures: 20 }, 360],
    ['active WebSub: the longer fallback interval', { pushFallbackMs: 3 * 3_600_000 }, 180],
  ])('%s → %d min', (_name, extra, minutes) => {
    expect(after(nextCheckAt({ ...base, ...extra }))).toBe(minutes);
  });

  it('skipHours and skipDays (GMT) move the check to the first allowed hour', () => {
    // 10:00 + 5 min lands in skipped hours 10 and 11: the next allowed hour is 12:00.
    expect(new Date(nextCheckAt({ ...base, hints: { skipHours: [10, 11] } })).toISOString()).toBe('2027-01-13T12:00:00.000Z');
    // Wednesday and Thursday skipped: Friday 00:00.
    expect(new Date(nextCheckAt({ ...base, hints: { skipDays: ['wednesday', 'thursday'] } })).toISOString()).toBe('2027-01-15T00:00:00.000Z');
    expect(skipForward(NOW, Array.from({ length: 24 }, (_, h) => h))).toBe(NOW);
  });

  it('Retry-After parsing', () => {
    expect(retryAfterMs('120', NOW)).toBe(120_000);
    expect(retryAfterMs('soon', NOW)).toBeNull();
    expect(retryAfterMs(new Date(NOW - 1000).toUTCString(), NOW)).toBe(0);
  });
});

describe('staleness', () => {
  const H = 3_600_000;
  it('a feed quiet for more than four usual gaps (and a day) is stale', () => {
    expect(medianGapMs([0, H, 2 * H, 3 * H, 100 * H])).toBe(H);
    expect(medianGapMs([0, H])).toBeNull();
    expect(isStale(NOW - 30 * H, H, NOW)).toBe(true);
    expect(isStale(NOW - 20 * H, H, NOW)).toBe(false);
    expect(isStale(NOW - 5 * 24 * H, 24 * H, NOW)).toBe(true);
    expect(isStale(null, H, NOW)).toBe(false);
    // Too few dated items for a rhythm: a week. Before, such a feed was never stale.
    expect(isStale(NOW - 8 * 24 * H, null, NOW)).toBe(true);
    expect(isStale(NOW - 6 * 24 * H, null, NOW)).toBe(false);
  });

  it('health status: disabled, failing, stale, ok, new', () => {
    const s: FeedState = {
      etag: null, lastModified: null, validatorsUrl: null, lastStatus: 200, lastError: null, lastErrorCode: null, lastErrorAt: null, lastSuccessAt: NOW - H,
      lastCheckAt: NOW - H, consecutiveFailures: 0, failingSince: null, disabledAt: null, disabledReason: null, nextCheckAt: NOW + H,
      lastItemAt: NOW - 2 * H, cadenceMs: H, lastNewItemAt: NOW - 2 * H, title: 'T', format: 'rss2.0', websub: null,
    };
    const feed = { id: 'f', url: 'https://f.test/' };
    expect(describeFeedHealth(feed, s, NOW).status).toBe('ok');
    expect(describeFeedHealth(feed, { ...s, lastItemAt: NOW - 48 * H }, NOW).status).toBe('stale');
    expect(describeFeedHealth(feed, { ...s, consecutiveFailures: 2, lastError: 'x', lastErrorCode: 'timeout' }, NOW)).toMatchObject({ status: 'failing', lastError: { code: 'timeout', message: 'x' } });
    expect(describeFeedHealth(feed, { ...s, disabledAt: NOW, disabledReason: '410 Gone' }, NOW)).toMatchObject({ status: 'disabled', disabledReason: '410 Gone', nextCheckAt: null });
    expect(describeFeedHealth(feed, { ...s, lastSuccessAt: null }, NOW).status).toBe('new');
    // A feed whose items carry no dates goes by when it last brought a new story.
    const undated = { ...s, lastItemAt: null, cadenceMs: null };
    expect(describeFeedHealth(feed, { ...undated, lastNewItemAt: NOW - 3 * 24 * H }, NOW).status).toBe('ok');
    expect(describeFeedHealth(feed, { ...undated, lastNewItemAt: NOW - 8 * 24 * H }, NOW).status).toBe('stale');
  });
});

describe('SSRF guard: forbidden addresses', () => {
  it.each([
    ['127.0.0.1', true], ['127.8.9.10', true], ['10.1.2.3', true], ['172.16.0.1', true], ['172.31.255.255', true], ['192.168.1.1', true],
    ['169.254.169.254', true], ['100.64.0.1', true], ['0.0.0.0', true], ['224.0.0.1', true], ['255.255.255.255', true],
    ['::1', true], ['::', true], ['fe80::1', true], ['fd00:ec2::254', true], ['fc00::1', true], ['::ffff:127.0.0.1', true],
    ['::ffff:7f00:1', true], ['::ffff:169.254.169.254', true], ['64:ff9b::10.0.0.1', true], ['not-an-ip', true],
    ['93.184.216.34', false], ['172.32.0.1', false], ['8.8.8.8', false], ['2606:4700::1111', false], ['::ffff:8.8.8.8', false],
  ])('%s forbidden: %s', (address, forbidden) => {
    expect(isForbiddenAddress(address)).toBe(forbidden);
  });
});
