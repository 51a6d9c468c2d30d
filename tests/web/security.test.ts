import { readFileSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webClient } from '../helpers/web-client.ts';
import { startWebHarness, type WebHarness } from './harness.ts';

describe('CSRF and security headers', () => {
  let h: WebHarness;
  beforeAll(async () => {
    h = await startWebHarness('web-csrf');
  });
  afterAll(async () => h?.close());

  it('refuses a cookie-authenticated change without the CSRF token, or with a wrong one, and changes nothing', async () => {
    const { c } = await h.newSubscriber({ digestTime: '08:00' });
    const before = await h.snapshot();
    const none = await c.raw('/api/me', { method: 'PUT', body: { digestTime: '09:00' }, csrf: null });
    const wrong = await c.raw('/api/me', { method: 'PUT', body: { digestTime: '09:00' }, csrf: 'forged-token' });
    expect([none.status, wrong.status]).toEqual([403, 403]);
    expect(none.body.error).toMatch(/csrf/i);
    expect(await h.snapshot()).toEqual(before);
    const ok = await c.api('/api/me', { method: 'PUT', body: { digestTime: '09:00' } });
    expect(ok.status).toBe(200);
    expect(ok.body.digestTime).toBe('09:00');
  });

  it('refuses a form post from another site that would create a subscriber', async () => {
    const before = await h.snapshot();
    const res = await webClient(h.t.baseUrl).raw('/api/subscribers', { method: 'POST', rawBody: 'timeZone=UTC', contentType: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(403);
    expect(await h.snapshot()).toEqual(before);
  });

  it('lets bearer-token API clients change settings without a CSRF token', async () => {
    const { token } = await h.newSubscriber();
    const res = await webClient(h.t.baseUrl).raw('/api/me', { method: 'PUT', token, body: { digestTime: '10:15' } });
    expect(res.status).toBe(200);
  });

  it('sends a strict CSP without inline script or style, and the other security headers', async () => {
    for (const path of ['/', '/api/topics']) {
      const res = await fetch(`${h.t.baseUrl}${path}`);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("object-src 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).not.toContain('unsafe-eval');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    }
  });
});

describe('rate limits', () => {
  let h: WebHarness;
  beforeAll(async () => {
    // Behind a trusted proxy, X-Forwarded-For stands for distinct clients.
    h = await startWebHarness('web-rate', { HERALD_RATE_LIMIT_WRITES_PER_MINUTE: '3', HERALD_RATE_LIMIT_EMAILS_PER_HOUR: '2', HERALD_TRUST_PROXY: 'true' });
  });
  afterAll(async () => h?.close());

  const from = (ip: string) => ({ 'x-forwarded-for': ip });

  it('limits writes per client address, with Retry-After, and the refused write changes nothing', async () => {
    const { token } = await h.newSubscriber();
    const c = webClient(h.t.baseUrl);
    for (let i = 0; i < 3; i++) expect((await c.raw('/api/me', { method: 'PUT', token, body: { digestTime: `0${i}:00` }, headers: from('10.0.0.1') })).status).toBe(200);
    const before = await h.snapshot();
    const refused = await c.raw('/api/me', { method: 'PUT', token, body: { digestTime: '05:00' }, headers: from('10.0.0.1') });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await h.snapshot()).toEqual(before);
  });

  it('limits writes per subscriber across client addresses', async () => {
    const { token } = await h.newSubscriber();
    const c = webClient(h.t.baseUrl);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await c.raw('/api/me', { method: 'PUT', token, body: { digestTime: '07:00' }, headers: from(`10.1.0.${i + 1}`) })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  it('limits emails per address: the third link request in an hour is refused, and no third mail goes out', async () => {
    const c = webClient(h.t.baseUrl);
    await c.ensureCsrf();
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await c.raw('/api/manage-link', { method: 'POST', body: { email: 'target@example.test' }, headers: from(`10.2.0.${i + 1}`) })).status);
    expect(statuses).toEqual([202, 202, 429]);
  });

  it('limits confirmation emails per subscriber', async () => {
    const { token } = await h.newSubscriber();
    const c = webClient(h.t.baseUrl);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await c.raw('/api/me', { method: 'PUT', token, body: { email: `r${i}@example.test` }, headers: from(`10.3.0.${i + 1}`) })).status);
    expect(statuses).toEqual([200, 200, 429]);
    expect(h.smtp.to('r2@example.test')).toHaveLength(0);
  });
});

describe('front end budget', () => {
  const dir = new URL('../../src/web/public/', import.meta.url);
  it('ships under 100 KB of JavaScript, gzip-compressed', () => {
    const js = readdirSync(dir).filter((f) => f.endsWith('.js'));
    expect(js.sort()).toEqual(['app.js', 'sw.js']);
    const total = js.reduce((n, f) => n + gzipSync(readFileSync(new URL(f, dir))).length, 0);
    expect(total).toBeLessThan(100 * 1024);
  });

  it('has no inline script, no inline style and nothing from another origin', () => {
    const html = readFileSync(new URL('index.html', dir), 'utf8');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/i);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it('labels every form control in the page', () => {
    const html = readFileSync(new URL('index.html', dir), 'utf8');
    const ids = [...html.matchAll(/<(?:input|select)[^>]*\bid="([^"]+)"/g)].map((m) => m[1]!);
    for (const id of ids) {
      const labelled = html.includes(`for="${id}"`) || new RegExp(`<label[^>]*>\\s*<input[^>]*id="${id}"`).test(html);
      expect(labelled, `#${id} has a label`).toBe(true);
    }
  });
});
