import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storyIdFor } from '../../src/ingest/normalize.ts';
import { needsSubscription, verifySignature } from '../../src/ingest/websub.ts';
import { manualClock } from '../helpers/clock.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { hubAtom, startLocalHub } from './local-hub.ts';

const atom = (hub: string, self: string, entries: { id: string; title: string }[]) => hubAtom('Pushed', hub, self, entries);

describe('WebSub: subscribe, verify intent, take signed pushes, renew the lease', () => {
  const clock = manualClock('2027-01-13T10:00:00Z');
  let hub: Awaited<ReturnType<typeof startLocalHub>>;
  let site: FixtureServer;
  let t: TestHerald;
  let feedUrl: string;

  const poll = async () => {
    await t.herald.enqueue('FeedFetch', { feedId: 'pushed' }, { jobId: `fetch-pushed-${clock.now()}` });
    await t.waitIdle();
  };
  const until = async (cond: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 100 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 50));
  };

  beforeAll(async () => {
    hub = await startLocalHub();
    site = await startFixtureServer();
    feedUrl = site.url('/pushed.xml');
    site.set('/pushed.xml', { headers: { 'content-type': 'application/atom+xml' }, body: atom(hub.url, feedUrl, [{ id: 'e1', title: 'First entry' }]) });
    t = await startTestHerald({
      name: 'websub', clock, smtpUrl: 'smtp://127.0.0.1:1', feeds: [{ id: 'pushed', url: feedUrl }],
      // A low write limit: hub deliveries must not count toward readers' write rate limits.
      env: { HERALD_WEBSUB_FALLBACK_POLL_SECONDS: '7200', HERALD_WEBSUB_LEASE_SECONDS: '86400', HERALD_RATE_LIMIT_WRITES_PER_MINUTE: '5' },
    });
    await poll();
    await until(() => hub.subscriptions[0]?.verified === true);
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await Promise.all([hub?.close(), site?.close()]);
  });

  it('subscribes to the advertised hub, answers the verification of intent, and polls only as a fallback', async () => {
    expect(hub.subscriptions).toHaveLength(1);
    const sub = hub.subscriptions[0]!;
    // The callback carries a token only Herald and the hub know (WebSub §5.1: unguessable, unique per subscription).
    expect(sub).toMatchObject({ topic: feedUrl, callback: expect.stringMatching(new RegExp(`^${t.baseUrl}/websub/pushed\\?token=[\\w-]{43}$`)), leaseSeconds: 86400, verified: true });
    expect(sub.secret).toMatch(/^[0-9a-f]{48}$/);
    const state = await t.herald.stores.feeds.state('pushed');
    expect(state.websub).toMatchObject({ status: 'active', hub: hub.url, leaseUntil: clock.now() + 86_400_000 });
    expect(state.nextCheckAt).toBe(clock.now() + 7_200_000);
    const api = (await (await fetch(`${t.baseUrl}/api/feeds`, { headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' } })).json()) as { feeds: { id: string; websub: string }[] };
    expect(api.feeds[0]!.websub).toContain('active via');
  });

  it('a signed delivery goes straight into the pipeline', async () => {
    const r = await hub.publish(hub.subscriptions[0]!, atom(hub.url, feedUrl, [{ id: 'e2', title: 'Pushed entry arrives' }]));
    expect(r).toEqual({ status: 202, body: { accepted: true, created: 1, items: 1 } });
    await t.waitIdle();
    const story = await t.herald.stores.stories.get(storyIdFor('pushed', 'e2'));
    expect(story).toMatchObject({ title: 'Pushed entry arrives', feedId: 'pushed' });
    expect(await t.herald.stores.stories.isClassified(story!.id)).toBe(true);
  });

  it('a busy hub is not rate-limited like a reader: 12 deliveries in a minute are all taken', async () => {
    for (let i = 0; i < 12; i++) {
      const r = await hub.publish(hub.subscriptions[0]!, atom(hub.url, feedUrl, [{ id: `burst-${i}`, title: `Burst entry ${i}` }]));
      expect(r.status).toBe(202);
    }
    await t.waitIdle();
    expect(await t.herald.stores.stories.get(storyIdFor('pushed', 'burst-11'))).toMatchObject({ title: 'Burst entry 11' });
  });

  it('a delivery with a wrong signature is acknowledged and ignored', async () => {
    const sub = hub.subscriptions[0]!;
    const r = await hub.publish(sub, atom(hub.url, feedUrl, [{ id: 'forged', title: 'Forged entry' }]), { signWith: 'not-the-secret' });
    expect(r).toEqual({ status: 202, body: { accepted: false } });
    expect(await t.herald.stores.stories.get(storyIdFor('pushed', 'forged'))).toBeNull();
    const unsigned = await fetch(sub.callback, { method: 'POST', headers: { 'content-type': 'application/atom+xml' }, body: 'x' });
    expect(unsigned.status).toBe(202);
  });

  it('a pushed body that is not a feed is recorded on the feed, not crashed on', async () => {
    const r = await hub.publish(hub.subscriptions[0]!, '<html><body>oops</body></html>', { contentType: 'text/html' });
    expect(r.body).toMatchObject({ accepted: true, created: 0 });
    expect(await t.herald.stores.feeds.state('pushed')).toMatchObject({ lastErrorCode: 'html-not-feed' });
  });

  it('verification for a topic never asked for, or an unknown feed, is refused', async () => {
    const wrong = await fetch(`${hub.subscriptions[0]!.callback}&hub.mode=subscribe&hub.topic=${encodeURIComponent('https://evil.example.test/')}&hub.challenge=abc&hub.lease_seconds=10`);
    expect(wrong.status).toBe(404);
    const unknown = await fetch(`${t.baseUrl}/websub/nope`, { method: 'POST', headers: { 'content-type': 'application/atom+xml' }, body: 'x' });
    expect(unknown.status).toBe(410);
  });

  it('a verification of intent nobody asked for (no request pending) cannot stretch the lease', async () => {
    // Anyone can reach the callback and knows the topic (the feed's public URL): a forged "subscribe" with a ten-year
    // lease would stop every renewal, and the hub's real lease would end with nobody noticing.
    clock.advance(2 * 3_600_000);
    const before = (await t.herald.stores.feeds.state('pushed')).websub;
    const q = (callback: string) => `${callback}${callback.includes('?') ? '&' : '?'}hub.mode=subscribe&hub.topic=${encodeURIComponent(feedUrl)}&hub.challenge=forged&hub.lease_seconds=315360000`;
    // Refused at the bare callback, and at the subscription's own (a leak of it) outside the window of a request.
    for (const callback of [`${t.baseUrl}/websub/pushed`, hub.subscriptions[0]!.callback]) expect((await fetch(q(callback))).status).toBe(404);
    expect((await t.herald.stores.feeds.state('pushed')).websub).toEqual(before);
  });

  it('a denial nobody can tell came from the hub changes nothing: the active subscription keeps its lease', async () => {
    // WebSub §5.2 lets a hub deny a subscription at any point, by a GET to the callback that carries nothing signed:
    // a forged one, believed, dropped the lease and left the feed on slow fallback polls until the next day's retry.
    const feeds = t.herald.stores.feeds;
    const before = await feeds.state('pushed');
    expect(before.websub?.status).toBe('active');
    const denied = (callback: string, topic = feedUrl) => {
      const u = new URL(callback);
      u.searchParams.set('hub.mode', 'denied');
      u.searchParams.set('hub.topic', topic);
      u.searchParams.set('hub.reason', 'forged');
      return t.herald.web.inject({ method: 'GET', url: u.pathname + u.search });
    };
    const guessed = new URL(hub.subscriptions[0]!.callback);
    guessed.searchParams.set('token', 'A'.repeat(43));
    // The bare callback, a guessed token, and the real callback naming a topic not subscribed to.
    for (const [callback, topic] of [[`${t.baseUrl}/websub/pushed`, feedUrl], [guessed.toString(), feedUrl], [hub.subscriptions[0]!.callback, 'https://evil.example.test/']] as const) {
      const res = await denied(callback, topic);
      expect(await feeds.state('pushed')).toEqual(before);
      expect(res.statusCode).toBe(404);
    }
  });

  it('a forged denial while a request is pending leaves it pending: the hub\'s verification still succeeds', async () => {
    const feeds = t.herald.stores.feeds;
    const active = (await feeds.state('pushed')).websub!;
    await feeds.setWebSub('pushed', { ...active, status: 'pending', leaseUntil: null, requestedAt: clock.now() });
    try {
      const forged = await t.herald.web.inject({ method: 'GET', url: `/websub/pushed?hub.mode=denied&hub.topic=${encodeURIComponent(feedUrl)}` });
      expect((await feeds.state('pushed')).websub?.status).toBe('pending');
      expect(forged.statusCode).toBe(404);
      const u = new URL(hub.subscriptions[0]!.callback);
      for (const [k, v] of Object.entries({ 'hub.mode': 'subscribe', 'hub.topic': feedUrl, 'hub.challenge': 'c-1', 'hub.lease_seconds': '86400' })) u.searchParams.set(k, v);
      const verified = await t.herald.web.inject({ method: 'GET', url: u.pathname + u.search });
      expect([verified.statusCode, verified.body]).toEqual([200, 'c-1']);
    } finally {
      await feeds.setWebSub('pushed', active);
      await feeds.scheduleNext('pushed', clock.now() + 7_200_000);
    }
  });

  it('a paused feed takes no pushed items until it is resumed', async () => {
    // The operator paused it (a feed spewing spam, say): the hub keeps delivering until its lease ends.
    const feeds = t.herald.stores.feeds;
    await feeds.pause('pushed', clock.now());
    try {
      const r = await hub.publish(hub.subscriptions[0]!, atom(hub.url, feedUrl, [{ id: 'while-paused', title: 'Delivered while paused' }]));
      expect(r).toEqual({ status: 202, body: { accepted: false } });
      await t.waitIdle();
      expect(await t.herald.stores.stories.get(storyIdFor('pushed', 'while-paused'))).toBeNull();
    } finally {
      await feeds.resume('pushed', clock.now());
      await feeds.scheduleNext('pushed', clock.now() + 7_200_000);
    }
  });

  it('renews the lease before it ends', async () => {
    expect(hub.requests()).toBe(1);
    clock.advance(86_400_000 - 6 * 3_600_000);
    await poll();
    await until(() => hub.requests() === 2 && hub.subscriptions[0]?.verified === true);
    expect(hub.requests()).toBe(2);
    const state = await t.herald.stores.feeds.state('pushed');
    expect(state.websub?.leaseUntil).toBe(clock.now() + 86_400_000);
  });

  it('the hub\'s own denial, at the callback it was given, ends the subscription: polling takes over at once', async () => {
    expect(await hub.deny(hub.subscriptions[0]!, 'publisher revoked it')).toBe(200);
    const state = await t.herald.stores.feeds.state('pushed');
    expect(state.websub).toMatchObject({ status: 'denied', leaseUntil: null, reason: 'publisher revoked it' });
    expect(state.nextCheckAt).toBe(clock.now());
  });
});

describe('WebSub pure parts', () => {
  it('X-Hub-Signature: sha1 and sha256 accepted, anything else refused', () => {
    const body = Buffer.from('<feed/>');
    const sig = (algo: string) => `${algo}=${createHmac(algo, 's3cret').update(body).digest('hex')}`;
    expect(verifySignature('s3cret', body, sig('sha1'))).toBe(true);
    expect(verifySignature('s3cret', body, sig('sha256'))).toBe(true);
    expect(verifySignature('other', body, sig('sha256'))).toBe(false);
    expect(verifySignature('s3cret', Buffer.from('<feed>changed</feed>'), sig('sha256'))).toBe(false);
    expect(verifySignature('s3cret', body, 'md5=abcd')).toBe(false);
    expect(verifySignature('s3cret', body, undefined)).toBe(false);
  });

  it('when to (re)subscribe', () => {
    const now = 1_000_000_000_000;
    const active = { hub: 'h', topic: 't', secret: 's', status: 'active' as const, leaseUntil: now + 5 * 86_400_000, requestedAt: now };
    expect(needsSubscription(null, { hub: 'h', topic: 't' }, now, 864000)).toBe(true);
    expect(needsSubscription(active, { hub: 'h', topic: 't' }, now, 864000)).toBe(false);
    expect(needsSubscription({ ...active, leaseUntil: now + 3_600_000 }, { hub: 'h', topic: 't' }, now, 864000)).toBe(true);
    expect(needsSubscription(active, { hub: 'other', topic: 't' }, now, 864000)).toBe(true);
    expect(needsSubscription({ ...active, status: 'pending' }, { hub: 'h', topic: 't' }, now + 60_000, 864000)).toBe(false);
  });
});

describe('WebSub: a hub that redirects the subscription request', () => {
  const clock = manualClock('2027-01-13T10:00:00Z');
  let hub: Awaited<ReturnType<typeof startLocalHub>>;
  let site: FixtureServer;
  let t: TestHerald;

  beforeAll(async () => {
    hub = await startLocalHub();
    site = await startFixtureServer();
    // The feed names a hub address that has moved: 307 (temporary) for one feed, 308 (permanent) for the other.
    for (const status of [307, 308]) {
      site.set(`/hub-${status}`, { status, headers: { location: hub.url }, body: '' });
      site.set(`/feed-${status}.xml`, { headers: { 'content-type': 'application/atom+xml' }, body: atom(site.url(`/hub-${status}`), site.url(`/feed-${status}.xml`), [{ id: `r${status}`, title: 'Entry' }]) });
    }
    t = await startTestHerald({
      name: 'websub-redirect', clock, smtpUrl: 'smtp://127.0.0.1:1',
      feeds: [{ id: 'via-307', url: site.url('/feed-307.xml') }, { id: 'via-308', url: site.url('/feed-308.xml') }],
      env: { HERALD_WEBSUB_FALLBACK_POLL_SECONDS: '7200', HERALD_WEBSUB_LEASE_SECONDS: '86400' },
    });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await Promise.all([hub?.close(), site?.close()]);
  });

  it('follows a 307 or 308 to the hub it names (websub.rocks 203, 204) instead of taking it for a refusal', async () => {
    for (const id of ['via-307', 'via-308']) await t.herald.enqueue('FeedFetch', { feedId: id }, { jobId: `fetch-${id}` });
    await t.waitIdle();
    for (let i = 0; i < 100 && !(hub.subscriptions.length === 2 && hub.subscriptions.every((s) => s.verified)); i++) await new Promise((r) => setTimeout(r, 50));
    expect(hub.subscriptions.map((s) => [s.topic, s.verified]).sort()).toEqual([[site.url('/feed-307.xml'), true], [site.url('/feed-308.xml'), true]]);
    for (const id of ['via-307', 'via-308']) expect((await t.herald.stores.feeds.state(id)).websub).toMatchObject({ status: 'active' });
  });
});

describe('WebSub: a hub that grants a lease shorter than the fallback poll interval', () => {
  const clock = manualClock('2027-01-14T10:00:00Z');
  let hub: Awaited<ReturnType<typeof startLocalHub>>;
  let site: FixtureServer;
  let t: TestHerald;

  beforeAll(async () => {
    // Asked for a day, granted an hour; the fallback poll, which renews the lease, every two hours.
    hub = await startLocalHub({ grantLeaseSeconds: 3600 });
    site = await startFixtureServer();
    const feedUrl = site.url('/short.xml');
    site.set('/short.xml', { headers: { 'content-type': 'application/atom+xml' }, body: atom(hub.url, feedUrl, [{ id: 's1', title: 'Short lease entry' }]) });
    t = await startTestHerald({
      name: 'websub-short-lease', clock, smtpUrl: 'smtp://127.0.0.1:1', feeds: [{ id: 'short', url: feedUrl }],
      env: { HERALD_WEBSUB_FALLBACK_POLL_SECONDS: '7200', HERALD_WEBSUB_LEASE_SECONDS: '86400' },
    });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await Promise.all([hub?.close(), site?.close()]);
  });

  it('polls again, and so renews, before the lease ends, not at the fallback interval after it', async () => {
    const poll = async () => {
      await t.herald.enqueue('FeedFetch', { feedId: 'short' }, { jobId: `fetch-short-${clock.now()}` });
      await t.waitIdle();
    };
    await poll();
    for (let i = 0; i < 100 && hub.subscriptions[0]?.verified !== true; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await t.herald.stores.feeds.state('short')).websub).toMatchObject({ status: 'active', leaseUntil: clock.now() + 3_600_000 });
    // A poll while the lease is active: the next one before the lease's end, with time to renew.
    clock.set('2027-01-14T10:05:00Z');
    await poll();
    const state = await t.herald.stores.feeds.state('short');
    const leaseUntil = state.websub!.leaseUntil!;
    // Before: now + 2 h, an hour after the hub stopped pushing, so updates of that hour waited for the poll.
    expect(state.nextCheckAt).toBeLessThan(leaseUntil);
    expect(state.nextCheckAt).toBeGreaterThanOrEqual(clock.now() + 300_000);
  });
});

describe('WebSub: a hub that verifies without hub.lease_seconds, and a delivery over the size limit', () => {
  const clock = manualClock('2027-01-15T10:00:00Z');
  let hub: Awaited<ReturnType<typeof startLocalHub>>;
  let site: FixtureServer;
  let t: TestHerald;
  let feedUrl: string;
  const poll = async () => {
    await t.herald.enqueue('FeedFetch', { feedId: 'lax' }, { jobId: `fetch-lax-${clock.now()}` });
    await t.waitIdle();
  };

  beforeAll(async () => {
    hub = await startLocalHub({ omitLeaseSeconds: true });
    site = await startFixtureServer();
    feedUrl = site.url('/lax.xml');
    site.set('/lax.xml', { headers: { 'content-type': 'application/atom+xml' }, body: atom(hub.url, feedUrl, [{ id: 'l1', title: 'Lax hub entry' }]) });
    t = await startTestHerald({
      name: 'websub-lax', clock, smtpUrl: 'smtp://127.0.0.1:1', feeds: [{ id: 'lax', url: feedUrl }],
      env: { HERALD_WEBSUB_FALLBACK_POLL_SECONDS: '7200', HERALD_WEBSUB_LEASE_SECONDS: '864000', HERALD_FETCH_MAX_BYTES: '8192' },
    });
    await poll();
    for (let i = 0; i < 100 && hub.subscriptions[0]?.verified !== true; i++) await new Promise((r) => setTimeout(r, 50));
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await Promise.all([hub?.close(), site?.close()]);
  });

  it('takes a verification without hub.lease_seconds as granting the lease asked for: later polls do not subscribe again', async () => {
    expect(hub.subscriptions[0]).toMatchObject({ verified: true });
    // Before: no lease meant leaseUntil null, which every poll took for a lapsed lease and subscribed again.
    expect((await t.herald.stores.feeds.state('lax')).websub).toMatchObject({ status: 'active', leaseUntil: clock.now() + 864_000_000 });
    clock.advance(2 * 3_600_000);
    await poll();
    expect(hub.requests()).toBe(1);
  });

  it('answers a delivery over the size limit with its own 202 saying so, and brings the next poll forward so nothing is lost', async () => {
    clock.advance(10 * 60_000);
    const entries = [{ id: 'l2', title: 'Entry of the too large delivery' }];
    site.set('/lax.xml', { headers: { 'content-type': 'application/atom+xml' }, body: atom(hub.url, feedUrl, entries) });
    const big = atom(hub.url, feedUrl, [...entries, { id: 'filler', title: 'x'.repeat(20_000) }]);
    const r = await hub.publish(hub.subscriptions[0]!, big);
    // Before: Fastify's generic 413, which the hub takes for a failure and retries with the same body.
    expect(r).toMatchObject({ status: 202, body: { accepted: false, error: 'too-large' } });
    expect(String(r.body.message)).toContain('8192');
    const state = await t.herald.stores.feeds.state('lax');
    expect(state.nextCheckAt).toBeLessThanOrEqual(clock.now());
    expect(await t.herald.stores.feeds.due(clock.now(), 100)).toContain('lax');
    await poll();
    expect(await t.herald.stores.stories.get(storyIdFor('lax', 'l2'))).toMatchObject({ title: 'Entry of the too large delivery' });
  });
});
