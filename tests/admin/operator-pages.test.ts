import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sameOriginWrite } from '../../src/web/admin/routes.ts';
import { runTraceCommand } from '../../src/ops/trace-cli.ts';
import { manualClock } from '../helpers/clock.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { createReader } from '../helpers/readers.ts';
import { startPushService, type LocalPushService } from '../helpers/push-server.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { workerEnv } from '../helpers/worker-env.ts';

const ADMIN = 'test-admin-token-0123456789abcdef';
const bearer = { authorization: `Bearer ${ADMIN}` };
const basic = { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` };
const STORY_URL = 'https://wire.example.test/world/india-japan-foreign-ministers-tokyo?utm_source=rss';
const DAY = 86_400_000;

describe('same-origin check of console writes', () => {
  it.each([
    ['GET', {}, true],
    ['POST', { authorization: 'Bearer x' }, true],
    ['POST', { authorization: 'Basic x', origin: 'http://127.0.0.1:8080', host: '127.0.0.1:8080' }, true],
    ['POST', { authorization: 'Basic x', origin: 'https://evil.example', host: '127.0.0.1:8080' }, false],
    ['POST', { authorization: 'Basic x', host: '127.0.0.1:8080' }, false],
    ['POST', { authorization: 'Basic x', origin: 'null', host: '127.0.0.1:8080' }, false],
    ['POST', { authorization: 'Basic x', origin: 'null', host: '127.0.0.1:8080', 'sec-fetch-site': 'same-origin' }, true],
    ['POST', { authorization: 'Basic x', origin: 'null', host: '127.0.0.1:8080', 'sec-fetch-site': 'cross-site' }, false],
    ['POST', { authorization: 'Basic x', origin: 'http://127.0.0.1:8080', host: '127.0.0.1:8080', 'sec-fetch-site': 'same-site' }, false],
  ] as const)('%s %j -> %s', (method, headers, ok) => {
    expect(sameOriginWrite(method, headers)).toBe(ok);
  });
});

describe('operator console: feeds, topics, trace, ledger', () => {
  const clock = manualClock('2027-01-15T06:00:00Z');
  let feeds: FixtureServer;
  let smtp: SmtpSink;
  let push: LocalPushService;
  let t: TestHerald;
  let a: string;
  let b: string;
  let c: string;
  let d: string;
  const get = (path: string, headers: Record<string, string> = bearer) => fetch(`${t.baseUrl}${path}`, { headers });
  /** A form post as the browser sends it from a console page: Basic credentials and this origin. */
  const post = (path: string, form: Record<string, string> = {}, headers: Record<string, string> = { ...basic, origin: t.baseUrl }) =>
    fetch(`${t.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() });

  beforeAll(async () => {
    feeds = await startFixtureServer({
      '/wire.xml': { file: 'feeds/india-japan.xml' },
      '/broken.xml': { status: 500, body: 'database on fire' },
      '/page.html': { body: '<html><body>not a feed</body></html>', headers: { 'content-type': 'text/html' } },
      '/hostile.xml': {
        body: '<?xml version="1.0"?><rss version="2.0"><channel><title>Hostile</title><item><title>Click me</title><link>javascript:alert(document.domain)</link><guid>h1</guid></item></channel></rss>',
        headers: { 'content-type': 'application/rss+xml' },
      },
    });
    smtp = await startSmtpSink();
    push = await startPushService();
    t = await startTestHerald({
      name: 'console-pages', clock, smtpUrl: smtp.url, pushCa: push.ca, pushOrigin: push.origin,
      feeds: [{ id: 'wire', url: feeds.url('/wire.xml'), title: 'Test wire' }, { id: 'broken', url: feeds.url('/broken.xml') }],
    });
    const subs = t.herald.stores.subscribers;
    a = (await createReader(subs, { email: 'a@example.test' }, clock.now())).id;
    await subs.setFollows(a, { japan: { cadence: 'instant', channels: ['email'] } });
    b = (await createReader(subs, { email: 'b@example.test' }, clock.now())).id;
    await subs.setFollows(b, { japan: { cadence: 'instant', channels: ['email'], mutedUntil: clock.now() + 7 * DAY } });
    c = (await createReader(subs, {}, clock.now())).id;
    await subs.setFollows(c, { japan: { cadence: 'daily', channels: [] } });
    // Quiet hours 05:00-07:00 in UTC cover the poll at 06:00: the push dispatcher holds the alert.
    d = (await createReader(subs, {}, clock.now())).id;
    await subs.setFollows(d, { japan: { cadence: 'instant', channels: ['push'] } });
    await subs.addPushSubscription(d, push.newDevice().subscription, clock.now());
    await subs.setPrefs(d, { quietHours: { from: '05:00', to: '07:00' }, breakingThroughQuiet: false }, clock.now());
    // "Check now" from the console is how this test polls.
    expect((await post('/admin/feeds/wire/check')).status).toBe(200);
    expect((await post('/admin/feeds/broken/check')).status).toBe(422);
    // Not t.waitIdle(): the held push leaves its bundle job delayed until quiet hours end.
    for (let quiet = 0; quiet < 2; ) {
      const counts = await Promise.all(Object.values(t.herald.queues).map((q) => q.getJobCounts('waiting', 'active', 'prioritized')));
      quiet = counts.every((c) => Object.values(c).every((n) => n === 0)) ? quiet + 1 : 0;
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await Promise.all([feeds?.close(), smtp?.close(), push?.close()]);
  });

  it.each([
    ['GET', '/admin/feeds'], ['GET', '/admin/topics'], ['GET', '/admin/topics/japan'], ['GET', '/admin/trace?subscriber=a%40example.test&story=x'],
    ['GET', '/admin/ledger'], ['GET', '/admin/ledger/export?format=json'], ['GET', '/api/feeds'],
    ['POST', '/admin/feeds'], ['POST', '/admin/feeds/wire/pause'], ['POST', '/admin/topics/japan/backtest'],
  ])('%s %s answers 401 without the admin token and leaks nothing', async (method, path) => {
    const res = await fetch(`${t.baseUrl}${path}`, { method, headers: method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded', origin: t.baseUrl } : {} });
    expect(res.status).toBe(401);
    expect(await res.text()).toBe('{"error":"admin token required"}');
  });

  it('the feeds page shows a failing feed in red with its error, a healthy one with its new stories', async () => {
    const html = await (await get('/admin/feeds')).text();
    const broken = html.match(/<tr data-feed="broken"[^]*?<\/tr>/)![0];
    expect(broken).toContain('class="bad"');
    expect(broken).toContain('data-status="failing"');
    expect(broken).toMatch(/http-status: HTTP 500/);
    const wire = html.match(/<tr data-feed="wire"[^]*?<\/tr>/)![0];
    expect(wire).not.toContain('class="bad"');
    expect(wire).toContain('data-status="ok"');
    expect(wire).toContain('last 7 days: 0, 0, 0, 0, 0, 0, 2');
    expect(wire).toContain('2 in 7 days');
  });

  it('the feed health API answers behind the admin token', async () => {
    const body = (await (await get('/api/feeds')).json()) as { feeds: { id: string; status: string }[] };
    expect(body.feeds.map((f) => [f.id, f.status])).toEqual([['broken', 'failing'], ['wire', 'ok']]);
  });

  it('refuses a cross-site or origin-less console write made with browser credentials, and changes nothing', async () => {
    for (const headers of [{ ...basic, origin: 'https://evil.example' }, { ...basic }, { ...basic, origin: t.baseUrl, 'sec-fetch-site': 'cross-site' }]) {
      const res = await post('/admin/feeds/wire/pause', {}, headers);
      expect(res.status).toBe(403);
    }
    expect((await t.herald.stores.feeds.state('wire')).disabledAt).toBeNull();
  });

  it('pauses and resumes a feed: paused feeds leave the schedule', async () => {
    const paused = await post('/admin/feeds/wire/pause');
    expect(paused.status).toBe(200);
    expect(await paused.text()).toContain('Paused wire');
    expect(await t.herald.stores.feeds.due(clock.now() + 365 * DAY, 100)).not.toContain('wire');
    const page = await (await get('/admin/feeds')).text();
    expect(page).toMatch(/<tr data-feed="wire" data-status="paused">/);
    const checked = await post('/admin/feeds/wire/check');
    expect(checked.status).toBe(422);
    expect(await checked.text()).toContain('wire is paused: resume it to check it');
    expect((await post('/admin/feeds/wire/resume')).status).toBe(200);
    expect(await t.herald.stores.feeds.due(clock.now(), 100)).toContain('wire');
    expect((await t.herald.stores.feeds.state('wire')).disabledAt).toBeNull();
  });

  it('adding a feed fetches it once and shows what the poller saw; a page that is not a feed is refused and nothing is added', async () => {
    const bad = await post('/admin/feeds', { url: feeds.url('/page.html'), id: 'page' });
    expect(bad.status).toBe(422);
    const badHtml = await bad.text();
    expect(badHtml).toContain('feed not added');
    expect(badHtml).toContain(`value="${feeds.url('/page.html')}"`);
    expect(await t.herald.stores.feeds.get('page')).toBeNull();

    const invalid = await post('/admin/feeds', { url: 'ftp://example.test/feed', id: 'ftp' });
    expect(invalid.status).toBe(400);
    expect(await t.herald.stores.feeds.get('ftp')).toBeNull();

    const taken = await post('/admin/feeds', { url: feeds.url('/wire.xml'), id: 'wire' });
    expect(taken.status).toBe(409);

    const good = await post('/admin/feeds', { url: feeds.url('/wire.xml'), id: 'wire-copy', title: 'Copy' });
    expect(good.status).toBe(201);
    const html = await good.text();
    expect(html).toContain('a rss2.0 feed “Herald Test Wire” with 2 items');
    expect(html).toContain('India and Japan foreign ministers hold talks in Tokyo');
    expect(await t.herald.stores.feeds.get('wire-copy')).toMatchObject({ url: feeds.url('/wire.xml'), title: 'Copy' });

    // A feed's javascript: link is shown as text, never as a link on the console.
    const hostile = await (await post('/admin/feeds', { url: feeds.url('/hostile.xml'), id: 'hostile' })).text();
    expect(hostile).toContain('Click me');
    expect(hostile).not.toContain('javascript:');
    expect((await post('/admin/feeds/hostile/remove')).status).toBe(200);

    expect((await post('/admin/feeds/wire-copy/remove')).status).toBe(200);
    expect(await t.herald.stores.feeds.get('wire-copy')).toBeNull();
    expect((await post('/admin/feeds/nope/pause')).status).toBe(404);
    expect((await post('/admin/feeds/wire/explode')).status).toBe(404);
  });

  it('the topics page shows followers per cadence and matches per day', async () => {
    const html = await (await get('/admin/topics')).text();
    const japan = html.match(/<tr data-topic="japan">[^]*?<\/tr>/)![0];
    expect(japan).toContain('<td data-k="instant">3</td>');
    expect(japan).toContain('<td data-k="daily">1</td>');
    expect(japan).toContain('<td data-k="week">1</td>');
    expect(html).toContain('Matches per day (the six busiest topics)');
    const cricket = html.match(/<tr data-topic="cricket">[^]*?<\/tr>/)![0];
    expect(cricket).toContain('<td data-k="week">1</td>');
    expect(cricket).toContain('<td data-k="instant">0</td>');
  });

  it('backtests an edited topic query before it is saved, and explains a query that does not compile', async () => {
    const res = await post('/admin/topics/japan/backtest', { query: 'Karnataka' });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toMatch(/data-k="current">Current query: <strong>1<\/strong> of 2 recent stories matched/);
    expect(html).toMatch(/data-k="edited">Edited query: <strong>1<\/strong> of 2 recent stories matched/);
    expect(html).toContain('Kerala beat Karnataka by six wickets');

    const broken = await post('/admin/topics/japan/backtest', { query: '(japan AND' });
    expect(broken.status).toBe(400);
    const text = await broken.text();
    expect(text).toContain('the edited query does not compile');
    expect(text).toContain('(japan AND</textarea>');
    expect((await post('/admin/topics/nope/backtest', { query: 'x' })).status).toBe(404);
  });

  it('traces a delivered alert: matched topic and why, and what the email channel answered', async () => {
    const res = await get(`/admin/trace?subscriber=a%40example.test&story=${encodeURIComponent(STORY_URL)}&format=json`);
    expect(res.status).toBe(200);
    const trace = (await res.json()) as { story: { title: string }; matches: { topicId: string; follow: string; why: string }[]; channels: { channel: string; outcome: string; explanation: string }[] };
    expect(trace.story.title).toContain('India and Japan foreign ministers');
    const japan = trace.matches.find((m) => m.topicId === 'japan')!;
    expect(japan.follow).toBe('instant by email');
    expect(japan.why).toMatch(/Japan|Tokyo/);
    const email = trace.channels.find((c) => c.channel === 'email')!;
    expect(email.outcome).toBe('sent');
    expect(email.explanation).toMatch(/^sent at 2027-01-15T06:00:00.000Z after 1 attempt$/);
    expect(trace.channels.find((c) => c.channel === 'push')!.explanation).toBe('no alert: channel not chosen: the reader gets "Japan" by email only');
  });

  it('traces a suppressed alert with its exact reason (muted), on the page too', async () => {
    const html = await (await get(`/admin/trace?subscriber=b%40example.test&story=${encodeURIComponent(STORY_URL)}`)).text();
    expect(html).toMatch(/<li data-channel="email" data-outcome="none" class="warn"><strong>email<\/strong>: no alert: muted until 2027-01-22T06:00:00.000Z<\/li>/);
    const storyId = ((await (await get(`/admin/trace?subscriber=${b}&story=${encodeURIComponent(STORY_URL)}&format=json`)).json()) as { story: { id: string } }).story.id;
    // By id works as well as by URL; a daily follower is told the story goes to the digest.
    const daily = (await (await get(`/admin/trace?subscriber=${c}&story=${storyId}&format=json`)).json()) as { channels: { explanation: string }[] };
    expect(daily.channels.map((x) => x.explanation)).toEqual([
      'no alert: followed daily: goes into the digest, no instant alert',
      'no alert: followed daily: goes into the digest, no instant alert',
    ]);
    const missing = await get(`/admin/trace?subscriber=nobody%40example.test&story=${storyId}`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('no subscriber has the confirmed address nobody@example.test');
    const noStory = await get(`/admin/trace?subscriber=${a}&story=${encodeURIComponent('https://wire.example.test/nothing')}`);
    expect(noStory.status).toBe(404);
  });

  it('traces a push held by quiet hours as the push dispatcher recorded it', async () => {
    const trace = (await (await get(`/admin/trace?subscriber=${d}&story=${encodeURIComponent(STORY_URL)}&format=json`)).json()) as { channels: { channel: string; outcome: string; explanation: string }[] };
    expect(trace.channels.map((x) => `${x.channel}: ${x.outcome}: ${x.explanation}`)).toEqual([
      'push: held: held since 2027-01-15T06:00:00.000Z: quiet hours (05:00–07:00 local); goes out with the bundle when the hold ends',
      'email: none: no alert: channel not chosen: the reader gets "Japan" by push only',
    ]);
    expect(push.received).toHaveLength(0);
  });

  it('exports the delivery ledger of a time range as CSV and JSON', async () => {
    const csv = await get('/admin/ledger/export?from=2027-01-15T00:00:00Z&to=2027-01-16T00:00:00Z&format=csv');
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toContain('text/csv');
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines[0]).toBe('createdAt,updatedAt,subscriberId,storyId,channel,topicId,status,reason,attempts,reclaims,lastError,via,clickedAt');
    expect(lines).toHaveLength(3);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^2027-01-15T06:00:00.000Z,2027-01-15T06:00:00.000Z,${a},[0-9a-f]+,email,japan,sent,,1,0,,,$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^2027-01-15T06:00:00.000Z,2027-01-15T06:00:00.000Z,${d},[0-9a-f]+,push,japan,held,quiet-hours,1,0,,,$`)));

    const json = (await (await get('/admin/ledger/export?from=2027-01-15T00:00:00Z&to=2027-01-16T00:00:00Z&format=json')).json()) as { subscriberId: string; status: string }[];
    expect(json).toHaveLength(2);
    expect(json).toContainEqual(expect.objectContaining({ subscriberId: a, status: 'sent', channel: 'email' }));
    expect(json).toContainEqual(expect.objectContaining({ subscriberId: d, status: 'held', channel: 'push', reason: 'quiet-hours' }));
    const before = (await (await get('/admin/ledger/export?from=2027-01-14T00:00:00Z&to=2027-01-15T05:00:00Z&format=json')).json()) as unknown[];
    expect(before).toEqual([]);
    // The last: the earliest time JavaScript knows, whose day before is no date at all (it answered 500).
    for (const q of ['from=yesterday', 'format=xml', 'from=2027-01-16T00:00:00Z&to=2027-01-15T00:00:00Z', 'from=2026-01-01T00:00:00Z&to=2027-01-15T00:00:00Z', 'to=-271821-04-20T00:00:00Z', 'to=+275760-09-13T00:00:00Z']) {
      const res = await get(`/admin/ledger/export?${q}`);
      expect(res.status, q).toBe(400);
    }
  });

  it('herald trace prints the same trace, as JSON with --json; usage errors exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-trace-'));
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s), env: { ...workerEnv(t.prefix), HERALD_DATA_DIR: dir }, now: () => clock.now() };
    expect(await runTraceCommand(['--subscriber', 'a@example.test'], io)).toBe(2);
    expect(err.join('')).toContain('give both --subscriber and --story');
    expect(await runTraceCommand(['--bogus'], io)).toBe(2);

    expect(await runTraceCommand(['--subscriber', 'b@example.test', '--story', STORY_URL], io)).toBe(0);
    expect(out.join('')).toContain('email: none: no alert: muted until 2027-01-22T06:00:00.000Z');

    out.length = 0;
    expect(await runTraceCommand(['--subscriber', 'a@example.test', '--story', STORY_URL, '--json'], io)).toBe(0);
    const trace = JSON.parse(out.join('')) as { channels: { channel: string; outcome: string }[] };
    expect(trace.channels).toContainEqual(expect.objectContaining({ channel: 'email', outcome: 'sent' }));

    expect(await runTraceCommand(['--subscriber', 'nobody@example.test', '--story', STORY_URL], io)).toBe(1);

    // A Redis that does not answer is named without its password; cluster nodes, when configured, are the ones asked.
    err.length = 0;
    const env = { ...io.env, REDIS_URL: 'redis://:hunter2@127.0.0.1:1' };
    expect(await runTraceCommand(['--subscriber', 'a@example.test', '--story', STORY_URL], { ...io, env })).toBe(1);
    expect(err.join('')).toContain('Redis does not answer at redis://:***@127.0.0.1:1');
    expect(err.join('')).not.toContain('hunter2');
    err.length = 0;
    const clusterEnv = { ...io.env, REDIS_URL: undefined, REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2' };
    expect(await runTraceCommand(['--subscriber', 'a@example.test', '--story', STORY_URL], { ...io, env: clusterEnv })).toBe(1);
    expect(err.join('')).toContain('Redis does not answer at 127.0.0.1:1,127.0.0.1:2');
  });
});
