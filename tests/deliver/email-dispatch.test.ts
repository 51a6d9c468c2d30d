import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualClock } from '../helpers/clock.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startScriptedSmtp, type RecipientScript, type ScriptedSmtp } from './support/smtp.ts';
import { addSubscriber, enqueueAlert, makeStory, TOPICS } from './support/world.ts';
import { createReader } from '../helpers/readers.ts';
import { confirmationLink, followConfirmation } from '../helpers/web-client.ts';

/** Instant email through the real dispatcher and a pooled nodemailer transport to an in-process SMTP server. */
describe('email dispatch', () => {
  const clock = manualClock('2027-02-01T09:00:00Z');
  let smtp: ScriptedSmtp;
  let t: TestHerald;
  const dkimKey = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  const emailSubscriber = (email: string) => addSubscriber(t, clock.now(), { email, topics: { japan: { cadence: 'instant', channels: ['email'] } } });
  const newStory = async (patch: Parameters<typeof makeStory>[1] = {}) => {
    const story = makeStory(clock.now(), patch);
    await t.herald.stores.stories.put(story);
    return story;
  };
  const record = (sub: string, story: string) => t.herald.stores.ledger.get(sub, story, 'email');
  /** A reader following Japan by email, with the token that reads their emailStatus (hard bounces) from the API. */
  const emailReader = async (address: string) => {
    const reader = await createReader(t.herald.stores.subscribers, { email: address, timeZone: 'UTC', digestTime: '08:00' }, clock.now());
    await t.herald.stores.subscribers.setFollows(reader.id, { japan: { cadence: 'instant', channels: ['email'] } });
    return reader;
  };
  const emailStatus = async (token: string) => (await fetch(`${t.baseUrl}/api/me`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json())).emailStatus;

  beforeAll(async () => {
    smtp = await startScriptedSmtp();
    t = await startTestHerald({
      name: 'email', clock, smtpUrl: smtp.url, topics: TOPICS,
      env: { HERALD_DKIM_DOMAIN: 'example.test', HERALD_DKIM_SELECTOR: 'herald', HERALD_DKIM_PRIVATE_KEY: dkimKey, HERALD_EMAIL_HARD_BOUNCE_LIMIT: '2' },
    });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('sends one email: escaped HTML, the why-line, one-click unsubscribe, a Message-ID from the ledger key, DKIM-signed', async () => {
    const id = await emailSubscriber('reader@example.test');
    const story = await newStory({ title: 'Tokyo <script>alert(1)</script> & markets', summary: 'x'.repeat(100_000) });
    await enqueueAlert(t, 'email', id, story.id);
    await t.waitIdle();
    const mails = smtp.to('reader@example.test');
    expect(mails).toHaveLength(1);
    const m = mails[0]!;
    // The stored title is text (ingest made it so): as written in the subject, escaped in the HTML.
    expect(m.subject).toBe('Japan: Tokyo <script>alert(1)</script> & markets');
    expect(m.html).not.toContain('<script>');
    expect(m.text).toContain('Matched: japan (topic: Japan)');
    expect(m.text!.length).toBeLessThan(3000);
    expect(m.messageId).toBe(`<alert.${id}.${story.id}.email@127.0.0.1>`);
    const lines = m.headerLines.map((h) => h.line.replace(/\r?\n\s+/g, ' '));
    expect(lines).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    expect(lines.find((l) => l.startsWith('List-Unsubscribe:'))).toMatch(new RegExp(`^List-Unsubscribe: <http://127\\.0\\.0\\.1:\\d+/unsubscribe\\?s=${id}&t=japan&a=[\\w-]+&sig=[\\w-]+>$`));
    const raw = smtp.raw.find((r) => r.includes(`alert.${id}.`))!;
    expect(raw).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.test;\s+q=dns\/txt; s=herald;/m);
    expect(await record(id, story.id)).toMatchObject({ status: 'sent', attempts: 1 });
  });

  it('SMTP 451 and 421 are retried with backoff; the mail arrives once', async () => {
    const a = await emailSubscriber('busy451@example.test');
    const b = await emailSubscriber('busy421@example.test');
    smtp.script('busy451@example.test', { tempFail: 2, code: 451 });
    smtp.script('busy421@example.test', { tempFail: 1, code: 421 });
    const story = await newStory();
    await enqueueAlert(t, 'email', a, story.id);
    await enqueueAlert(t, 'email', b, story.id);
    await t.waitIdle(20_000);
    expect(smtp.to('busy451@example.test')).toHaveLength(1);
    expect(smtp.to('busy421@example.test')).toHaveLength(1);
    const rec = await record(a, story.id);
    expect(rec).toMatchObject({ status: 'sent', attempts: 3 });
    expect(rec!.lastError).toContain('SMTP 451');
  });

  it('550 is failed-permanent; after repeated hard bounces the address is disabled and the page says so; others still get mail', async () => {
    const { id, token } = await createReader(t.herald.stores.subscribers, { email: 'gone@example.test', timeZone: 'UTC', digestTime: '08:00' }, clock.now());
    await t.herald.stores.subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['email'] } });
    const other = await emailSubscriber('fine@example.test');
    smtp.script('gone@example.test', { reject: 550 });
    const stories = [await newStory(), await newStory(), await newStory()];
    for (const s of stories) {
      await enqueueAlert(t, 'email', id, s.id);
      await enqueueAlert(t, 'email', other, s.id);
      await t.waitIdle();
    }
    expect(smtp.to('fine@example.test')).toHaveLength(3);
    expect(smtp.tries('gone@example.test')).toBe(2);
    const first = await record(id, stories[0]!.id);
    expect(first).toMatchObject({ status: 'failed', attempts: 1 });
    expect(first!.lastError).toMatch(/^SMTP 550: .*mailbox unavailable/);
    expect(await record(id, stories[2]!.id)).toMatchObject({ status: 'skipped', reason: 'email-disabled' });

    const me = await fetch(`${t.baseUrl}/api/me`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());
    expect(me.emailStatus).toMatchObject({ disabled: true, hardBounces: 2 });
    expect(me.emailStatus.reason).toContain('SMTP 550');

    // The same address again, once the mailbox works: a confirmation is sent, and following it enables the address.
    // Before, re-saving it changed nothing: the reader had to remove the address and add it again.
    smtp.script('gone@example.test', { tempFail: 0 });
    const same = await fetch(`${t.baseUrl}/api/me`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ email: 'gone@example.test' }) }).then((r) => r.json());
    expect(same.pendingEmail).toBe('gone@example.test');
    expect((await followConfirmation(confirmationLink(smtp.to('gone@example.test')))).status).toBe(200);
    const again = await fetch(`${t.baseUrl}/api/me`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());
    expect(again).toMatchObject({ email: 'gone@example.test', pendingEmail: null, emailStatus: { disabled: false, hardBounces: 0 } });

    // A new address waits for its confirmation, then starts clean.
    const put = await fetch(`${t.baseUrl}/api/me`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ email: 'new@example.test' }) }).then((r) => r.json());
    expect(put.pendingEmail).toBe('new@example.test');
    expect((await followConfirmation(confirmationLink(smtp.to('new@example.test')))).status).toBe(200);
    const after = await fetch(`${t.baseUrl}/api/me`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());
    expect(after.email).toBe('new@example.test');
    expect(after.emailStatus).toMatchObject({ disabled: false, hardBounces: 0 });
  });

  /**
   * A reader following Japan by email whose server answers each of `refusals` to one alert in turn: every alert fails
   * on its one attempt with its SMTP code kept, and none counts as a hard bounce (the limit here is 2: three would
   * have disabled the address). Answers the reader.
   */
  const refusedWithoutBounce = async (address: string, refusals: readonly Extract<RecipientScript, { refuseData: number } | { reject: number }>[]) => {
    const reader = await emailReader(address);
    const stories = [];
    for (const refusal of refusals) {
      smtp.script(address, refusal);
      const s = await newStory();
      stories.push(s);
      await enqueueAlert(t, 'email', reader.id, s.id);
      await t.waitIdle();
    }
    for (const [i, s] of stories.entries()) {
      const rec = await record(reader.id, s.id);
      expect(rec).toMatchObject({ status: 'failed', attempts: 1 });
      const r = refusals[i]!;
      expect(rec!.lastError).toContain(`SMTP ${'refuseData' in r ? r.refuseData : r.reject}`);
    }
    expect(await emailStatus(reader.token)).toMatchObject({ disabled: false, hardBounces: 0 });
    return reader;
  };

  it('a message refused for its size or content fails that alert but is no bounce: the address stays enabled', async () => {
    const { id } = await refusedWithoutBounce('picky@example.test', [
      { refuseData: 552, message: '5.3.4 Message size exceeds fixed maximum message size' },
      { refuseData: 550, message: '5.7.1 Message content rejected' },
      { refuseData: 554, message: '5.7.1 Spam detected' },
    ]);
    smtp.script('picky@example.test', { tempFail: 0 });
    const next = await newStory();
    await enqueueAlert(t, 'email', id, next.id);
    await t.waitIdle();
    expect(await record(id, next.id)).toMatchObject({ status: 'sent' });
  });

  it('a RCPT TO refusal about Herald (its IP blocklisted, relay denied) fails the alert but is no bounce', async () => {
    // Postfix (smtpd_delay_reject=yes, its default) answers client and sender restrictions at RCPT TO.
    await refusedWithoutBounce('policy@example.test', [
      { reject: 554, message: '5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org' },
      { reject: 554, message: '5.7.1 <policy@example.test>: Relay access denied' },
    ]);
  });

  it('530 authentication required at RCPT TO (an operator\'s config error) is retried and the mail arrives once fixed; no bounce', async () => {
    const { id, token } = await emailReader('noauth@example.test');
    smtp.script('noauth@example.test', { reject: 530, message: '5.7.0 Authentication required', times: 2 });
    const s = await newStory();
    await enqueueAlert(t, 'email', id, s.id);
    await t.waitIdle(20_000);
    expect(smtp.to('noauth@example.test')).toHaveLength(1);
    const rec = await record(id, s.id);
    expect(rec).toMatchObject({ status: 'sent', attempts: 3 });
    expect(rec!.lastError).toContain('SMTP 530');
    expect(await emailStatus(token)).toMatchObject({ disabled: false, hardBounces: 0 });
  });

  it('a refusal of Herald\'s sender (at MAIL FROM, or 5.1.8 at RCPT TO as Postfix gives it) is retried and the mail arrives once fixed; no bounce', async () => {
    const { id, token } = await emailReader('sender-fixed@example.test');
    smtp.refuseSender([
      { code: 553, message: '5.1.8 <herald@127.0.0.1>: Sender address rejected: Domain not found' },
      { code: 550, message: '5.7.1 Sender rejected' },
    ]);
    // The third attempt passes MAIL FROM and meets the sender refusal at RCPT TO.
    smtp.script('sender-fixed@example.test', { reject: 553, message: '5.1.8 <herald@127.0.0.1>: Sender address rejected: Domain not found', times: 1 });
    const s = await newStory();
    await enqueueAlert(t, 'email', id, s.id);
    await t.waitIdle(20_000);
    expect(smtp.to('sender-fixed@example.test')).toHaveLength(1);
    const rec = await record(id, s.id);
    expect(rec).toMatchObject({ status: 'sent', attempts: 4 });
    expect(rec!.lastError).toContain('SMTP 553');
    expect(await emailStatus(token)).toMatchObject({ disabled: false, hardBounces: 0 });
  });

  it('a sender refused on every attempt ends as failed with the reason once the retries run out; no bounce', async () => {
    const { id, token } = await emailReader('sender-broken@example.test');
    smtp.refuseSender(Array.from({ length: 3 }, () => ({ code: 553 as const, message: '5.1.8 <herald@127.0.0.1>: Sender address rejected: Domain not found' })));
    const s = await newStory();
    await enqueueAlert(t, 'email', id, s.id, 'japan', { attempts: 3 });
    await t.waitIdle(20_000);
    const rec = await record(id, s.id);
    expect(rec).toMatchObject({ status: 'failed', attempts: 3 });
    expect(rec!.lastError).toMatch(/^gave up after 3 attempts: SMTP 553: .*Domain not found/);
    expect(await emailStatus(token)).toMatchObject({ disabled: false, hardBounces: 0 });
  });

  it('an alert whose message cannot be built fails at once with the reason, no bounce; the story\'s other alerts go out', async () => {
    // An address stored before validation, too long for one header line (RFC 5322 2.1.1: 998 octets): the To
    // header cannot be written, on this attempt or any other.
    const long = `${'x'.repeat(1000)}@example.test`;
    const { id, token } = await emailReader(long);
    const other = await emailSubscriber('beside-unbuilt@example.test');
    const s = await newStory();
    await enqueueAlert(t, 'email', id, s.id, 'japan', { attempts: 3 });
    await enqueueAlert(t, 'email', other, s.id);
    await t.waitIdle(20_000);
    const rec = await record(id, s.id);
    expect(rec).toMatchObject({ status: 'failed', attempts: 1 });
    expect(rec!.lastError).toMatch(/^message not built: email header To has a word longer than 998 octets/);
    expect(smtp.tries(long)).toBe(0);
    expect(await emailStatus(token)).toMatchObject({ disabled: false, hardBounces: 0 });
    expect(smtp.to('beside-unbuilt@example.test')).toHaveLength(1);
    expect(await record(other, s.id)).toMatchObject({ status: 'sent' });
  });

  it('hard bounces count in a row: a delivered mail between two bounces starts the count again', async () => {
    const { id, token } = await emailReader('flaky@example.test');
    for (const s of [{ reject: 550 }, { tempFail: 0 }, { reject: 550 }] as const) {
      smtp.script('flaky@example.test', s);
      const story = await newStory();
      await enqueueAlert(t, 'email', id, story.id);
      await t.waitIdle();
    }
    expect(smtp.to('flaky@example.test')).toHaveLength(1);
    // The limit here is 2: counted across the delivery, the second bounce would have disabled the address.
    expect(await emailStatus(token)).toMatchObject({ disabled: false, hardBounces: 1 });
  });

  it('a refusal longer than every retry ends the record as failed with the reason; nothing stays queued or sending', async () => {
    const id = await emailSubscriber('outage@example.test');
    smtp.script('outage@example.test', { tempFail: 1000, code: 451 });
    const s = await newStory();
    await enqueueAlert(t, 'email', id, s.id, 'japan', { attempts: 3 });
    await t.waitIdle(20_000);
    expect(smtp.tries('outage@example.test')).toBe(3);
    const rec = await record(id, s.id);
    expect(rec).toMatchObject({ status: 'failed' });
    expect(rec!.lastError).toMatch(/SMTP 451/);
  });

  it('a stop link acts only on the address it was mailed to: after a change of address, an old email stops nothing', async () => {
    const subs = t.herald.stores.subscribers;
    const id = await emailSubscriber('moved-from@example.test');
    const stopLinks = async (address: string) => {
      const story = await newStory();
      await enqueueAlert(t, 'email', id, story.id);
      await t.waitIdle();
      const m = smtp.to(address).at(-1)!;
      const header = m.headerLines.map((h) => h.line.replace(/\r?\n\s+/g, ' ')).find((l) => l.startsWith('List-Unsubscribe:'))!;
      return { oneClick: /<(.+)>/.exec(header)![1]!, all: /Stop all Herald emails: (\S+)/.exec(m.text!)![1]! };
    };
    const post = (link: string) => {
      const u = new URL(link);
      return t.herald.web.inject({ method: 'POST', url: u.pathname + u.search, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'List-Unsubscribe=One-Click' });
    };
    const old = await stopLinks('moved-from@example.test');
    await subs.confirmEmail(await subs.requestEmail(id, 'moved-to@example.test', clock.now()), clock.now());

    // The old email's one-click POST (a mail client's) and its "stop all" change nothing, and its page offers nothing to press.
    for (const link of [old.oneClick, old.all]) expect((await post(link)).statusCode).toBe(200);
    expect((await subs.get(id))?.email).toBe('moved-to@example.test');
    expect((await subs.follows(id)).japan).toMatchObject({ cadence: 'instant', channels: ['email'] });
    const u = new URL(old.all);
    const page = await t.herald.web.inject({ method: 'GET', url: u.pathname + u.search });
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain('<button');
    expect(page.body).toContain('no longer');

    // The new address's links work for it.
    const fresh = await stopLinks('moved-to@example.test');
    expect((await post(fresh.oneClick)).statusCode).toBe(200);
    expect((await subs.follows(id)).japan).toBeUndefined();
    expect((await post(fresh.all)).statusCode).toBe(200);
    expect((await subs.get(id))?.email).toBeNull();
  });

  it('an unfollowed topic or a missing address ends as skipped with the reason', async () => {
    const muted = await emailSubscriber('muted@example.test');
    const story = await newStory();
    await t.herald.stores.subscribers.setFollows(muted, {});
    const noAddress = await addSubscriber(t, clock.now(), { email: null, topics: { japan: { cadence: 'instant', channels: ['email'] } } });
    await enqueueAlert(t, 'email', muted, story.id);
    await enqueueAlert(t, 'email', noAddress, story.id);
    await t.waitIdle();
    expect(await record(muted, story.id)).toMatchObject({ status: 'skipped', reason: 'muted' });
    expect(await record(noAddress, story.id)).toMatchObject({ status: 'skipped', reason: 'no-email' });
    expect(smtp.to('muted@example.test')).toHaveLength(0);
  });
});

