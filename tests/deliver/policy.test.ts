import { describe, expect, it } from 'vitest';
import { classifyMailError } from '../../src/deliver/email/mailer.ts';
import { renderAlertEmail } from '../../src/deliver/email/render.ts';
import { bundleTitle, MAX_PAYLOAD_BYTES, renderBundlePayload, renderPushPayload } from '../../src/deliver/push/payload.ts';
import { isBreaking, pushTopic, pushTtlSeconds, pushUrgency } from '../../src/deliver/push/policy.ts';
import { followWants } from '../../src/deliver/follow-wants.ts';
import { decidePush } from '../../src/deliver/push/send-alert.ts';
import { classifyPushResponse, parseRetryAfter } from '../../src/deliver/push/web-push-sender.ts';
import { quietHoursAt } from '../../src/deliver/quiet-hours.ts';
import { deliveryBackoffMs, RetryLater } from '../../src/deliver/retry.ts';
import { DEFAULT_DELIVERY_PREFS } from '../../src/store/subscribers.ts';

const T = (iso: string) => Date.parse(iso);
const story = { id: 'abc123', title: 'India and Japan sign a deal', summary: 'Short summary.', url: 'https://news.example.test/a?x=1&y=2', categories: [] as string[], publishedAt: T('2027-01-15T10:00:00Z') };

