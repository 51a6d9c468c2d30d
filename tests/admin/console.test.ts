import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderLineChart, renderSparkline, niceMax } from '../../src/web/admin/charts.ts';
import { manualClock } from '../helpers/clock.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';

const ADMIN = 'test-admin-token-0123456789abcdef';
const auth = { authorization: `Bearer ${ADMIN}` };

describe('charts', () => {
  it('rounds the y axis up to 1, 2 or 5 times a power of ten', () => {
    expect([0, 0.7, 3, 7, 12, 180, 4100].map(niceMax)).toEqual([1, 1, 5, 10, 20, 200, 5000]);
  });

  it('draws one polyline per series, scaled into the plot, with escaped labels', () => {
    const svg = renderLineChart({
      title: 'Alerts <sent>', from: 0, to: 120_000, width: 200, height: 100,
      series: [{ name: 'push & email', points: [{ at: 0, value: 0 }, { at: 60_000, value: 5 }, { at: 120_000, value: 10 }] }],
    });
    expect(svg).toContain('<title>Alerts &lt;sent&gt;</title>');
    expect(svg).toContain('push &amp; email');
    // x from 48 to 188, y from 60 (value 0) to 28 (value 10 = the axis max).
    expect(svg).toContain('points="48,60 118,44 188,28"');
    expect(svg).not.toContain('no events');
  });

  it('says so when a period had no events', () => {
    expect(renderLineChart({ title: 't', from: 0, to: 1, series: [{ name: 's', points: [{ at: 0, value: 0 }] }] })).toContain('no events in this period');
  });

  it('draws a sparkline', () => {
    expect(renderSparkline([0, 2, 4], { width: 20, height: 10, label: 'items per day' })).toContain('points="0,8 10,5 20,2"');
  });
});

describe('admin console', () => {
  let t: TestHerald;
  let smtp: SmtpSink;
  const clock = manualClock('2027-01-15T12:00:00Z');
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${t.baseUrl}${path}`, { headers });

  beforeAll(async () => {
    smtp = await startSmtpSink();
    t = await startTestHerald({ name: 'console', clock, smtpUrl: smtp.url });
    const stats = t.herald.stores.stats;
    const now = clock.now();
    for (let i = 0; i < 5; i++) await stats.incr('herald_alerts_total', { channel: 'push', outcome: 'sent' }, now - i * 60_000);
    await stats.incr('herald_alerts_total', { channel: 'email', outcome: 'sent' }, now - 120_000, 3);
    await stats.incr('herald_alerts_total', { channel: 'push', outcome: 'failed', reason: 'push service answered 400' }, now - 60_000);
    await stats.incr('herald_stories_ingested_total', {}, now - 30 * 60_000, 7);
    await stats.incr('herald_alerts_total', { channel: 'push', outcome: 'sent' }, now - 3 * 24 * 3600_000, 11);
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it.each(['/admin', '/admin?range=7d', '/admin/charts/alerts.svg', '/admin/events', '/admin/assets/admin.js', '/admin/queues', '/admin/queues/api/queues'])(
    '%s answers 401 without the admin token and leaks nothing',
    async (path) => {
      const res = await get(path);
      expect(res.status).toBe(401);
      const body = await res.text();
      expect(body).toBe('{"error":"admin token required"}');
    },
  );

  it('the overview shows totals, live queues and charts of the last 24 hours', async () => {
    const res = await get('/admin', auth);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toMatch(/<span class="v">5<\/span><span class="k">push alerts sent<\/span>/);
    expect(html).toMatch(/<span class="v">3<\/span><span class="k">email alerts sent<\/span>/);
    expect(html).toMatch(/<span class="v">7<\/span><span class="k">stories ingested<\/span>/);
    expect(html).toContain('<tr data-queue="push">');
    for (const id of ['stories', 'alerts', 'failures', 'lateness']) expect(html).toContain(`data-chart="${id}"`);
    expect(html).toContain('push service answered 400');
    expect(html).not.toMatch(/<script(?![^>]*src=)/);
  });

  it("the console sends the settings page's security headers: strict CSP, no framing, no referrer", async () => {
    for (const path of ['/admin', '/admin/charts/alerts.svg']) {
      const res = await get(path, auth);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain("frame-ancestors 'none'");
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const denied = await get('/admin');
    expect(denied.headers.get('content-security-policy')).toContain("default-src 'self'");
  });

  it('the 7-day view counts the older events too', async () => {
    const html = await (await get('/admin?range=7d', auth)).text();
    expect(html).toMatch(/<span class="v">16<\/span><span class="k">push alerts sent<\/span>/);
  });

  it('serves a chart as SVG', async () => {
    const res = await get('/admin/charts/alerts.svg?range=24h', auth);
    expect(res.headers.get('content-type')).toContain('image/svg+xml');
    const svg = await res.text();
    expect(svg).toMatch(/^<svg /);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
  });

  it('streams live queue snapshots as server-sent events', async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const req = request(`${t.baseUrl}/admin/events`, { headers: auth }, (res) => {
        expect(res.headers['content-type']).toBe('text/event-stream');
        res.on('data', (chunk: Buffer) => {
          resolve(chunk.toString());
          req.destroy();
        });
      });
      req.on('error', reject);
      req.end();
    });
    expect(first).toMatch(/^event: snapshot\ndata: /);
    const data = JSON.parse(first.split('data: ')[1]!) as { queues: { queue: string }[] };
    expect(data.queues.map((q) => q.queue).sort()).toEqual(['classify', 'digest', 'email', 'feeds', 'push']);
  });

  it('slows down token guessing: after 10 wrong tokens an address gets 429', async () => {
    for (let i = 0; i < 10; i++) expect((await get('/admin', { authorization: `Bearer wrong-${i}` })).status).toBe(401);
    const blocked = await get('/admin', auth);
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('retry-after')).toBe('60');
  });
});

describe('admin console, shutting down', () => {
  it('a graceful shutdown ends the live streams of open console tabs instead of waiting for them', async () => {
    const smtp = await startSmtpSink();
    const t = await startTestHerald({ name: 'console-close', clock: manualClock('2027-01-15T12:00:00Z'), smtpUrl: smtp.url });
    let ended = false;
    await new Promise<void>((resolve, reject) => {
      const req = request(`${t.baseUrl}/admin/events`, { headers: auth }, (res) => {
        res.once('data', () => resolve());
        res.on('end', () => void (ended = true));
        res.on('error', () => void (ended = true));
      });
      req.on('error', reject);
      req.end();
    });
    // Before: app.close() waited for the tab to go away, so the shutdown deadline killed the process instead.
    const closed = await Promise.race([t.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open after 5 s'), 5000))]);
    expect(closed).toBe('closed');
    expect(ended).toBe(true);
    await smtp.close();
  }, 20_000);
});
