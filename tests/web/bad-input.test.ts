import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressTag, unsubscribeUrl } from '../../src/deliver/email/signed-links.ts';
import { webClient } from '../helpers/web-client.ts';
import { startWebHarness, type WebHarness } from './harness.ts';

/**
 * Every endpoint against bad input: each case gets a clear 4xx and leaves every reader key in Redis
 * exactly as it was (compared key by key, value by value).
 */
const SIGNING_KEY = 'test-signing-key-0123456789abcdef0123456789';

interface Case {
  name: string;
  method: string;
  path: string | ((ctx: Ctx) => string);
  body?: unknown;
  rawBody?: string;
  contentType?: string;
  auth?: 'a' | 'b' | 'forged' | 'none';
  status: number;
  /** A failing field the 400 must name, or a piece of the error message. */
  field?: string;
  message?: RegExp;
}
interface Ctx {
  a: { id: string; token: string; deviceId: string; device: { endpoint: string; keys: { p256dh: string; auth: string } } };
  b: { id: string; token: string };
}

const goodKeys = { p256dh: `B${'A'.repeat(86)}`, auth: 'A'.repeat(22) };
const big = 'x'.repeat(20 * 1024);

const cases: Case[] = [
  // POST /api/subscribers (no one is signed in; nothing may be created)
  { name: 'create: wrong type for timeZone', method: 'POST', path: '/api/subscribers', body: { timeZone: 5 }, auth: 'none', status: 400, field: 'timeZone' },
  { name: 'create: unknown time zone', method: 'POST', path: '/api/subscribers', body: { timeZone: 'Mars/Olympus_Mons' }, auth: 'none', status: 400, field: 'timeZone', message: /IANA/ },
  { name: 'create: digest time 25:00', method: 'POST', path: '/api/subscribers', body: { digestTime: '25:00' }, auth: 'none', status: 400, field: 'digestTime', message: /HH:MM/ },
  { name: 'create: unknown topic', method: 'POST', path: '/api/subscribers', body: { topics: { atlantis: { cadence: 'instant' } } }, auth: 'none', status: 400, field: 'topics.atlantis' },
  { name: 'create: unknown cadence', method: 'POST', path: '/api/subscribers', body: { topics: { japan: { cadence: 'hourly' } } }, auth: 'none', status: 400, field: 'topics.japan.cadence' },
  { name: 'create: unknown channel', method: 'POST', path: '/api/subscribers', body: { topics: { japan: { cadence: 'instant', channels: ['sms'] } } }, auth: 'none', status: 400, field: 'topics.japan.channels.0' },
  { name: 'create: not an email', method: 'POST', path: '/api/subscribers', body: { email: 'not-an-address' }, auth: 'none', status: 400, field: 'email' },
  { name: 'create: unknown field', method: 'POST', path: '/api/subscribers', body: { admin: true }, auth: 'none', status: 400, field: '(body)' },
  { name: 'create: oversized body', method: 'POST', path: '/api/subscribers', body: { timeZone: big }, auth: 'none', status: 413 },
  { name: 'create: broken JSON', method: 'POST', path: '/api/subscribers', rawBody: '{"timeZone":', auth: 'none', status: 400 },
  { name: 'create: JSON array body', method: 'POST', path: '/api/subscribers', body: [1, 2], auth: 'none', status: 400 },
  // PUT /api/me
  { name: 'settings: unknown time zone', method: 'PUT', path: '/api/me', body: { timeZone: 'Europe/Atlantis' }, status: 400, field: 'timeZone' },
  { name: 'settings: digest time 25:00', method: 'PUT', path: '/api/me', body: { digestTime: '25:00' }, status: 400, field: 'digestTime' },
  { name: 'settings: digest time without leading zero', method: 'PUT', path: '/api/me', body: { digestTime: '7:30' }, status: 400, field: 'digestTime' },
  { name: 'settings: digest time as a number', method: 'PUT', path: '/api/me', body: { digestTime: 730 }, status: 400, field: 'digestTime' },
  { name: 'settings: quiet hours missing "to"', method: 'PUT', path: '/api/me', body: { delivery: { quietHours: { from: '22:00' } } }, status: 400, field: 'delivery.quietHours.to' },
  { name: 'settings: empty quiet hours', method: 'PUT', path: '/api/me', body: { delivery: { quietHours: { from: '22:00', to: '22:00' } } }, status: 400, field: 'delivery.quietHours.to' },
  { name: 'settings: quiet hours at 24:00', method: 'PUT', path: '/api/me', body: { delivery: { quietHours: { from: '22:00', to: '24:00' } } }, status: 400, field: 'delivery.quietHours.to' },
  { name: 'settings: quiet hours from 25:00', method: 'PUT', path: '/api/me', body: { delivery: { quietHours: { from: '25:00', to: '07:00' } } }, status: 400, field: 'delivery.quietHours.from' },
  { name: 'settings: breaking flag as a string', method: 'PUT', path: '/api/me', body: { delivery: { breakingThroughQuiet: 'yes' } }, status: 400, field: 'delivery.breakingThroughQuiet' },
  { name: 'settings: push cap of 0', method: 'PUT', path: '/api/me', body: { delivery: { dailyPushCap: 0 } }, status: 400, field: 'delivery.dailyPushCap' },
  { name: 'settings: push cap as text', method: 'PUT', path: '/api/me', body: { delivery: { dailyPushCap: 'ten' } }, status: 400, field: 'delivery.dailyPushCap' },
  { name: 'settings: unknown delivery field', method: 'PUT', path: '/api/me', body: { delivery: { snooze: true } }, status: 400, field: 'delivery' },
  { name: 'settings: email of the wrong type', method: 'PUT', path: '/api/me', body: { email: 42 }, status: 400, field: 'email' },
  { name: 'settings: valid change with an invalid one', method: 'PUT', path: '/api/me', body: { digestTime: '09:00', timeZone: 'Nowhere' }, status: 400, field: 'timeZone' },
  { name: 'settings: oversized body', method: 'PUT', path: '/api/me', rawBody: JSON.stringify({ timeZone: big }), status: 413 },
  { name: 'settings: forged token', method: 'PUT', path: '/api/me', body: { digestTime: '09:00' }, auth: 'forged', status: 403 },
  { name: 'settings: no token', method: 'PUT', path: '/api/me', body: { digestTime: '09:00' }, auth: 'none', status: 403, message: /csrf/i },
  { name: 'delete: forged token', method: 'DELETE', path: '/api/me', auth: 'forged', status: 403 },
  // Push subscriptions
  { name: 'push: missing keys', method: 'POST', path: '/api/me/push-subscriptions', body: { endpoint: 'https://fcm.googleapis.com/fcm/send/x' }, status: 400, field: 'keys' },
  { name: 'push: missing endpoint', method: 'POST', path: '/api/me/push-subscriptions', body: { keys: goodKeys }, status: 400, field: 'endpoint' },
  { name: 'push: non-https endpoint', method: 'POST', path: '/api/me/push-subscriptions', body: { endpoint: 'http://fcm.googleapis.com/fcm/send/x', keys: goodKeys }, status: 400, field: 'endpoint' },
  { name: 'push: unknown push service', method: 'POST', path: '/api/me/push-subscriptions', body: { endpoint: 'https://push.evil.test/x', keys: goodKeys }, status: 400, field: 'endpoint', message: /known push service/ },
  { name: 'push: internal address', method: 'POST', path: '/api/me/push-subscriptions', body: { endpoint: 'https://169.254.169.254/latest', keys: goodKeys }, status: 400, field: 'endpoint' },
  { name: 'push: bad p256dh', method: 'POST', path: '/api/me/push-subscriptions', body: { endpoint: 'https://fcm.googleapis.com/fcm/send/x', keys: { ...goodKeys, p256dh: 'short' } }, status: 400, field: 'keys.p256dh' },
  { name: 'push: forged token', method: 'POST', path: '/api/me/push-subscriptions', body: { endpoint: 'https://fcm.googleapis.com/fcm/send/x', keys: goodKeys }, auth: 'forged', status: 403 },
  { name: 'push: oversized body', method: 'POST', path: '/api/me/push-subscriptions', body: { endpoint: `https://fcm.googleapis.com/fcm/send/${big}`, keys: goodKeys }, status: 413 },
  { name: 'push: endpoint too long', method: 'POST', path: '/api/me/push-subscriptions', body: { endpoint: `https://fcm.googleapis.com/fcm/send/${'x'.repeat(3000)}`, keys: goodKeys }, status: 400, field: 'endpoint' },
  { name: 'push: malformed device id', method: 'DELETE', path: '/api/me/push-subscriptions/not-a-device', status: 400, field: 'deviceId' },
  { name: "push: another subscriber's device", method: 'DELETE', path: (c) => `/api/me/push-subscriptions/${c.a.deviceId}`, auth: 'b', status: 404 },
  { name: 'push test: forged token', method: 'POST', path: '/api/me/push-test', auth: 'forged', status: 403 },
  { name: 'push test: no device', method: 'POST', path: '/api/me/push-test', auth: 'b', status: 409 },
  // Inbox
  { name: 'inbox read: missing storyId', method: 'POST', path: '/api/me/inbox/read', body: {}, status: 400, field: 'storyId' },
  { name: 'inbox read: storyId of the wrong type', method: 'POST', path: '/api/me/inbox/read', body: { storyId: 5 }, status: 400, field: 'storyId' },
  { name: 'inbox read: oversized body', method: 'POST', path: '/api/me/inbox/read', body: { storyId: big }, status: 413 },
  { name: 'inbox read: unknown story', method: 'POST', path: '/api/me/inbox/read', body: { storyId: 'nope' }, status: 404 },
  { name: "inbox read: another subscriber's story", method: 'POST', path: '/api/me/inbox/read', body: { storyId: 'story-a' }, auth: 'b', status: 404 },
  { name: 'inbox clear: forged token', method: 'DELETE', path: '/api/me/inbox', auth: 'forged', status: 403 },
  { name: 'inbox read-all: forged token', method: 'POST', path: '/api/me/inbox/read-all', auth: 'forged', status: 403 },
  // Topic tuning
  { name: 'less like this: topic not followed', method: 'POST', path: '/api/me/topics/science/less', status: 404 },
  // "constructor", the one Object.prototype property a topic id can spell: it answered 500 (reset) or stored a broken follow.
  ...(['less', 'mute', 'reset'] as const).map((action): Case => ({ name: `${action}: topic "constructor"`, method: 'POST', path: `/api/me/topics/constructor/${action}`, status: 404 })),
  { name: 'mute: malformed topic id', method: 'POST', path: '/api/me/topics/NOT_A_TOPIC!/mute', status: 400, field: 'topicId' },
  { name: 'mute: forged token', method: 'POST', path: '/api/me/topics/japan/mute', auth: 'forged', status: 403 },
  // Email and links
  { name: 'resend: nothing pending', method: 'POST', path: '/api/me/email/resend', status: 409 },
  { name: 'manage link: missing email', method: 'POST', path: '/api/manage-link', body: {}, auth: 'none', status: 400, field: 'email' },
  { name: 'manage link: wrong type', method: 'POST', path: '/api/manage-link', body: { email: ['a@example.test'] }, auth: 'none', status: 400, field: 'email' },
  { name: 'manage link: oversized', method: 'POST', path: '/api/manage-link', body: { email: big }, auth: 'none', status: 413 },
  { name: 'unsubscribe: no parameters', method: 'POST', path: '/unsubscribe', auth: 'none', status: 400 },
  { name: 'unsubscribe: forged signature', method: 'POST', path: (c) => `/unsubscribe?s=${c.a.id}&t=japan&sig=AAAA`, auth: 'none', status: 400 },
  {
    name: "unsubscribe: B's signature on A's id",
    method: 'POST',
    path: (c) => `/unsubscribe${new URL(unsubscribeUrl('http://x', SIGNING_KEY, c.b.id, 'japan', 'a@example.test')).search.replace(`s=${c.b.id}`, `s=${c.a.id}`)}`,
    auth: 'none',
    status: 400,
  },
  {
    name: "unsubscribe: another address's tag on A's link",
    method: 'POST',
    path: (c) => `/unsubscribe${new URL(unsubscribeUrl('http://x', SIGNING_KEY, c.a.id, 'japan', 'a@example.test')).search.replace(/&a=[^&]+/, `&a=${addressTag(SIGNING_KEY, 'other@example.test')}`)}`,
    auth: 'none',
    status: 400,
  },
  { name: 'unsubscribe page: altered topic', method: 'GET', path: (c) => `${new URL(unsubscribeUrl('http://x', SIGNING_KEY, c.a.id, 'japan', 'a@example.test')).pathname}${new URL(unsubscribeUrl('http://x', SIGNING_KEY, c.a.id, 'japan', 'a@example.test')).search.replace('t=japan', 't=all')}`, auth: 'none', status: 400 },
];

