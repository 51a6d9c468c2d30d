import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { unsubscribeUrl } from '../../src/deliver/email/signed-links.ts';
import { subscriberKeys } from '../../src/store/subscribers.ts';
import { webClient } from '../helpers/web-client.ts';
import { startWebHarness, type WebHarness } from './harness.ts';

const SIGNING_KEY = 'test-signing-key-0123456789abcdef0123456789';

describe('inbox, topic tuning, devices, unsubscribe and deletion', () => {
  let h: WebHarness;
  let a: Awaited<ReturnType<WebHarness['newSubscriber']>>;
  const api = (path: string, init: Parameters<ReturnType<typeof webClient>['api']>[1] = {}) => webClient(h.t.baseUrl).api(path, { token: a.token, ...init });
  const item = (storyId: string, channel: 'push' | 'email', at: number) => ({
    storyId, title: `Story ${storyId}`, url: `https://wire.example.test/${storyId}`, topicId: 'japan', why: 'Matched: Tokyo in title', channel, at, read: false,
  });

  beforeAll(async () => {
    h = await startWebHarness('web-lifecycle');
    a = await h.newSubscriber({ email: 'life@example.test', topics: { japan: { cadence: 'instant', channels: ['push', 'email'] }, cricket: { cadence: 'daily', channels: [] } } });
    await h.confirm('life@example.test');
    const ledger = h.t.herald.stores.ledger;
    await ledger.addToInbox(a.id, item('s1', 'push', 1000));
    await ledger.addToInbox(a.id, item('s1', 'email', 1001));
    await ledger.addToInbox(a.id, item('s2', 'push', 2000));
  });
  afterAll(async () => h?.close());

  it('lists alerts newest first, one per story across channels, with topic and reason', async () => {
    const res = await api('/api/me/inbox');
    expect(res.body.unread).toBe(2);
    expect(res.body.items.map((i: { storyId: string; channels: string[] }) => [i.storyId, i.channels])).toEqual([['s2', ['push']], ['s1', ['push', 'email']]]);
    expect(res.body.items[0]).toMatchObject({ topicId: 'japan', why: 'Matched: Tokyo in title', read: false });
  });

  it('marks one read (on every channel), then all read', async () => {
    expect((await api('/api/me/inbox/read', { method: 'POST', body: { storyId: 's1' } })).status).toBe(204);
    let res = await api('/api/me/inbox');
    expect(res.body.items.map((i: { read: boolean }) => i.read)).toEqual([false, true]);
    expect((await api('/api/me/inbox/read-all', { method: 'POST' })).status).toBe(204);
    res = await api('/api/me/inbox');
    expect(res.body.unread).toBe(0);
  });

  it('"less like this" raises the topic threshold; "mute" silences it for 7 days; a settings save keeps both; reset clears', async () => {
    expect((await api('/api/me/topics/japan/less', { method: 'POST' })).body.minScore).toBe(2);
    expect((await api('/api/me/topics/japan/less', { method: 'POST' })).body.minScore).toBe(3);
    const muted = await api('/api/me/topics/japan/mute', { method: 'POST' });
    expect(muted.body.mutedUntil).toBe(new Date(h.clock.now() + 7 * 24 * 3600 * 1000).toISOString());
    const saved = await api('/api/me', { method: 'PUT', body: { topics: { japan: { cadence: 'instant', channels: ['push', 'email'] }, cricket: { cadence: 'daily', channels: [] } } } });
    expect(saved.body.topics.japan).toMatchObject({ minScore: 3, mutedUntil: muted.body.mutedUntil });
    const reset = await api('/api/me/topics/japan/reset', { method: 'POST' });
    expect(reset.body).toMatchObject({ minScore: null, mutedUntil: null, cadence: 'instant' });
  });

  it('clears the inbox', async () => {
    expect((await api('/api/me/inbox', { method: 'DELETE' })).status).toBe(204);
    expect((await api('/api/me/inbox')).body.items).toEqual([]);
  });

  it('registers a device, sends a real test notification to it, lists it and removes it', async () => {
    const device = h.push.newDevice();
    const added = await api('/api/me/push-subscriptions', { method: 'POST', body: device.subscription });
    expect(added.status).toBe(201);
    const test = await api('/api/me/push-test', { method: 'POST' });
    expect(test.body.devices).toEqual([{ id: added.body.id, service: new URL(h.push.origin).host, outcome: 'sent' }]);
    const got = h.push.received.filter((p) => p.deviceId === device.id);
    expect(got.map((p) => p.payload.title)).toEqual(['Herald test notification']);
    expect((await api('/api/me')).body.devices.map((d: { id: string }) => d.id)).toEqual([added.body.id]);
    expect((await api(`/api/me/push-subscriptions/${added.body.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await api('/api/me')).body.devices).toEqual([]);
  });

  it('an unsubscribe link GET shows one button; its POST stops that topic by email, and "all" forgets the address', async () => {
    const link = unsubscribeUrl(h.t.baseUrl, SIGNING_KEY, a.id, 'japan', 'life@example.test');
    const page = await fetch(link);
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(html.match(/<button/g)).toHaveLength(1);
    expect(html).toContain('Unsubscribe from Japan emails?');
    const before = (await api('/api/me')).body;
    expect(before.topics.japan.channels).toEqual(['push', 'email']);
    const res = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    expect(res.status).toBe(200);
    expect((await api('/api/me')).body.topics.japan.channels).toEqual(['push']);
    // A mail client's one-click POST carries no body at all sometimes; it still works.
    await fetch(unsubscribeUrl(h.t.baseUrl, SIGNING_KEY, a.id, 'all', 'life@example.test'), { method: 'POST' });
    const after = (await api('/api/me')).body;
    expect([after.email, after.nextDigestAt]).toEqual([null, null]);
  });

  it('a stop link mailed before links named their address works until the reader changes address, then stops nothing', async () => {
    const r = await h.newSubscriber({ email: 'legacy@example.test', topics: { japan: { cadence: 'instant', channels: ['push', 'email'] }, cricket: { cadence: 'daily', channels: [] } } });
    await h.confirm('legacy@example.test');
    // An address confirmed before Herald recorded when (as every address was when those links were mailed).
    await h.redis.hdel(subscriberKeys(h.t.prefix, r.id).profile, 'emailSince');
    const legacy = (topic: string) => `/unsubscribe?s=${r.id}&t=${topic}&sig=${createHmac('sha256', SIGNING_KEY).update(`unsubscribe\n${r.id}\n${topic}`).digest('base64url')}`;
    const post = (url: string) => h.t.herald.web.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'List-Unsubscribe=One-Click' });
    const me = async () => (await api('/api/me', { token: r.token })).body;

    expect((await post(legacy('japan'))).statusCode).toBe(200);
    expect((await me()).topics.japan.channels).toEqual(['push']);
    // Such a link may have gone to any earlier address: after a change it stops nothing.
    expect((await api('/api/me', { method: 'PUT', token: r.token, body: { email: 'legacy-new@example.test' } })).status).toBe(200);
    await h.confirm('legacy-new@example.test');
    const stale = await post(legacy('all'));
    expect(stale.statusCode).toBe(200);
    expect(stale.body).toContain('no longer gets Herald emails');
    expect((await me()).email).toBe('legacy-new@example.test');
  });

  it('deleting the subscriber removes every key they had, their sessions and their links', async () => {
    const b = await h.newSubscriber({ email: 'gone@example.test', topics: { japan: { cadence: 'instant', channels: ['push'] }, cricket: { cadence: 'daily', channels: [] } } });
    await h.confirm('gone@example.test');
    await api('/api/me/push-subscriptions', { method: 'POST', token: b.token, body: h.push.newDevice().subscription });
    await h.t.herald.stores.ledger.addToInbox(b.id, item('s9', 'push', 3000));
    await h.t.herald.stores.ledger.claim(b.id, 's9', 'push', 'job-1', 'japan', 3000, 30_000);
    const keysOf = async () => Object.keys(await h.snapshot()).filter((k) => k.includes(`{s:${b.id}}`));
    expect((await keysOf()).length).toBeGreaterThan(4);
    const before = await h.snapshot();

    const del = await b.c.api('/api/me', { method: 'DELETE' });
    expect(del.status).toBe(204);
    expect(await keysOf()).toEqual([]);
    const after = await h.snapshot();
    // Nothing else of theirs remains: no token, link, email index or follower-set entry names them.
    const leftovers = Object.entries(after).filter(([, v]) => JSON.stringify(v).includes(b.id));
    expect(leftovers).toEqual([]);
    // Other readers' data is untouched.
    for (const [k, v] of Object.entries(before)) if (k.includes(`{s:${a.id}}`)) expect(after[k]).toEqual(v);
    expect((await webClient(h.t.baseUrl).api('/api/me', { token: b.token })).status).toBe(403);
    expect((await b.c.api('/api/me')).status).toBe(401);
  });
});
