import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storyIdFor } from '../../src/ingest/normalize.ts';
import { manualClock } from '../helpers/clock.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { hubAtom, startLocalHub } from './local-hub.ts';

/**
 * The WebSub callback's log lines operators alert on (src/ingest/routes.ts). Every one is written by the request
 * logger of the web app (req.log, a child of Herald's logger with role "web"; the size-limit path gets it from the
 * route's error handler): here Herald's logger writes JSON lines to an array, read back per test.
 */
const LINES = {
  denied: 'websub subscription denied by the hub',
  tooLarge: 'websub delivery over the size limit not read: the feed is polled instead',
  badSignature: 'websub delivery ignored: X-Hub-Signature missing or wrong',
  paused: 'websub delivery ignored: the feed is paused or disabled',
  verified: 'websub subscription verified',
} as const;
const WEBSUB_MESSAGES: readonly string[] = Object.values(LINES);
/** pino's numeric levels. */
const INFO = 30;
const WARN = 40;

type LogLine = { level: number; msg: string; [field: string]: unknown };

const atom = (hub: string, self: string, entries: { id: string; title: string }[]) => hubAtom('Logged', hub, self, entries);

describe('WebSub callback log lines: each situation logs its own line once, at its level, with its fields', () => {
  const clock = manualClock('2027-01-13T10:00:00Z');
  const start = clock.now();
  const lines: LogLine[] = [];
  // Synchronous: pino writes each line to this object before the request's reply is sent.
  const log = pino({ level: 'info', base: { app: 'herald' } }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  /** The five WebSub callback lines logged since `mark` (lines.length before the step under test). */
  const websubLines = (mark: number) => lines.slice(mark).filter((l) => WEBSUB_MESSAGES.includes(l.msg));
  /** Every line of a warn level or above logged since `mark`, whatever its message. */
  const warnings = (mark: number) => lines.slice(mark).filter((l) => l.level >= WARN);

  let hub: Awaited<ReturnType<typeof startLocalHub>>;
  let laxHub: Awaited<ReturnType<typeof startLocalHub>>;
  let site: FixtureServer;
  let t: TestHerald;
  let feedUrl: string;

  beforeAll(async () => {
    // Herald asks for 10 days; this hub grants 2 (so hub.lease_seconds differs from the asked lease), the other names none.
    hub = await startLocalHub({ grantLeaseSeconds: 172_800 });
    laxHub = await startLocalHub({ omitLeaseSeconds: true });
    site = await startFixtureServer();
    feedUrl = site.url('/pushed.xml');
    site.set('/pushed.xml', { headers: { 'content-type': 'application/atom+xml' }, body: atom(hub.url, feedUrl, [{ id: 'e1', title: 'First entry' }]) });
    site.set('/lax.xml', { headers: { 'content-type': 'application/atom+xml' }, body: atom(laxHub.url, site.url('/lax.xml'), [{ id: 'l1', title: 'Lax entry' }]) });
    t = await startTestHerald({
      name: 'websub-logs', clock, smtpUrl: 'smtp://127.0.0.1:1', log,
      feeds: [{ id: 'pushed', url: feedUrl }, { id: 'lax', url: site.url('/lax.xml') }],
      env: { HERALD_WEBSUB_FALLBACK_POLL_SECONDS: '7200', HERALD_WEBSUB_LEASE_SECONDS: '864000', HERALD_FETCH_MAX_BYTES: '8192' },
    });
    for (const id of ['pushed', 'lax']) await t.herald.enqueue('FeedFetch', { feedId: id }, { jobId: `fetch-${id}-${clock.now()}` });
    await t.waitIdle();
    for (let i = 0; i < 100 && !(hub.subscriptions[0]?.verified && laxHub.subscriptions[0]?.verified); i++) await new Promise((r) => setTimeout(r, 50));
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await Promise.all([hub?.close(), laxHub?.close(), site?.close()]);
  });

  it('a verification of intent logs "websub subscription verified" once per feed at info, with the lease and whether the hub named it', () => {
    expect([hub.subscriptions[0]?.verified, laxHub.subscriptions[0]?.verified]).toEqual([true, true]);
    const got = websubLines(0);
    // Only the two verifications so far, one per feed: no other WebSub callback line.
    expect(got.map((l) => l.msg)).toEqual([LINES.verified, LINES.verified]);
    const byFeed = (id: string) => got.filter((l) => l.feed_id === id);
    expect(byFeed('pushed')).toHaveLength(1);
    expect(byFeed('pushed')[0]).toMatchObject({ level: INFO, role: 'web', reqId: expect.any(String), feed_id: 'pushed', lease_seconds: 172_800, lease_from_hub: true });
    // No hub.lease_seconds: the lease asked for (HERALD_WEBSUB_LEASE_SECONDS), and the line says it was not the hub's.
    expect(byFeed('lax')).toHaveLength(1);
    expect(byFeed('lax')[0]).toMatchObject({ level: INFO, role: 'web', reqId: expect.any(String), feed_id: 'lax', lease_seconds: 864_000, lease_from_hub: false });
    expect(warnings(0)).toEqual([]);
  });

  it('a valid signed delivery logs none of the WebSub callback lines and no warning at all', async () => {
    const mark = lines.length;
    const r = await hub.publish(hub.subscriptions[0]!, atom(hub.url, feedUrl, [{ id: 'e2', title: 'Pushed entry' }]));
    expect(r).toEqual({ status: 202, body: { accepted: true, created: 1, items: 1 } });
    await t.waitIdle();
    expect(await t.herald.stores.stories.get(storyIdFor('pushed', 'e2'))).toMatchObject({ title: 'Pushed entry' });
    // The request was logged (so the capture saw it), but nothing the operator is warned about.
    expect(lines.slice(mark).some((l) => l.role === 'web' && l.reqId !== undefined)).toBe(true);
    expect(websubLines(mark)).toEqual([]);
    expect(warnings(mark)).toEqual([]);
  });

  it('a delivery with a wrong signature, and one with none, each log "X-Hub-Signature missing or wrong" once at warn with the feed', async () => {
    const sub = hub.subscriptions[0]!;
    const wrongMark = lines.length;
    const wrong = await hub.publish(sub, atom(hub.url, feedUrl, [{ id: 'forged', title: 'Forged entry' }]), { signWith: 'not-the-secret' });
    expect(wrong).toEqual({ status: 202, body: { accepted: false } });
    expect(websubLines(wrongMark)).toHaveLength(1);
    expect(websubLines(wrongMark)[0]).toMatchObject({ level: WARN, msg: LINES.badSignature, role: 'web', reqId: expect.any(String), feed_id: 'pushed' });
    expect(warnings(wrongMark)).toHaveLength(1);

    const missingMark = lines.length;
    const unsigned = await fetch(sub.callback, { method: 'POST', headers: { 'content-type': 'application/atom+xml' }, body: atom(hub.url, feedUrl, [{ id: 'unsigned', title: 'Unsigned entry' }]) });
    expect(unsigned.status).toBe(202);
    expect(websubLines(missingMark)).toHaveLength(1);
    expect(websubLines(missingMark)[0]).toMatchObject({ level: WARN, msg: LINES.badSignature, role: 'web', reqId: expect.any(String), feed_id: 'pushed' });
    expect(warnings(missingMark)).toHaveLength(1);
    await t.waitIdle();
    for (const id of ['forged', 'unsigned']) expect(await t.herald.stores.stories.get(storyIdFor('pushed', id))).toBeNull();
  });

  it('a signed delivery to a paused, then a disabled, feed logs "the feed is paused or disabled" once at info with the reason', async () => {
    const feeds = t.herald.stores.feeds;
    const cases = [
      { stop: () => feeds.pause('pushed', clock.now()), reason: 'paused by the operator' },
      { stop: () => feeds.disable('pushed', 'failed 20 times in a row', clock.now()), reason: 'failed 20 times in a row' },
    ];
    for (const [i, c] of cases.entries()) {
      await c.stop();
      try {
        const mark = lines.length;
        const r = await hub.publish(hub.subscriptions[0]!, atom(hub.url, feedUrl, [{ id: `stopped-${i}`, title: 'Delivered while stopped' }]));
        expect(r).toEqual({ status: 202, body: { accepted: false } });
        expect(websubLines(mark)).toHaveLength(1);
        expect(websubLines(mark)[0]).toMatchObject({ level: INFO, msg: LINES.paused, role: 'web', reqId: expect.any(String), feed_id: 'pushed', reason: c.reason });
        // Info, not a warning: the operator stopped the feed (or was told it was disabled) already.
        expect(warnings(mark)).toEqual([]);
      } finally {
        await feeds.resume('pushed', clock.now());
        await feeds.scheduleNext('pushed', clock.now() + 7_200_000);
      }
    }
  });

  it('a delivery over the size limit logs "not read: the feed is polled instead" once at warn, with the limit and the poll brought forward', async () => {
    // The last poll was at the start; a minute later the soonest allowed poll is start + HERALD_FEED_MIN_INTERVAL_SECONDS (300 s).
    clock.advance(60_000);
    expect((await t.herald.stores.feeds.state('pushed')).lastCheckAt).toBe(start);
    const mark = lines.length;
    const big = atom(hub.url, feedUrl, [{ id: 'filler', title: 'x'.repeat(20_000) }]);
    const r = await hub.publish(hub.subscriptions[0]!, big);
    expect(r).toMatchObject({ status: 202, body: { accepted: false, error: 'too-large' } });
    expect(websubLines(mark)).toHaveLength(1);
    expect(websubLines(mark)[0]).toMatchObject({ level: WARN, msg: LINES.tooLarge, role: 'web', reqId: expect.any(String), feed_id: 'pushed', max_bytes: 8192, next_check_at: start + 300_000 });
    expect((await t.herald.stores.feeds.state('pushed')).nextCheckAt).toBe(start + 300_000);
    // Fastify's own 413 handling logs nothing more: this line is the only warning of the request.
    expect(warnings(mark)).toHaveLength(1);
  });

  it('the hub\'s denial logs "denied by the hub" once at warn with the feed and the hub\'s reason; a forged denial logs nothing', async () => {
    const sub = hub.subscriptions[0]!;
    const forgedMark = lines.length;
    // At the bare callback (no token): refused, and an operator alerted on the warning is not paged by anyone's GET.
    const forged = await fetch(`${t.baseUrl}/websub/pushed?hub.mode=denied&hub.topic=${encodeURIComponent(feedUrl)}&hub.reason=forged`);
    expect(forged.status).toBe(404);
    expect(websubLines(forgedMark)).toEqual([]);
    expect(warnings(forgedMark)).toEqual([]);

    const mark = lines.length;
    expect(await hub.deny(sub, 'publisher revoked it')).toBe(200);
    expect(websubLines(mark)).toHaveLength(1);
    expect(websubLines(mark)[0]).toMatchObject({ level: WARN, msg: LINES.denied, role: 'web', reqId: expect.any(String), feed_id: 'pushed', reason: 'publisher revoked it' });
    expect(warnings(mark)).toHaveLength(1);
    expect((await t.herald.stores.feeds.state('pushed')).websub).toMatchObject({ status: 'denied', reason: 'publisher revoked it' });
  });

  it('no request line carries a credential: the callback tokens the hubs were given, a sign-in link\'s token, a digest link\'s signature', async () => {
    const tokens = [hub, laxHub].map((h) => new URL(h.subscriptions[0]!.callback).searchParams.get('token'));
    expect(tokens.every((x) => typeof x === 'string' && x.length >= 16)).toBe(true);
    const signIn = 'A'.repeat(21) + 'b'.repeat(22);
    const mark = lines.length;
    await fetch(`${t.baseUrl}/confirm-email?t=${signIn}`);
    await fetch(`${t.baseUrl}/digest?s=reader&d=2027-01-13&sig=digestSignature0123456789`);
    const logged = lines.map((l) => JSON.stringify(l)).join('\n');
    for (const secret of [...tokens, signIn, 'digestSignature0123456789']) expect(logged).not.toContain(secret!);
    // The requests are still logged, with the parameters named.
    const urls = lines.slice(mark).map((l) => (l.req as { url?: string } | undefined)?.url).filter(Boolean);
    expect(urls).toEqual(['/confirm-email?t=[redacted]', '/digest?s=reader&d=2027-01-13&sig=[redacted]']);
  });
});