/** HERALD_SMTP_RATE_PER_SECOND reaches the email dispatcher's pooled transport (the mailer's own pacing: mailer.test). */
describe('email dispatch: the configured rate per SMTP server', () => {
  const clock = manualClock('2027-02-01T09:00:00Z');
  let smtp: ScriptedSmtp;
  let t: TestHerald;
  beforeAll(async () => {
    smtp = await startScriptedSmtp();
    t = await startTestHerald({ name: 'email-rate', clock, smtpUrl: smtp.url, topics: TOPICS, env: { HERALD_SMTP_RATE_PER_SECOND: '2' } });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('hands eight alert emails to the server at no more than the configured rate, each once', async () => {
    const story = makeStory(clock.now());
    await t.herald.stores.stories.put(story);
    const readers = Array.from({ length: 8 }, (_, i) => `paced${i}@example.test`);
    for (const email of readers) {
      const id = await addSubscriber(t, clock.now(), { email, topics: { japan: { cadence: 'instant', channels: ['email'] } } });
      await enqueueAlert(t, 'email', id, story.id);
    }
    await t.waitIdle();
    for (const email of readers) expect(smtp.to(email)).toHaveLength(1);
    // Two per one-second window: the eight need four, so the last is handed over at least two seconds after the
    // first window opened. The first mails also wait for their new connections, so the bound allows for that
    // (the default rate, 100/s, delivers the eight within about 100 ms).
    expect(smtp.arrivals.length).toBe(8);
    expect(Math.max(...smtp.arrivals) - Math.min(...smtp.arrivals)).toBeGreaterThanOrEqual(1200);
  });
});