describe('push payload', () => {
  it('carries title, summary, URL, topic, why and image', () => {
    const p = JSON.parse(renderPushPayload({ ...story, image: 'https://img.example.test/a.jpg' }, 'Japan', 'Matched: Japan in title'));
    expect(p).toEqual({ title: story.title, body: 'Short summary.', url: story.url, topic: 'Japan', why: 'Matched: Japan in title', storyId: 'abc123', image: 'https://img.example.test/a.jpg' });
  });

  it('fits a 100 KB summary under the limit by trimming the summary, never the URL', () => {
    const longUrl = `https://news.example.test/${'segment/'.repeat(200)}end`;
    const json = renderPushPayload({ ...story, url: longUrl, summary: 'word '.repeat(20_000) }, 'Japan', 'why');
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    const p = JSON.parse(json);
    expect(p.url).toBe(longUrl);
    expect(p.body.length).toBeLessThanOrEqual(300);
    expect(p.body.endsWith('…')).toBe(true);
  });

  it('trims to a smaller budget (the 413 retry) and still keeps the URL', () => {
    const longUrl = `https://news.example.test/${'x'.repeat(1500)}`;
    const json = renderPushPayload({ ...story, url: longUrl, title: 'T '.repeat(100), summary: 'S '.repeat(200) }, 'Japan', 'W '.repeat(100), 1900);
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(1900);
    expect(JSON.parse(json).url).toBe(longUrl);
  });

  it('shows a stored title as written: ingest already made it plain text, so "<" and ">" are words', () => {
    // The feed said "x &lt; 5 and y &gt; 3, &lt;b&gt; tags"; stripping "tags" again deleted half of it.
    const title = 'Study: when x < 5 and y > 3, <b> tags still matter';
    expect(JSON.parse(renderPushPayload({ ...story, title }, 'Japan', 'why')).title).toBe(title);
    expect(JSON.parse(renderPushPayload({ ...story, title: 'AT&amp;T\n  wins' }, 'Japan', 'why')).title).toBe('AT&amp;T wins');
  });

  it('never cuts an emoji in half when it shortens a title or summary', () => {
    const title = `${'a'.repeat(198)}🇯🇵 flag`;
    const p = JSON.parse(renderPushPayload({ ...story, title, summary: `${'b'.repeat(298)}😀😀` }, 'Japan', 'why'));
    expect(p.title).toBe(`${'a'.repeat(198)}…`);
    expect(p.body).toBe(`${'b'.repeat(298)}…`);
    for (const text of [p.title, p.body]) expect(text).toBe(Buffer.from(text, 'utf8').toString('utf8'));
  });

  it('a bundle of 300 held stories keeps its title and body and lists as many ids as fit', () => {
    const items = Array.from({ length: 300 }, (_, i) => ({ story: { ...story, id: `story-${String(i).padStart(20, '0')}` }, topicName: 'Japan' }));
    const json = renderBundlePayload(items, 'bundle-1', 'https://h.test/');
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    const p = JSON.parse(json);
    expect(p.title).toBe('300 new stories in Japan');
    expect(p.body.split('\n')).toHaveLength(5);
    expect(p.stories.length).toBeGreaterThan(10);
    expect(p.stories.length).toBeLessThan(300);
  });

  it('a bundle spanning 120 topics, or a story of a very long topic name, fits with its title, body and URL', () => {
    const items = Array.from({ length: 120 }, (_, i) => ({ story: { ...story, id: `st${i}`, title: `Story ${i}` }, topicName: `Custom topic number ${i} about things` }));
    for (const max of [MAX_PAYLOAD_BYTES, Math.floor(MAX_PAYLOAD_BYTES / 2)]) {
      const json = renderBundlePayload(items, 'bundle-1', 'https://h.test/', max);
      expect(Buffer.byteLength(json)).toBeLessThanOrEqual(max);
      const p = JSON.parse(json);
      expect(p.title).toBe('120 new stories in Custom topic number 0 about things, Custom topic number 1 about things, Custom topic number 2 about things and more');
      expect(p.body.split('\n')).toHaveLength(5);
      expect(p.topic.startsWith('Custom topic number 0 about things, Custom topic number 1')).toBe(true);
    }
    const single = renderPushPayload(story, 'x'.repeat(5000), 'why');
    expect(Buffer.byteLength(single)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    expect(JSON.parse(single)).toMatchObject({ url: story.url, title: story.title });
  });

  it('a URL too long to leave room drops the image before the title, and never leaves the title empty', () => {
    // The service worker shows nothing for a payload without a title, while the ledger says sent.
    const image = `https://img.example.test/${'i'.repeat(970)}.jpg`;
    const longUrl = `https://news.example.test/${'a'.repeat(2750)}`;
    const full = JSON.parse(renderPushPayload({ ...story, url: longUrl, image }, 'Japan', 'Matched: Japan'));
    // Before: title, body, topic and why all emptied, then the image dropped, leaving room for all of them.
    expect(full).toMatchObject({ title: story.title, url: longUrl });
    expect(full.image).toBeUndefined();
    // Half the budget (the 413 retry) with a URL that alone nearly fills it: a short title, still, and the URL whole.
    const halfUrl = `https://news.example.test/${'a'.repeat(1800)}`;
    const half = JSON.parse(renderPushPayload({ ...story, url: halfUrl, title: 'Tokyo '.repeat(30), image }, 'Japan', 'why', Math.floor(MAX_PAYLOAD_BYTES / 2)));
    expect(half.url).toBe(halfUrl);
    expect(half.title.length).toBeGreaterThanOrEqual(20);
    expect(half.title.startsWith('Tokyo Tokyo')).toBe(true);
  });

  it('drops an image that is not https rather than sending it', () => {
    expect(JSON.parse(renderPushPayload({ ...story, image: 'javascript:alert(1)' }, 'Japan', 'why')).image).toBeUndefined();
  });

  it('names a bundle by count and topics, most frequent first', () => {
    expect(bundleTitle([{ topicName: 'India' }, { topicName: 'Japan' }, { topicName: 'Japan' }, { topicName: 'Japan' }, { topicName: 'India' }])).toBe('5 new stories in Japan, India');
    expect(bundleTitle([{ topicName: 'Japan' }])).toBe('1 new story in Japan');
    const p = JSON.parse(renderBundlePayload([{ story, topicName: 'Japan' }, { story: { ...story, id: 'b' }, topicName: 'India' }], 'bundle-1', 'https://h.test/'));
    expect(p.url).toBe('https://h.test/');
    expect(p.stories).toEqual(['abc123', 'b']);
  });
});

describe('push policy: breaking, TTL, urgency, topic', () => {
  const now = T('2027-01-15T10:20:00Z');
  it.each([
    [{ categories: ['Breaking'] }, true],
    [{ categories: ['breaking news'] }, true],
    [{ title: 'BREAKING: quake hits Tokyo' }, true],
    [{ title: 'Breaking: quake', publishedAt: T('2027-01-15T08:00:00Z') }, false],
    [{ categories: ['World'] }, false],
    [{ title: 'Record-breaking heat in Delhi' }, false],
  ])('isBreaking(%j) = %s', (patch, expected) => {
    expect(isBreaking({ ...story, ...patch }, now)).toBe(expected);
  });

  it.each([
    ['breaking', T('2027-01-15T10:19:00Z'), true, 1800],
    ['fresh story: what is left of four hours', T('2027-01-15T10:20:00Z'), false, 14_400],
    ['one hour old', T('2027-01-15T09:20:00Z'), false, 10_800],
    ['a day old: the 15-minute floor', T('2027-01-14T10:20:00Z'), false, 900],
    ['published in the future (clock skew)', T('2027-01-15T11:20:00Z'), false, 14_400],
  ])('TTL %s', (_why, publishedAt, breaking, ttl) => {
    expect(pushTtlSeconds({ publishedAt }, now, breaking)).toBe(ttl);
  });

  it('urgency is high only for breaking news; the Topic header is URL-safe and at most 32 chars', () => {
    expect(pushUrgency(true)).toBe('high');
    expect(pushUrgency(false)).toBe('normal');
    expect(pushTopic('bundle-1795915490627:x/y+z=')).toBe('bundle-1795915490627_x_y_z_');
    expect(pushTopic('a'.repeat(40))).toHaveLength(32);
  });
});

describe('push responses and retries', () => {
  const now = T('2027-01-15T10:00:00Z');
  it.each([
    [201, {}, { kind: 'sent', status: 201 }],
    [404, {}, { kind: 'gone', status: 404 }],
    [410, {}, { kind: 'gone', status: 410 }],
    [413, {}, { kind: 'too-large', status: 413 }],
    [429, { 'retry-after': '7' }, { kind: 'retry', status: 429, reason: 'push service answered 429', retryAfterMs: 7000 }],
    [503, { 'retry-after': 'Fri, 15 Jan 2027 10:00:30 GMT' }, { kind: 'retry', status: 503, reason: 'push service answered 503', retryAfterMs: 30_000 }],
    [500, {}, { kind: 'retry', status: 500, reason: 'push service answered 500', retryAfterMs: null }],
    [400, {}, { kind: 'permanent', status: 400, reason: 'push service answered 400: bad VAPID' }],
    [403, {}, { kind: 'permanent', status: 403, reason: 'push service answered 403: bad VAPID' }],
  ])('%s -> %j', (status, headers, expected) => {
    expect(classifyPushResponse(status, 'bad VAPID', headers, now)).toEqual(expected);
  });

  it('reads Retry-After as seconds or an HTTP date, and ignores garbage', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });

  it('backs off exponentially with jitter, never sooner than Retry-After', () => {
    const low = () => 0;
    const high = () => 0.999;
    expect(deliveryBackoffMs(1, 5000, new Error('x'), low)).toBe(2500);
    expect(deliveryBackoffMs(1, 5000, new Error('x'), high)).toBe(4997);
    expect(deliveryBackoffMs(3, 5000, new Error('x'), low)).toBe(10_000);
    expect(deliveryBackoffMs(1, 5000, new RetryLater('429', 30_000), low)).toBe(30_000);
    expect(deliveryBackoffMs(30, 5000, new Error('x'), high)).toBeLessThanOrEqual(60 * 60 * 1000);
  });
});

