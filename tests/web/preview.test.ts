import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Story } from '../../src/model.ts';
import { webClient } from '../helpers/web-client.ts';
import { startWebHarness, type WebHarness } from './harness.ts';

/** Alert previews on a real HTTP server: what they cost the other requests, and their own rate limit. */
const STORIES = 4000;
const PREVIEWS_PER_MINUTE = 3;

describe('alert previews', () => {
  let h: WebHarness;
  beforeAll(async () => {
    h = await startWebHarness('web-preview', { HERALD_RATE_LIMIT_PREVIEWS_PER_MINUTE: String(PREVIEWS_PER_MINUTE), HERALD_MAX_ALERTS_PER_SUBSCRIBER: '1' });
    const { stories, recent } = h.t.herald.stores;
    const now = h.clock.now();
    for (let i = 0; i < STORIES; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, STORIES - i) }, async (_, j) => {
        const k = i + j;
        const story: Story = {
          id: `previewstory${k}`, feedId: 'wire', guid: null, url: `https://wire.example.test/${k}`,
          title: k === 7 ? 'Zyzzyva sighted in Kerala' : `Council meeting ${k} ends without a vote`,
          summary: 'Members of the council met again on Tuesday to discuss the budget for roads, schools and water, and adjourned until next week after a long debate.',
          categories: ['Local'], publishedAt: now - k * 1000, firstSeenAt: now - k * 1000,
        };
        await stories.put(story);
        await recent.add(story.id, story.firstSeenAt);
      }));
    }
  }, 120_000);
  afterAll(async () => h?.close());

  it('answers other requests while a preview of thousands of stories runs, and a second preview analyzes nothing again', async () => {
    const { token } = await h.newSubscriber();
    const analyses = h.t.herald.previewAnalyses;
    expect(analyses.tokenized).toBe(0);
    const order: string[] = [];
    const preview = webClient(h.t.baseUrl).raw('/api/me/alerts/preview', { method: 'POST', token, body: { query: 'zyzzyva' } }).then((r) => {
      order.push('preview');
      return r;
    });
    // Wait until the preview is analyzing stories (past its Redis reads), then ask for something else.
    while (analyses.tokenized === 0 && order.length === 0) await nextTurn();
    const other = await webClient(h.t.baseUrl).raw('/api/topics').then((r) => {
      order.push('other');
      return r;
    });
    const done = await preview;
    expect(other.status).toBe(200);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ scanned: STORIES, matched: 1 });
    expect(order).toEqual(['other', 'preview']);

    expect(analyses.tokenized).toBe(STORIES);
    const again = await webClient(h.t.baseUrl).raw('/api/me/alerts/preview', { method: 'POST', token, body: { query: 'kerala' } });
    expect(again.body).toMatchObject({ scanned: STORIES, matched: 1 });
    expect(analyses.tokenized).toBe(STORIES);
  });

  it('limits previews per subscriber, with Retry-After; creating an alert or changing its query replays too and counts', async () => {
    const { token } = await h.newSubscriber();
    const c = webClient(h.t.baseUrl);
    const preview = () => c.raw('/api/me/alerts/preview', { method: 'POST', token, body: { query: 'zyzzyva', days: 1 } });
    for (let i = 0; i < PREVIEWS_PER_MINUTE - 1; i++) expect((await preview()).status).toBe(200);
    const created = await c.raw('/api/me/alerts', { method: 'POST', token, body: { name: 'Zyzzyva', query: 'zyzzyva' } });
    expect(created.status).toBe(201);
    const refused = await preview();
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatch(/^too many previews for this subscriber: try again in \d+ s$/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await c.raw(`/api/me/alerts/${created.body.id}`, { method: 'PATCH', token, body: { query: 'kerala' } })).status).toBe(429);
    expect((await c.raw('/api/me/alerts', { token })).body.alerts.map((a: { query: string }) => a.query)).toEqual(['zyzzyva']);
    // Another reader has a count of their own.
    const other = await h.newSubscriber();
    expect((await c.raw('/api/me/alerts/preview', { method: 'POST', token: other.token, body: { query: 'zyzzyva' } })).status).toBe(200);
  });

  it('refuses a create at the alert limit before replaying anything: not counted as a preview, nothing announced', async () => {
    const { token } = await h.newSubscriber();
    const c = webClient(h.t.baseUrl);
    expect((await c.raw('/api/me/alerts', { method: 'POST', token, body: { name: 'Zyzzyva', query: 'zyzzyva' } })).status).toBe(201);
    const version = await h.t.herald.stores.customs.version();
    // Twice the preview limit: each would have been a replay (and a 429 past the third) before the limit was checked.
    for (let i = 0; i < PREVIEWS_PER_MINUTE * 2; i++) {
      const r = await c.raw('/api/me/alerts', { method: 'POST', token, body: { name: `Kerala ${i}`, query: 'kerala' } });
      expect(r.status).toBe(409);
      expect(r.body.error).toBe('you already have 1 alerts, the most allowed: delete one first');
    }
    expect(await h.t.herald.stores.customs.version()).toBe(version);
    expect((await c.raw('/api/me/alerts/preview', { method: 'POST', token, body: { query: 'kerala' } })).status).toBe(200);
  });
});
