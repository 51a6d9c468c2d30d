import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confirmationLink, isAccountMail, manageLink, webClient } from '../helpers/web-client.ts';
import { manualClock } from '../helpers/clock.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startWebHarness, type WebHarness } from './harness.ts';

describe('identity without passwords', () => {
  let h: WebHarness;
  beforeAll(async () => {
    h = await startWebHarness('web-identity');
  });
  afterAll(async () => h?.close());

  it('creates a subscriber on first save with a 256-bit token in an HttpOnly SameSite=Lax cookie, stored only hashed', async () => {
    const c = webClient(h.t.baseUrl);
    await c.ensureCsrf();
    const res = await c.raw('/api/subscribers', { method: 'POST', body: { topics: { japan: { cadence: 'instant', channels: ['push'] } } } });
    expect(res.status).toBe(201);
    const token = res.body.token as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes
    const setCookie = res.headers.getSetCookie().find((s) => s.startsWith('herald_token='))!;
    expect(setCookie).toContain(`herald_token=${token}`);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    // The cookie alone (no bearer) reads the settings.
    expect((await c.api('/api/me')).body.topics.japan.cadence).toBe('instant');
    const dump = JSON.stringify(await h.snapshot());
    expect(dump).not.toContain(token);
  });

  it('answers 401 without a token and 403 for a forged one', async () => {
    expect((await webClient(h.t.baseUrl).api('/api/me')).status).toBe(401);
    const forged = await webClient(h.t.baseUrl).api('/api/me', { token: 'A'.repeat(43) });
    expect(forged.status).toBe(403);
    expect(forged.body.error).toMatch(/not valid/);
  });

  it('sends a "manage your alerts" link after confirmation that opens the settings on another device', async () => {
    const { token } = await h.newSubscriber({ email: 'Walker@Example.test', topics: { cricket: { cadence: 'daily', channels: [] } } });
    expect((await h.confirm('walker@example.test')).status).toBe(200);
    const link = manageLink(h.smtp.to('walker@example.test'));
    const device2 = webClient(h.t.baseUrl);
    const opened = await device2.raw(link.replace(h.t.baseUrl, ''));
    expect(opened.status).toBe(303);
    expect(opened.headers.get('location')).toBe('/');
    const me = await device2.api('/api/me');
    expect(me.status).toBe(200);
    expect(me.body.email).toBe('Walker@Example.test');
    // The new device has its own session: the first token still works too.
    expect(device2.jar.get('herald_token')).not.toBe(token);
    expect((await webClient(h.t.baseUrl).api('/api/me', { token })).status).toBe(200);
  });

  it('refuses an altered or unknown manage link with 403 and sets no cookie', async () => {
    for (const q of ['t=' + 'B'.repeat(43), 't=short', '']) {
      const c = webClient(h.t.baseUrl);
      const res = await c.raw(`/manage?${q}`);
      expect(res.status).toBe(403);
      expect(c.jar.has('herald_token')).toBe(false);
    }
  });

  it('lost link: the same answer for a known and an unknown address, and only the known one gets mail', async () => {
    await h.newSubscriber({ email: 'lost@example.test', topics: { cricket: { cadence: 'daily', channels: [] } } });
    await h.confirm('lost@example.test');
    const before = h.smtp.to('lost@example.test').length;
    const known = await webClient(h.t.baseUrl).api('/api/manage-link', { method: 'POST', body: { email: 'LOST@example.test' } });
    const unknown = await webClient(h.t.baseUrl).api('/api/manage-link', { method: 'POST', body: { email: 'nobody@example.test' } });
    expect(known.status).toBe(202);
    expect(unknown.status).toBe(known.status);
    expect(unknown.body).toEqual(known.body);
    await expect.poll(() => h.smtp.to('lost@example.test').length).toBe(before + 1);
    expect(h.smtp.to('nobody@example.test')).toHaveLength(0);
    expect(manageLink(h.smtp.to('lost@example.test'))).toContain('/manage?t=');
  });

  it('an unconfirmed address gets no link either (no enumeration of pending addresses)', async () => {
    await h.newSubscriber({ email: 'pending@example.test' });
    const res = await webClient(h.t.baseUrl).api('/api/manage-link', { method: 'POST', body: { email: 'pending@example.test' } });
    expect(res.status).toBe(202);
    await new Promise((r) => setTimeout(r, 200));
    expect(h.smtp.to('pending@example.test').filter((m) => m.subject !== 'Confirm your email address for Herald alerts')).toHaveLength(0);
  });
});

