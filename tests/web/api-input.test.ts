import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualClock } from '../helpers/clock.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';

/** The JSON API answers bad requests with 400 naming the field, and changes nothing. */
describe('settings API input', () => {
  let t: TestHerald;
  let smtp: SmtpSink;
  let token: string;
  const call = async (method: string, path: string, body?: unknown, auth = true) => {
    const res = await fetch(`${t.baseUrl}${path}`, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(auth && token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, body: (res.headers.get('content-type') ?? '').includes('json') ? ((await res.json()) as Record<string, any>) : null };
  };

  beforeAll(async () => {
    smtp = await startSmtpSink();
    t = await startTestHerald({ name: 'api-input', clock: manualClock('2027-03-01T12:00:00Z'), smtpUrl: smtp.url });
    const created = await call('POST', '/api/subscribers', { email: 'r@example.test', timeZone: 'Europe/London', digestTime: '07:30', topics: { japan: { cadence: 'daily' } } });
    expect(created.status).toBe(201);
    token = created.body!.token;
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it.each([
    [{ timeZone: 'Mars/Olympus_Mons' }, 'timeZone', 'IANA time zone'],
    [{ digestTime: '25:00' }, 'digestTime', 'HH:MM'],
    [{ digestTime: 730 }, 'digestTime', ''],
    [{ email: 'not-an-email' }, 'email', ''],
    [{ topics: { japan: { cadence: 'hourly' } } }, 'topics.japan.cadence', ''],
    [{ topics: { narnia: { cadence: 'instant' } } }, 'topics.narnia', 'unknown topic'],
    [{ favouriteColour: 'blue' }, '(body)', 'favouriteColour'],
  ])('PUT /api/me %o is refused naming %s, and nothing changes', async (body, field, message) => {
    const before = await call('GET', '/api/me');
    const res = await call('PUT', '/api/me', body);
    expect(res.status).toBe(400);
    expect(res.body!.error).toContain(field);
    if (message) expect(res.body!.error).toContain(message);
    expect((await call('GET', '/api/me')).body).toEqual(before.body);
  });

  it.each([
    [{ endpoint: 'http://push.example.test/x', keys: { p256dh: 'B'.repeat(87), auth: 'A'.repeat(22) } }, 'endpoint'],
    [{ endpoint: 'https://push.example.test/x', keys: { p256dh: 'short', auth: 'A'.repeat(22) } }, 'keys.p256dh'],
    [{ endpoint: 'https://push.example.test/x' }, 'keys'],
  ])('a bad push subscription is refused naming %s', async (body, field) => {
    const res = await call('POST', '/api/me/push-subscriptions', body);
    expect(res.status).toBe(400);
    expect(res.body!.error).toContain(field);
    expect((await call('GET', '/api/me')).body!.devices).toEqual([]);
  });

  it('refuses malformed JSON and oversized bodies with a 4xx, not a crash', async () => {
    expect((await call('PUT', '/api/me', '{"email":')).status).toBe(400);
    expect((await call('PUT', '/api/me', { email: `${'x'.repeat(70_000)}@example.test` })).status).toBe(413);
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  it('answers 401 without a token and 403 with a forged one', async () => {
    expect((await call('GET', '/api/me', undefined, false)).status).toBe(401);
    const res = await fetch(`${t.baseUrl}/api/me`, { headers: { authorization: 'Bearer forged-token-value' } });
    expect(res.status).toBe(403);
  });

  it('schedules the digest at the local time chosen, in the zone chosen', async () => {
    const res = await call('PUT', '/api/me', { timeZone: 'Asia/Tokyo', digestTime: '06:15' });
    expect(res.status).toBe(200);
    // 2027-03-01 12:00Z is 21:00 in Tokyo: the next 06:15 there is 2027-03-02 06:15+09:00.
    expect(res.body!.nextDigestAt).toBe('2027-03-01T21:15:00.000Z');
  });
});
