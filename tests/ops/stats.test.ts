import { afterAll, describe, expect, it } from 'vitest';
import { createRedis, type RedisClient } from '../../src/store/redis.ts';
import { createStats, HOUR_RETENTION_SECONDS, MINUTE_RETENTION_SECONDS, STATS_FLUSH_MS } from '../../src/store/stats.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';

/**
 * Stats summed in process memory and flushed to a real Redis: what several processes count adds up there
 * (totals, histograms, minute and hour buckets), an increment arrives within the flush window without being
 * asked, and a flush that fails reaches onError, never the code that counted.
 */
describe('stats buffering', () => {
  const connections: RedisClient[] = [];
  /** Each Stats on a connection of its own, as separate processes would be. */
  const connect = (name: string) => {
    const r = createRedis(TEST_REDIS_URL, { name });
    connections.push(r);
    return r;
  };
  const admin = connect('stats-test-admin');
  const prefixes: string[] = [];
  const newPrefix = () => {
    const p = uniquePrefix('stats');
    prefixes.push(p);
    return p;
  };
  const until = async <T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await read();
      if (ok(v)) return v;
      if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms; last value ${JSON.stringify(v)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const at = Date.parse('2027-01-15T10:17:30Z');
  const minute = Math.floor(at / 60_000);
  const hour = Math.floor(at / 3_600_000);

  afterAll(async () => {
    for (const p of prefixes) await deletePrefix(admin, p);
    await Promise.allSettled(connections.map((c) => c.quit()));
  });

  it('two processes counting the same series are summed in Redis; a third reads the sum', async () => {
    const prefix = newPrefix();
    const a = createStats(connect('stats-a'), prefix);
    const b = createStats(connect('stats-b'), prefix);
    const reader = createStats(connect('stats-reader'), prefix);
    for (let i = 0; i < 10; i++) await a.incr('herald_alerts_total', { channel: 'push', topic: 'japan' }, at);
    await b.incr('herald_alerts_total', { topic: 'japan', channel: 'push' }, at, 5);
    await b.incr('herald_alerts_total', { channel: 'email', topic: 'japan' }, at);
    await Promise.all([a.flush(), b.flush()]);
    expect(await reader.totals()).toEqual({
      'herald_alerts_total{channel="push",topic="japan"}': 15,
      'herald_alerts_total{channel="email",topic="japan"}': 1,
    });
  });

  it('one process: label sets in any order are one series; another value, key or name is its own series', async () => {
    const prefix = newPrefix();
    const stats = createStats(connect('stats-labels'), prefix, { flushMs: 60_000 });
    for (let i = 0; i < 3; i++) {
      await stats.incr('herald_alerts_total', { channel: 'push', outcome: 'sent' }, at);
      await stats.incr('herald_alerts_total', { outcome: 'sent', channel: 'push' }, at);
      await stats.incr('herald_alerts_total', { channel: 'push', outcome: 'failed' }, at);
      await stats.incr('herald_alerts_total', { channel: 'sent', outcome: 'push' }, at);
      await stats.incr('herald_push_responses_total', { channel: 'push', outcome: 'sent' }, at);
      await stats.incr('herald_push_responses_total', {}, at);
      await stats.observe('herald_story_to_delivery_seconds', { channel: 'push' }, 0.3, at);
      await stats.observe('herald_story_to_delivery_seconds', { channel: 'email' }, 0.3, at, [1, 10]);
    }
    await stats.flush();
    const totals = await stats.totals();
    expect(totals).toMatchObject({
      'herald_alerts_total{channel="push",outcome="sent"}': 6,
      'herald_alerts_total{channel="push",outcome="failed"}': 3,
      'herald_alerts_total{channel="sent",outcome="push"}': 3,
      'herald_push_responses_total{channel="push",outcome="sent"}': 3,
      herald_push_responses_total: 3,
      'herald_story_to_delivery_seconds_count{channel="push"}': 3,
      'herald_story_to_delivery_seconds_bucket{channel="push",le="0.5"}': 3,
      'herald_story_to_delivery_seconds_bucket{channel="email",le="1"}': 3,
      'herald_story_to_delivery_seconds_bucket{channel="email",le="+Inf"}': 3,
    });
    expect(totals['herald_story_to_delivery_seconds_bucket{channel="push",le="0.1"}']).toBeUndefined();
    expect(totals['herald_story_to_delivery_seconds_bucket{channel="email",le="0.5"}']).toBeUndefined();
  });

  it('holds increments in memory until flushed: one series field, the summed value', async () => {
    const prefix = newPrefix();
    const stats = createStats(connect('stats-held'), prefix, { flushMs: 60_000 });
    for (let i = 0; i < 25; i++) await stats.incr('herald_jobs_total', { queue: 'push' }, at, 2);
    expect(await admin.hgetall(`${prefix}:stats:total`)).toEqual({});
    await stats.flush();
    expect(await admin.hgetall(`${prefix}:stats:total`)).toEqual({ 'herald_jobs_total{queue="push"}': '50' });
  });

  it('2000 distinct series waiting are written at once, without the timer or an explicit flush', async () => {
    const prefix = newPrefix();
    const stats = createStats(connect('stats-early'), prefix, { flushMs: 60_000 });
    for (let i = 0; i < 1999; i++) await stats.incr('herald_alerts_total', { topic: `t${i}` }, at);
    expect(await admin.hlen(`${prefix}:stats:total`)).toBe(0);
    await stats.incr('herald_alerts_total', { topic: 't1999' }, at);
    // A pipeline, not a transaction: another client may see it half done, so wait for the last field.
    const total = await until(() => admin.hgetall(`${prefix}:stats:total`), (h) => Object.keys(h).length >= 2000);
    expect(Object.keys(total)).toHaveLength(2000);
    expect(Object.values(total).every((v) => v === '1')).toBe(true);
  });

  it('an increment reaches Redis within the flush window with no explicit flush', async () => {
    expect(STATS_FLUSH_MS).toBe(250);
    const prefix = newPrefix();
    const stats = createStats(connect('stats-timer'), prefix);
    await stats.incr('herald_feed_fetch_total', { outcome: 'ok' }, at, 3);
    const total = await until(() => admin.hgetall(`${prefix}:stats:total`), (h) => Object.keys(h).length > 0);
    expect(total).toEqual({ 'herald_feed_fetch_total{outcome="ok"}': '3' });
  });

  it('histograms from two processes keep cumulative buckets, _count and _sum', async () => {
    const prefix = newPrefix();
    const a = createStats(connect('stats-hist-a'), prefix);
    const b = createStats(connect('stats-hist-b'), prefix);
    const buckets = [0.1, 0.5, 1];
    // Binary fractions, so the sum is exact in floating point and in HINCRBYFLOAT.
    await a.observe('herald_delivery_seconds', { channel: 'push' }, 0.25, at, buckets);
    await b.observe('herald_delivery_seconds', { channel: 'push' }, 2, at, buckets);
    await a.observe('herald_delivery_seconds', { channel: 'push' }, 0.0625, at, buckets);
    await b.observe('herald_delivery_seconds', { channel: 'push' }, 1, at, buckets);
    await Promise.all([a.flush(), b.flush()]);
    const totals = await createStats(connect('stats-hist-reader'), prefix).totals();
    const h = (suffix: string) => `herald_delivery_seconds_${suffix}`;
    expect(totals).toEqual({
      [h('bucket{channel="push",le="0.1"}')]: 1,
      [h('bucket{channel="push",le="0.5"}')]: 2,
      [h('bucket{channel="push",le="1"}')]: 3,
      [h('bucket{channel="push",le="+Inf"}')]: 4,
      [h('count{channel="push"}')]: 4,
      [h('sum{channel="push"}')]: 3.3125,
    });
  });

  it('minute and hour buckets carry the same sums as the totals, and expire', async () => {
    const prefix = newPrefix();
    const a = createStats(connect('stats-buckets-a'), prefix);
    const b = createStats(connect('stats-buckets-b'), prefix);
    const field = 'herald_alerts_total{channel="push"}';
    await a.incr('herald_alerts_total', { channel: 'push' }, at, 2); // 10:17
    await b.incr('herald_alerts_total', { channel: 'push' }, at + 10_000, 3); // 10:17
    await b.incr('herald_alerts_total', { channel: 'push' }, at + 60_000, 4); // 10:18
    await a.incr('herald_alerts_total', { channel: 'push' }, at + 3_600_000, 5); // 11:17
    await Promise.all([a.flush(), b.flush()]);
    const reader = createStats(connect('stats-buckets-reader'), prefix);
    expect(await reader.totals()).toEqual({ [field]: 14 });

    const minutes = await reader.series('minute', at, at + 60_000);
    expect(minutes).toEqual([
      { at: minute * 60_000, values: { [field]: 5 } },
      { at: (minute + 1) * 60_000, values: { [field]: 4 } },
    ]);
    const hours = await reader.series('hour', at, at + 3_600_000);
    expect(hours).toEqual([
      { at: hour * 3_600_000, values: { [field]: 9 } },
      { at: (hour + 1) * 3_600_000, values: { [field]: 5 } },
    ]);

    for (const m of [minute, minute + 1, minute + 60]) {
      const ttl = await admin.ttl(`${prefix}:stats:m:${m}`);
      expect(ttl).toBeGreaterThan(MINUTE_RETENTION_SECONDS - 60);
      expect(ttl).toBeLessThanOrEqual(MINUTE_RETENTION_SECONDS);
    }
    for (const hr of [hour, hour + 1]) {
      const ttl = await admin.ttl(`${prefix}:stats:h:${hr}`);
      expect(ttl).toBeGreaterThan(HOUR_RETENTION_SECONDS - 60);
      expect(ttl).toBeLessThanOrEqual(HOUR_RETENTION_SECONDS);
    }
    // The running total never expires.
    expect(await admin.ttl(`${prefix}:stats:total`)).toBe(-1);
  });

  it('a flush that fails (connection gone) goes to onError; incr and observe still resolve', async () => {
    const prefix = newPrefix();
    const redis = connect('stats-failing');
    const errors: Error[] = [];
    const stats = createStats(redis, prefix, { flushMs: 20, onError: (err) => errors.push(err) });
    await redis.quit();
    await expect(stats.incr('herald_alerts_total', { channel: 'push' }, at)).resolves.toBeUndefined();
    await expect(stats.observe('herald_delivery_seconds', { channel: 'push' }, 0.25, at)).resolves.toBeUndefined();
    await until(async () => errors.length, (n) => n > 0);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/Connection is closed/);
    expect(await admin.exists(`${prefix}:stats:total`)).toBe(0);
  });

  it('an early flush (2000 series waiting) that fails goes to onError too, not to the caller of incr', async () => {
    const prefix = newPrefix();
    const redis = connect('stats-failing-early');
    const errors: Error[] = [];
    const stats = createStats(redis, prefix, { flushMs: 60_000, onError: (err) => errors.push(err) });
    await redis.quit();
    const calls = Array.from({ length: 2000 }, (_, i) => stats.incr('herald_alerts_total', { topic: `t${i}` }, at));
    const settled = await Promise.allSettled(calls);
    expect(settled.filter((s) => s.status === 'rejected')).toEqual([]);
    await until(async () => errors.length, (n) => n > 0);
    expect(errors).toHaveLength(1);
  });
});
