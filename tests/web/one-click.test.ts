import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unsubscribeUrl } from '../../src/deliver/email/signed-links.ts';
import { SIGNING_KEY } from '../helpers/herald.ts';
import { createReader } from '../helpers/readers.ts';
import { startWebHarness, type WebHarness } from './harness.ts';

/**
 * RFC 8058 one-click unsubscribe as mail providers send it: a POST from the provider's servers, no cookie, no
 * CSRF token, the body "List-Unsubscribe=One-Click" as multipart/form-data or application/x-www-form-urlencoded.
 */
describe('one-click unsubscribe from a mail provider', () => {
  let h: WebHarness;
  // A low write limit, as a small deployment might set: one provider address posts for many readers.
  beforeAll(async () => {
    h = await startWebHarness('web-one-click', { HERALD_RATE_LIMIT_WRITES_PER_MINUTE: '3' });
  });
  afterAll(async () => h?.close());

  const reader = async (email: string) => {
    const subs = h.t.herald.stores.subscribers;
    const { id } = await createReader(subs, { email, timeZone: 'UTC', digestTime: '08:00' }, h.clock.now());
    await subs.setFollows(id, { japan: { cadence: 'instant', channels: ['email'] } });
    return id;
  };
  const stopsEmail = async (id: string) => (await h.t.herald.stores.subscribers.follows(id)).japan === undefined;

  it('a multipart/form-data POST (RFC 8058 3.1 allows it) stops the emails', async () => {
    const id = await reader('multipart@example.test');
    const form = new FormData();
    form.set('List-Unsubscribe', 'One-Click');
    const res = await fetch(unsubscribeUrl(h.t.baseUrl, SIGNING_KEY, id, 'japan', 'multipart@example.test'), { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect(await stopsEmail(id)).toBe(true);
  });

  it('a GET (a link scanner or prefetch) stops nothing', async () => {
    const id = await reader('prefetch@example.test');
    const res = await fetch(unsubscribeUrl(h.t.baseUrl, SIGNING_KEY, id, 'japan', 'prefetch@example.test'));
    expect(res.status).toBe(200);
    expect(await stopsEmail(id)).toBe(false);
  });

  it("many readers' one-click POSTs from the provider's one address all take effect, past the per-address write limit", async () => {
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(await reader(`many${i}@example.test`));
    const statuses = [];
    for (const [i, id] of ids.entries()) {
      const res = await fetch(unsubscribeUrl(h.t.baseUrl, SIGNING_KEY, id, 'japan', `many${i}@example.test`), {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click',
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    for (const id of ids) expect(await stopsEmail(id)).toBe(true);
  });

  it('a forged link is still refused, whatever the write limit', async () => {
    const id = await reader('forged@example.test');
    const link = unsubscribeUrl(h.t.baseUrl, SIGNING_KEY, id, 'japan', 'forged@example.test').replace(/sig=[^&]+/, 'sig=AAAA');
    const res = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    expect(res.status).toBe(400);
    expect(await stopsEmail(id)).toBe(false);
  });
});
