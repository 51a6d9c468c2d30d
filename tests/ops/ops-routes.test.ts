import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualClock } from '../helpers/clock.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { confirmationLink, followConfirmation, webClient } from '../helpers/web-client.ts';

const ADMIN = 'test-admin-token-0123456789abcdef';

describe('operator routes: /readyz, /metrics, /admin/queues', () => {
  let t: TestHerald;
  let smtp: SmtpSink;
  let feeds: FixtureServer;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${t.baseUrl}${path}`, { headers });

  beforeAll(async () => {
    smtp = await startSmtpSink();
    feeds = await startFixtureServer({ '/wire.xml': { file: 'feeds/india-japan.xml' }, '/broken.xml': { status: 503 } });
    t = await startTestHerald({
      name: 'ops',
      clock: manualClock('2027-01-15T00:00:00Z'),
      smtpUrl: smtp.url,
      env: { HERALD_SCHEDULERS: 'true', HERALD_POLL_INTERVAL_SECONDS: '3600' },
    });
    const res = await webClient(t.baseUrl).api('/api/subscribers', { method: 'POST', body: { email: 'ops@example.test', topics: { japan: { cadence: 'instant', channels: ['email'] } } } });
    expect(res.status).toBe(201);
    expect((await followConfirmation(confirmationLink(smtp.to('ops@example.test')))).status).toBe(200);
    // Feeds come only now, so the running poll scheduler cannot fetch them before the reader exists.
    await t.herald.stores.feeds.sync([{ id: 'wire', url: feeds.url('/wire.xml') }, { id: 'broken', url: feeds.url('/broken.xml') }], 0);
    await t.herald.enqueue('FeedPollTick', {});
    await t.waitIdle();
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all([smtp?.close(), feeds?.close()]);
  });

  it('/readyz is ready when Redis, the queues and both schedulers are there', async () => {
    const res = await get('/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', checks: { redis: 'ok', queues: 'ok', schedulers: 'ok' } });
  });

  it('/metrics exposes queue depths and the jobs the pipeline ran, for Prometheus', async () => {
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('# TYPE herald_queue_jobs gauge');
    expect(text).toMatch(/herald_queue_jobs\{queue="email",state="waiting"\} 0/);
    expect(text).toContain('# TYPE herald_jobs_total counter');
    expect(text).toMatch(/herald_jobs_total\{name="AlertSendEmail",outcome="completed",queue="email"\} 1\n/);
    expect(text).toMatch(/herald_jobs_total\{name="FeedFetch",outcome="failed",queue="feeds"\} 1\n/);
    expect(text).toMatch(/herald_jobs_total\{name="StoryClassify",outcome="completed",queue="classify"\} 2\n/);
    expect(text).toContain('herald_process_resident_memory_bytes');
    // Pipeline events, counted where they happen and kept in Redis for every process.
    expect(text).toMatch(/herald_stories_ingested_total 2\n/);
    expect(text).toMatch(/herald_feed_fetches_total\{result="ok"\} 1\n/);
    expect(text).toMatch(/herald_feed_fetches_total\{code="http-status",result="error"\} 1\n/);
    expect(text).toMatch(/herald_alerts_total\{channel="email",outcome="sent"\} 1\n/);
    expect(text).toContain('# TYPE herald_story_to_delivery_seconds histogram');
    expect(text).toMatch(/herald_story_to_delivery_seconds_count\{channel="email"\} 1\n/);
    expect(text).toMatch(/herald_story_to_delivery_seconds_bucket\{channel="email",le="\+Inf"\} 1\n/);
  });

  it('/admin/queues answers 401 without the admin token and shows Bull Board with it', async () => {
    const denied = await get('/admin/queues');
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toContain('Basic');
    expect(await denied.text()).not.toContain('bull');
    expect((await get('/admin/queues', { authorization: 'Bearer wrong-token-wrong-token-wrong' })).status).toBe(401);
    const bearer = await get('/admin/queues', { authorization: `Bearer ${ADMIN}` });
    expect(bearer.status).toBe(200);
    expect(await bearer.text()).toContain('<title>');
    const basic = await get('/admin/queues/api/queues', { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` });
    expect(basic.status).toBe(200);
    const body = (await basic.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual(['{classify}', '{digest}', '{email}', '{feeds}', '{push}']);
  });

  it('/readyz says which scheduler is missing', async () => {
    await t.herald.queues.digest.removeJobScheduler('digest-tick');
    const res = await get('/readyz');
    expect(res.status).toBe(503);
    const body = (await res.json()) as { checks: Record<string, string> };
    expect(body.checks.schedulers).toContain('"digest-tick" is not registered');
  });
});
