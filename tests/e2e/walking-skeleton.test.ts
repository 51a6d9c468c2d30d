import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualClock } from '../helpers/clock.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startPushService, type LocalPushService, type PushDevice } from '../helpers/push-server.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { confirmationLink, followConfirmation, isAccountMail, webClient } from '../helpers/web-client.ts';

/**
 * One real story from a real feed (served over HTTP) to a real push (decrypted by a local push service),
 * a real email (received by an SMTP server) and a daily digest at 08:00 in Kolkata.
 */
describe('walking skeleton: feed to push, email and digest', () => {
  // 00:00 UTC is 05:30 in Kolkata: before C's 08:00 digest.
  const clock = manualClock('2027-01-15T00:00:00Z');
  let feeds: FixtureServer;
  let push: LocalPushService;
  let smtp: SmtpSink;
  let t: TestHerald;
  let deviceA: PushDevice;
  const tokens: Record<string, string> = {};

  // Each new subscriber signs up from its own "browser" (cookie jar and CSRF token); later calls use the bearer token.
  const api = async (path: string, init: { method?: string; body?: unknown; token?: string } = {}) => webClient(t.baseUrl).api(path, init);
  /** Alerts and digests only: the confirmation and manage-link emails are not what this test counts. */
  const alertMails = (address: string) => smtp.to(address).filter((m) => !isAccountMail(m));
  const confirm = async (address: string) => {
    const done = await followConfirmation(confirmationLink(smtp.to(address)));
    expect(done.status).toBe(200);
  };
  const storyTitle = 'India and Japan foreign ministers hold talks in Tokyo on Quad and UN reform';
  const storyUrl = 'https://wire.example.test/world/india-japan-foreign-ministers-tokyo?utm_source=rss';
  const cricketTitle = 'Kerala beat Karnataka by six wickets in Ranji Trophy thriller';
  const pollFeed = async () => {
    await t.herald.enqueue('FeedFetch', { feedId: 'wire' }, { jobId: `fetch-wire-${clock.now()}` });
    await t.waitIdle();
  };

  beforeAll(async () => {
    feeds = await startFixtureServer({ '/wire.xml': { file: 'feeds/india-japan.xml' } });
    push = await startPushService();
    smtp = await startSmtpSink();
    t = await startTestHerald({
      name: 'e2e',
      clock,
      smtpUrl: smtp.url,
      pushCa: push.ca,
      pushOrigin: push.origin,
      feeds: [{ id: 'wire', url: feeds.url('/wire.xml'), title: 'Test wire' }],
    });

    const a = await api('/api/subscribers', { method: 'POST', body: { topics: { japan: { cadence: 'instant', channels: ['push'] } } } });
    expect(a.status).toBe(201);
    tokens.a = a.body.token;
    deviceA = push.newDevice();
    expect((await api('/api/me/push-subscriptions', { method: 'POST', body: deviceA.subscription, token: tokens.a })).status).toBe(201);

    const b = await api('/api/subscribers', { method: 'POST', body: { email: 'b@example.test', topics: { japan: { cadence: 'instant', channels: ['email'] } } } });
    const c = await api('/api/subscribers', {
      method: 'POST',
      body: { email: 'c@example.test', timeZone: 'Asia/Kolkata', digestTime: '08:00', topics: { japan: { cadence: 'daily', channels: [] } } },
    });
    const d = await api('/api/subscribers', { method: 'POST', body: { email: 'd@example.test', topics: { cricket: { cadence: 'instant', channels: ['email'] } } } });
    for (const [k, r] of Object.entries({ b, c, d })) {
      expect(r.status).toBe(201);
      tokens[k] = r.body.token;
    }
    // Double opt-in: nothing but the confirmation reaches an address until its link is opened.
    expect(c.body.nextDigestAt).toBeNull();
    for (const address of ['b@example.test', 'c@example.test', 'd@example.test']) await confirm(address);
    expect((await api('/api/me', { token: tokens.c })).body.nextDigestAt).toBe('2027-01-15T02:30:00.000Z');

    await pollFeed();
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await Promise.all([feeds?.close(), push?.close(), smtp?.close()]);
  });

  it('A gets exactly one decrypted push with the story title and URL', () => {
    const forA = push.received.filter((p) => p.deviceId === deviceA.id);
    expect(forA).toHaveLength(1);
    expect(forA[0]!.payload.title).toBe(storyTitle);
    expect(forA[0]!.payload.url).toBe(storyUrl);
    expect(forA[0]!.payload.topic).toBe('Japan');
    expect(forA[0]!.payload.why).toBe('Matched: Japan in title, Tokyo in title, Japanese in summary');
    // An explicit TTL, never the library's four-week default.
    expect(Number(forA[0]!.headers.ttl)).toBeLessThanOrEqual(24 * 3600);
  });

  it('B gets exactly one email with the title, the link and a working unsubscribe link', async () => {
    const mails = alertMails('b@example.test');
    expect(mails).toHaveLength(1);
    const mail = mails[0]!;
    expect(mail.subject).toContain(storyTitle);
    expect(mail.text).toContain(storyUrl);
    expect(mail.html).toContain(`href="${storyUrl.replace(/&/g, '&amp;')}"`);
    const headerLines = mail.headerLines.map((h) => h.line.replace(/\r?\n\s+/g, ' '));
    expect(headerLines).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    const oneClick = /^List-Unsubscribe: <(\S+)>$/.exec(headerLines.find((l) => l.startsWith('List-Unsubscribe:')) ?? '')?.[1];

    const link = /Stop Japan alerts: (\S+)/.exec(mail.text ?? '')?.[1];
    expect(link).toBeDefined();
    expect(oneClick).toBe(link);
    const page = await fetch(link!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<button type="submit">Unsubscribe</button>');
    const done = await fetch(link!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    expect(done.status).toBe(200);
    const me = await api('/api/me', { token: tokens.b });
    expect(me.body.topics.japan).toBeUndefined();

    const forged = await fetch(link!.replace(/sig=[^&]+/, 'sig=AAAA'), { method: 'POST' });
    expect(forged.status).toBe(400);
  });

  it('D gets the cricket story and never the Japan one', () => {
    const mails = alertMails('d@example.test');
    expect(mails.map((m) => m.subject)).toEqual([`Cricket: ${cricketTitle}`]);
  });

  it('C gets nothing before 08:00 in Kolkata, then exactly one digest holding the story', async () => {
    expect(alertMails('c@example.test')).toHaveLength(0);
    clock.set('2027-01-15T02:29:00Z'); // 07:59 IST
    await t.herald.enqueue('DigestTick', {});
    await t.waitIdle();
    expect(alertMails('c@example.test')).toHaveLength(0);

    clock.set('2027-01-15T02:31:00Z'); // 08:01 IST
    await t.herald.enqueue('DigestTick', {});
    await t.waitIdle();
    await t.herald.enqueue('DigestTick', {});
    await t.waitIdle();
    const digests = alertMails('c@example.test');
    expect(digests).toHaveLength(1);
    expect(digests[0]!.subject).toContain('2027-01-15');
    expect(digests[0]!.text).toContain(storyTitle);
    expect(digests[0]!.text).toContain(storyUrl);
    expect(digests[0]!.text).not.toContain(cricketTitle);
    const me = await api('/api/me', { token: tokens.c });
    expect(me.body.nextDigestAt).toBe('2027-01-16T02:30:00.000Z');
  });

  it("C's digest has a working one-click stop link for its topic", async () => {
    const digest = smtp.to('c@example.test').find((m) => m.subject?.startsWith('Your Herald digest'));
    const stop = /\(Stop Japan emails: (\S+)\)/.exec(digest?.text ?? '')?.[1];
    expect(stop).toBeDefined();
    const done = await fetch(stop!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    expect(done.status).toBe(200);
    const me = await api('/api/me', { token: tokens.c });
    expect(me.body.topics.japan).toBeUndefined();
    expect(me.body.nextDigestAt).toBeNull();
  });

  it('polling the same feed again sends nothing new', async () => {
    const before = { push: push.received.length, mail: smtp.mails.length };
    clock.advance(60 * 60 * 1000);
    await pollFeed();
    expect(feeds.hits('/wire.xml')).toBe(2);
    expect(push.received.length).toBe(before.push);
    expect(smtp.mails.length).toBe(before.mail);
  });
});