describe('quiet hours', () => {
  const w = { from: '22:00', to: '07:00' };
  it.each([
    ['2027-01-15T23:30:00+05:30', 'Asia/Kolkata', w, '2027-01-16T07:00:00+05:30'],
    ['2027-01-16T06:59:00+05:30', 'Asia/Kolkata', w, '2027-01-16T07:00:00+05:30'],
    ['2027-01-16T07:00:00+05:30', 'Asia/Kolkata', w, null],
    ['2027-01-15T21:59:00+05:30', 'Asia/Kolkata', w, null],
    ['2027-01-15T13:00:00+05:30', 'Asia/Kolkata', { from: '12:00', to: '14:00' }, '2027-01-15T14:00:00+05:30'],
    // Spring forward in New York: quiet until 07:00 EDT, which is 11:00 UTC.
    ['2027-03-14T01:30:00-05:00', 'America/New_York', w, '2027-03-14T07:00:00-04:00'],
    // An end the spring-forward change skips (02:30 in Berlin on 28 March) is the first minute after the gap,
    // 03:00, as for a digest time: not 03:30, an hour after the clock passed it.
    ['2027-03-28T01:30:00+01:00', 'Europe/Berlin', { from: '22:00', to: '02:30' }, '2027-03-28T03:00:00+02:00'],
    // Lord Howe's clock goes 02:00 -> 02:30: an end at 02:15 is 02:30, not 02:45.
    ['2027-10-03T01:50:00+10:30', 'Australia/Lord_Howe', { from: '22:00', to: '02:15' }, '2027-10-03T02:30:00+11:00'],
    // 02:15 on Berlin's second pass through 02:00-03:00 (31 October): quiet until 02:30 of that pass, not for a minute.
    ['2027-10-31T02:15:00+01:00', 'Europe/Berlin', { from: '02:00', to: '02:30' }, '2027-10-31T02:30:00+01:00'],
  ])('%s in %s', (at, zone, window, endsAt) => {
    const q = quietHoursAt(Date.parse(at), zone, window);
    expect(q).toEqual(endsAt === null ? { active: false } : { active: true, endsAt: Date.parse(endsAt) });
  });
  it('no window, or from == to, is never quiet', () => {
    expect(quietHoursAt(0, 'UTC', null)).toEqual({ active: false });
    expect(quietHoursAt(0, 'UTC', { from: '08:00', to: '08:00' })).toEqual({ active: false });
  });
});