describe('bad input on every endpoint: a clear 4xx and nothing changed', () => {
  let h: WebHarness;
  let ctx: Ctx;

  beforeAll(async () => {
    // A's one device is all a reader may register here, so the cap is reachable.
    h = await startWebHarness('web-bad-input', { HERALD_MAX_PUSH_DEVICES_PER_SUBSCRIBER: '1' });
    const a = await h.newSubscriber({ email: 'a@example.test', timeZone: 'Asia/Kolkata', topics: { japan: { cadence: 'instant', channels: ['push', 'email'] }, cricket: { cadence: 'daily', channels: [] } } });
    await h.confirm('a@example.test');
    const device = h.push.newDevice();
    const added = await webClient(h.t.baseUrl).api('/api/me/push-subscriptions', { method: 'POST', token: a.token, body: device.subscription });
    expect(added.status).toBe(201);
    await h.t.herald.stores.ledger.addToInbox(a.id, { storyId: 'story-a', title: 'A story', url: 'https://wire.example.test/a', topicId: 'japan', why: 'Matched: Japan in title', channel: 'push', at: h.clock.now(), read: false });
    const b = await h.newSubscriber({ topics: { japan: { cadence: 'instant', channels: ['push'] } } });
    ctx = { a: { id: a.id, token: a.token, deviceId: added.body.id, device: device.subscription }, b: { id: b.id, token: b.token } };
  });
  afterAll(async () => h?.close());

  it.each(cases)('$name -> $status', async (c) => {
    const before = await h.snapshot();
    const client = webClient(h.t.baseUrl);
    const auth = c.auth ?? 'a';
    const token = auth === 'a' ? ctx.a.token : auth === 'b' ? ctx.b.token : auth === 'forged' ? 'F'.repeat(43) : undefined;
    // Signed-out cases come from a page with a valid CSRF token, so the answer is about the input itself.
    const csrf = auth === 'none' && c.path !== '/api/me' ? await client.ensureCsrf() : null;
    const path = typeof c.path === 'function' ? c.path(ctx) : c.path;
    const res = await client.raw(path, { method: c.method, body: c.body, rawBody: c.rawBody, contentType: c.contentType, token, csrf });
    expect(res.status).toBe(c.status);
    if (res.headers.get('content-type')?.includes('json')) expect(typeof res.body.error).toBe('string');
    if (c.field) expect(res.body.fields.map((f: { field: string }) => f.field)).toContain(c.field);
    if (c.message) expect(res.body.error).toMatch(c.message);
    expect(await h.snapshot()).toEqual(before);
  });

  it('push: a device past the cap -> 409 saying to remove one, and nothing changed; the known device registers again', async () => {
    const before = await h.snapshot();
    const res = await webClient(h.t.baseUrl).raw('/api/me/push-subscriptions', { method: 'POST', token: ctx.a.token, body: h.push.newDevice().subscription });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('you already have 1 devices getting notifications, the most allowed: remove one of them first');
    expect(await h.snapshot()).toEqual(before);
    // Pressing "Allow notifications" again sends the same endpoint: the same device, not one more.
    const again = await webClient(h.t.baseUrl).raw('/api/me/push-subscriptions', { method: 'POST', token: ctx.a.token, body: ctx.a.device });
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(ctx.a.deviceId);
    expect((await webClient(h.t.baseUrl).api('/api/me', { token: ctx.a.token })).body.devices).toHaveLength(1);
  });

  it('the comparison sees reader data: a valid change does show up in it', async () => {
    const before = await h.snapshot();
    expect(Object.keys(before).some((k) => k.includes(`{s:${ctx.a.id}}:profile`))).toBe(true);
    expect(Object.keys(before).some((k) => k.includes(`{s:${ctx.a.id}}:inbox`))).toBe(true);
    const res = await webClient(h.t.baseUrl).api('/api/me', { method: 'PUT', token: ctx.a.token, body: { digestTime: '06:45' } });
    expect(res.status).toBe(200);
    expect(await h.snapshot()).not.toEqual(before);
  });

  it('accepts quiet hours that wrap midnight and stores them as given', async () => {
    const res = await webClient(h.t.baseUrl).api('/api/me', { method: 'PUT', token: ctx.b.token, body: { delivery: { quietHours: { from: '22:30', to: '06:15' }, breakingThroughQuiet: false, dailyPushCap: 5 } } });
    expect(res.status).toBe(200);
    expect(res.body.delivery).toMatchObject({ quietHours: { from: '22:30', to: '06:15' }, breakingThroughQuiet: false, dailyPushCap: 5 });
    // A partial change keeps the other choices.
    const partial = await webClient(h.t.baseUrl).api('/api/me', { method: 'PUT', token: ctx.b.token, body: { delivery: { dailyPushCap: null } } });
    expect(partial.body.delivery).toMatchObject({ quietHours: { from: '22:30', to: '06:15' }, breakingThroughQuiet: false, dailyPushCap: null });
    const cleared = await webClient(h.t.baseUrl).api('/api/me', { method: 'PUT', token: ctx.b.token, body: { delivery: { quietHours: null } } });
    expect(cleared.body.delivery.quietHours).toBeNull();
  });
});