describe('email double opt-in', () => {
  let h: WebHarness;
  let feeds: FixtureServer;
  beforeAll(async () => {
    h = await startWebHarness('web-optin');
    feeds = await startFixtureServer({ '/wire.xml': { file: 'feeds/india-japan.xml' } });
  });
  afterAll(async () => {
    await h?.close();
    await feeds?.close();
  });

  it('sends nothing but the confirmation to an unconfirmed address, even when a matching story arrives', async () => {
    const { token, created } = await h.newSubscriber({ email: 'new@example.test', topics: { japan: { cadence: 'instant', channels: ['email'] } } });
    expect(created.email).toBeNull();
    expect(created.pendingEmail).toBe('new@example.test');
    await h.t.herald.stores.feeds.sync([{ id: 'wire', url: feeds.url('/wire.xml') }], h.clock.now());
    await h.t.herald.enqueue('FeedFetch', { feedId: 'wire' }, { jobId: 'fetch-wire-optin' });
    await h.t.waitIdle();
    expect(h.smtp.to('new@example.test').map((m) => m.subject)).toEqual(['Confirm your email address for Herald alerts']);
    const me = await webClient(h.t.baseUrl).api('/api/me', { token });
    expect(me.body.email).toBeNull();
  });

  it('confirms once; a replayed link answers 410 and changes nothing', async () => {
    const { token } = await h.newSubscriber({ email: 'once@example.test' });
    const first = await h.confirm('once@example.test');
    expect(first.status).toBe(200);
    expect(await first.text()).toContain('Your address is confirmed');
    // Change the address, then replay the old link: it must not bring the old address back.
    const c = webClient(h.t.baseUrl);
    await c.api('/api/me', { method: 'PUT', token, body: { email: 'twice@example.test' } });
    const before = await h.snapshot();
    const replay = await h.confirm('once@example.test');
    expect(replay.status).toBe(410);
    expect(await replay.text()).toContain('already used or has expired');
    expect(await h.snapshot()).toEqual(before);
    const me = await c.api('/api/me', { token });
    expect([me.body.email, me.body.pendingEmail]).toEqual(['once@example.test', 'twice@example.test']);
  });

  it('changing the address keeps the confirmed one until the new one is confirmed; removing forgets both', async () => {
    const { token } = await h.newSubscriber({ email: 'old@example.test' });
    await h.confirm('old@example.test');
    const c = webClient(h.t.baseUrl);
    const changed = await c.api('/api/me', { method: 'PUT', token, body: { email: 'fresh@example.test' } });
    expect([changed.body.email, changed.body.pendingEmail]).toEqual(['old@example.test', 'fresh@example.test']);
    // Saving the same pending address again sends no second confirmation.
    await c.api('/api/me', { method: 'PUT', token, body: { email: 'fresh@example.test' } });
    expect(h.smtp.to('fresh@example.test')).toHaveLength(1);
    await h.confirm('fresh@example.test');
    expect((await c.api('/api/me', { token })).body.email).toBe('fresh@example.test');
    const removed = await c.api('/api/me', { method: 'PUT', token, body: { email: null } });
    expect([removed.body.email, removed.body.pendingEmail]).toEqual([null, null]);
    // The lost-link index forgot the address too.
    await c.api('/api/manage-link', { method: 'POST', body: { email: 'fresh@example.test' } });
    await new Promise((r) => setTimeout(r, 200));
    expect(h.smtp.to('fresh@example.test').filter(isAccountMail).map((m) => m.subject)).toEqual(['Confirm your email address for Herald alerts', 'Your link to manage Herald alerts']);
  });

  it('opening the link (as mail scanners do) confirms nothing; only its button does', async () => {
    const { token } = await h.newSubscriber({ email: 'scanned@example.test' });
    const link = confirmationLink(h.smtp.to('scanned@example.test'));
    for (let i = 0; i < 2; i++) expect((await fetch(link)).status).toBe(200);
    const c = webClient(h.t.baseUrl);
    expect((await c.api('/api/me', { token })).body.email).toBeNull();
    expect((await fetch(link, { method: 'POST' })).status).toBe(200);
    expect((await c.api('/api/me', { token })).body.email).toBe('scanned@example.test');
    expect((await fetch(link)).status).toBe(410);
    expect((await fetch(link, { method: 'POST' })).status).toBe(410);
  });

  it('a confirmation link with a malformed token answers 400', async () => {
    expect((await fetch(`${h.t.baseUrl}/confirm-email?t=nope`)).status).toBe(400);
    expect((await fetch(`${h.t.baseUrl}/confirm-email`)).status).toBe(400);
    expect((await fetch(`${h.t.baseUrl}/confirm-email?t=nope`, { method: 'POST' })).status).toBe(400);
  });
});

describe('when the confirmation email cannot be sent', () => {
  let t: TestHerald;
  beforeAll(async () => {
    // Port 1 on loopback: nothing listens, so every send fails at once.
    t = await startTestHerald({ name: 'web-nosmtp', clock: manualClock('2027-01-15T00:00:00Z'), smtpUrl: 'smtp://127.0.0.1:1' });
  });
  afterAll(async () => t?.close());

  it('saves the settings, says the email failed, and "resend" answers 502 with the reason', async () => {
    const c = webClient(t.baseUrl);
    const res = await c.api('/api/subscribers', { method: 'POST', body: { email: 'later@example.test', topics: { cricket: { cadence: 'daily', channels: [] } } } });
    expect(res.status).toBe(201);
    expect(res.body.notice).toMatch(/^the confirmation email to later@example.test could not be sent/);
    expect(res.body.pendingEmail).toBe('later@example.test');
    expect(res.body.topics.cricket.cadence).toBe('daily');
    const resend = await c.api('/api/me/email/resend', { method: 'POST' });
    expect(resend.status).toBe(502);
    expect(resend.body.error).toMatch(/could not be sent/);
  });
});