describe('what happens to one push before sending', () => {
  const base = {
    now: Date.parse('2027-01-15T23:30:00+05:30'), zone: 'Asia/Kolkata', prefs: { ...DEFAULT_DELIVERY_PREFS, quietHours: { from: '22:00', to: '07:00' } },
    breaking: false, following: true, devices: 1, hasDigest: true, lastPushAt: null, burstWindowMs: 120_000,
  };
  const end = Date.parse('2027-01-16T07:00:00+05:30');
  it.each([
    ['unfollowed since the match', { following: false }, { kind: 'skip', reason: 'muted' }],
    ['no device', { devices: 0 }, { kind: 'skip', reason: 'no-device' }],
    ['quiet hours, bundle mode', {}, { kind: 'hold', bucket: 'bundle', reason: 'quiet-hours', releaseAt: end }],
    ['quiet hours, digest mode', { prefs: { ...base.prefs, heldAlerts: 'digest' } }, { kind: 'hold', bucket: 'digest', reason: 'quiet-hours', releaseAt: null }],
    ['quiet hours, digest mode but no digest: bundle', { hasDigest: false, prefs: { ...base.prefs, heldAlerts: 'digest' } }, { kind: 'hold', bucket: 'bundle', reason: 'quiet-hours', releaseAt: end }],
    ['breaking passes when allowed', { breaking: true }, { kind: 'send' }],
    ['breaking held when not allowed', { breaking: true, prefs: { ...base.prefs, breakingThroughQuiet: false } }, { kind: 'hold', bucket: 'bundle', reason: 'quiet-hours', releaseAt: end }],
    ['outside quiet hours', { now: Date.parse('2027-01-15T12:00:00+05:30') }, { kind: 'send' }],
    ['a burst: pushed 30 s ago', { now: Date.parse('2027-01-15T12:00:00+05:30'), lastPushAt: Date.parse('2027-01-15T11:59:30+05:30') }, { kind: 'hold', bucket: 'bundle', reason: 'burst', releaseAt: Date.parse('2027-01-15T12:01:30+05:30') }],
    ['not a burst: pushed 3 min ago', { now: Date.parse('2027-01-15T12:00:00+05:30'), lastPushAt: Date.parse('2027-01-15T11:57:00+05:30') }, { kind: 'send' }],
  ])('%s', (_why, patch, expected) => {
    expect(decidePush({ ...base, ...patch } as Parameters<typeof decidePush>[0])).toEqual(expected);
  });
});

describe('email', () => {
  it.each([
    [{ responseCode: 550, code: 'EENVELOPE', command: 'RCPT TO', message: 'mailbox unavailable' }, { kind: 'permanent', reason: 'SMTP 550: mailbox unavailable', hardBounce: true }],
    [{ responseCode: 554, code: 'EMESSAGE', command: 'DATA', message: 'spam' }, { kind: 'permanent', reason: 'SMTP 554: spam', hardBounce: false }],
    // Refusals of the message, not of the address.
    [{ responseCode: 552, code: 'EMESSAGE', command: 'DATA', message: '5.3.4 too big' }, { kind: 'permanent', reason: 'SMTP 552: 5.3.4 too big', hardBounce: false }],
    [{ responseCode: 550, code: 'EMESSAGE', command: 'DATA', message: '5.7.1 content rejected' }, { kind: 'permanent', reason: 'SMTP 550: 5.7.1 content rejected', hardBounce: false }],
    // Herald's sender refused (at MAIL FROM, or by 5.1.7/5.1.8, which name the sender in RFC 3463, at a later
    // command): the operator's fix to make, retried, and no bounce of any reader's address.
    [{ responseCode: 550, code: 'EENVELOPE', command: 'MAIL FROM', message: '5.7.1 sender refused' }, { kind: 'retry', reason: 'SMTP 550: 5.7.1 sender refused' }],
    [{ responseCode: 553, code: 'EENVELOPE', command: 'MAIL FROM', message: 'Mail command failed: 553 5.1.8 <alerts@herald.test>: Sender address rejected: Domain not found' }, { kind: 'retry', reason: 'SMTP 553: Mail command failed: 553 5.1.8 <alerts@herald.test>: Sender address rejected: Domain not found' }],
    [{ responseCode: 550, code: 'EMESSAGE', command: 'DATA', message: '5.1.7 bad sender mailbox syntax' }, { kind: 'retry', reason: 'SMTP 550: 5.1.7 bad sender mailbox syntax' }],
    // ...but a 552 to MAIL FROM refuses the SIZE declared there (RFC 1870): this message, for good.
    [{ responseCode: 552, code: 'EENVELOPE', command: 'MAIL FROM', response: '552 5.3.4 Message size exceeds fixed limit', message: 'Mail command failed: 552 5.3.4 Message size exceeds fixed limit' }, { kind: 'permanent', reason: 'SMTP 552: Mail command failed: 552 5.3.4 Message size exceeds fixed limit', hardBounce: false }],
    // A server that checks the mailbox only after DATA.
    [{ responseCode: 550, code: 'EMESSAGE', command: 'DATA', message: '5.1.1 user unknown' }, { kind: 'permanent', reason: 'SMTP 550: 5.1.1 user unknown', hardBounce: true }],
    // Refused at RCPT TO for a reason about Herald, by its enhanced code (Postfix gives client and sender refusals there).
    [{ responseCode: 554, code: 'EENVELOPE', command: 'RCPT TO', response: '554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked', message: 'Recipient command failed: 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked' }, { kind: 'permanent', reason: 'SMTP 554: Recipient command failed: 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked', hardBounce: false }],
    [{ responseCode: 553, code: 'EENVELOPE', command: 'RCPT TO', response: '553 5.1.8 <a@h.test>: Sender address rejected', message: 'Recipient command failed: 553 5.1.8 <a@h.test>: Sender address rejected' }, { kind: 'retry', reason: 'SMTP 553: Recipient command failed: 553 5.1.8 <a@h.test>: Sender address rejected' }],
    // ...but the mailbox's own refusal there counts, an IP address in its text read as no enhanced code.
    [{ responseCode: 550, code: 'EENVELOPE', command: 'RCPT TO', response: '550 no such user here [5.6.7.8]', message: 'Recipient command failed: 550 no such user here [5.6.7.8]' }, { kind: 'permanent', reason: 'SMTP 550: Recipient command failed: 550 no such user here [5.6.7.8]', hardBounce: true }],
    [{ responseCode: 550, code: 'EENVELOPE', command: 'RCPT TO', response: '550 5.2.1 mailbox disabled', message: 'Recipient command failed: 550 5.2.1 mailbox disabled' }, { kind: 'permanent', reason: 'SMTP 550: Recipient command failed: 550 5.2.1 mailbox disabled', hardBounce: true }],
    // The DATA command itself refused (nodemailer's EENVELOPE too) after the recipient was accepted: no word on the mailbox.
    [{ responseCode: 554, code: 'EENVELOPE', command: 'DATA', response: '554 5.7.1 rejected by policy', message: 'Data command failed: 554 5.7.1 rejected by policy' }, { kind: 'permanent', reason: 'SMTP 554: Data command failed: 554 5.7.1 rejected by policy', hardBounce: false }],
    // 530: authentication required, the operator's fix to make, whichever command it answers: retried.
    [{ responseCode: 530, code: 'EENVELOPE', command: 'MAIL FROM', response: '530 5.7.0 Authentication required', message: 'Mail command failed: 530 5.7.0 Authentication required' }, { kind: 'retry', reason: 'SMTP 530: Mail command failed: 530 5.7.0 Authentication required' }],
    [{ responseCode: 451, code: 'EENVELOPE', message: 'try later' }, { kind: 'retry', reason: 'SMTP 451: try later' }],
    // The session refused before any envelope (Herald's credentials, a relay turning connections away): retried.
    [{ responseCode: 535, code: 'EAUTH', command: 'AUTH PLAIN', message: 'Invalid login: 535 5.7.8 Authentication credentials invalid' }, { kind: 'retry', reason: 'SMTP 535: Invalid login: 535 5.7.8 Authentication credentials invalid' }],
    [{ responseCode: 554, code: 'EPROTOCOL', command: 'CONN', message: 'Invalid greeting. response=554 Too many connections' }, { kind: 'retry', reason: 'SMTP 554: Invalid greeting. response=554 Too many connections' }],
    [{ responseCode: 421, message: 'busy' }, { kind: 'retry', reason: 'SMTP 421: busy' }],
    [{ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }, { kind: 'retry', reason: 'ECONNREFUSED: connect ECONNREFUSED' }],
  ])('%j -> %j', (err, expected) => {
    expect(classifyMailError(err)).toEqual(expected);
  });

  it('escapes everything from a feed, keeps the why-line and cuts a huge summary', () => {
    const mail = renderAlertEmail({
      story: { title: 'Tom & Jerry <img src=x onerror=alert(1)>', summary: 'A'.repeat(100_000), url: 'https://n.test/a?b=1&c="2"' },
      topicName: 'Japan <3',
      why: 'Matched: Japan in title',
      links: { topic: 'https://h.test/u?t=japan', all: 'https://h.test/u?t=all', manage: 'https://h.test/' },
    });
    // A title that reads like markup is text: escaped in HTML, as written in the text part and subject.
    expect(mail.html).not.toContain('<img');
    expect(mail.html).toContain('Tom &amp; Jerry &lt;img src=x onerror=alert(1)&gt;</a>');
    expect(mail.html).toContain('href="https://n.test/a?b=1&amp;c=&quot;2&quot;"');
    expect(mail.html).toContain('Japan &lt;3 alert');
    expect(mail.text).toContain('Matched: Japan in title (topic: Japan <3)');
    expect(mail.subject).toBe('Japan <3: Tom & Jerry <img src=x onerror=alert(1)>');
    expect(mail.text.length).toBeLessThan(2000);
    expect(mail.headers).toEqual({ 'List-Unsubscribe': '<https://h.test/u?t=japan>', 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' });
  });
});

describe('followWants: checked again at every attempt', () => {
  const now = T('2027-01-15T12:00:00Z');
  it.each([
    ['followed instantly on the channel', { cadence: 'instant', channels: ['push', 'email'] }, 'push', true],
    ['not followed any more', undefined, 'push', false],
    ['followed on the other channel only', { cadence: 'instant', channels: ['email'] }, 'push', false],
    ['followed for the daily digest', { cadence: 'daily', channels: ['email'] }, 'email', false],
    ['muted until later', { cadence: 'instant', channels: ['email'], mutedUntil: now + 1 }, 'email', false],
    ['muted until now: the mute has ended', { cadence: 'instant', channels: ['email'], mutedUntil: now }, 'email', true],
  ] as const)('%s', (_name, follow, channel, wants) => {
    expect(followWants(follow === undefined ? undefined : { ...follow, channels: [...follow.channels] }, channel, now)).toBe(wants);
  });
});
