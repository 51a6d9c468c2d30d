import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Story } from '../../src/model.ts';
import { storyIdFor } from '../../src/ingest/normalize.ts';
import { manualClock } from '../helpers/clock.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testRedis } from '../helpers/redis.ts';
import { topicStatsKey } from '../../src/store/ledger.ts';
import { confirmationLink, followConfirmation, isAccountMail, webClient } from '../helpers/web-client.ts';

/** Readers' own alerts through the JSON API of a whole Herald (real Redis, real SMTP), and their fan-out. */
describe('own alerts: API, preview and delivery', () => {
  const clock = manualClock('2027-01-15T00:00:00Z');
  let feeds: FixtureServer;
  let smtp: SmtpSink;
  let t: TestHerald;
  const redis = testRedis();

  const api = async (path: string, init: { method?: string; body?: unknown; token?: string } = {}) => {
    const res = await t.herald.web.inject({
      method: (init.method ?? 'GET') as 'GET',
      url: path,
      headers: init.token ? { authorization: `Bearer ${init.token}` } : {},
      ...(init.body !== undefined ? { payload: init.body as object } : {}),
    });
    return { status: res.statusCode, body: res.body ? res.json() : null };
  };
  /** A reader created as the settings page does (cookie and CSRF token), with the address confirmed by its link. */
  const newReader = async (body: Record<string, unknown> = {}) => {
    const r = await webClient(t.baseUrl).api('/api/subscribers', { method: 'POST', body });
    expect(r.status).toBe(201);
    if (typeof body.email === 'string') expect((await followConfirmation(confirmationLink(smtp.to(body.email)))).status).toBe(200);
    return r.body.token as string;
  };

  /** Stories the classifier saw in the last days, as the preview replays them. */
  const addPastStory = async (n: number, title: string, summary: string, ageHours: number) => {
    const at = clock.now() - ageHours * 3600_000;
    const story: Story = { id: storyIdFor('past', `past-${n}`), feedId: 'past', guid: `past-${n}`, url: `https://past.example.test/${n}`, title, summary, categories: [], publishedAt: at, firstSeenAt: at };
    await t.herald.stores.stories.put(story);
    await t.herald.stores.recent.add(story.id, at);
  };

  beforeAll(async () => {
    feeds = await startFixtureServer({ '/wire.xml': { file: 'feeds/india-japan.xml' } });
    smtp = await startSmtpSink();
    t = await startTestHerald({ name: 'alerts', clock, smtpUrl: smtp.url, feeds: [{ id: 'wire', url: feeds.url('/wire.xml') }], env: { HERALD_MAX_ALERTS_PER_SUBSCRIBER: '3' } });
    await addPastStory(1, 'Jaishankar meets Quad counterparts in Tokyo', 'The ministers discussed the Indo-Pacific.', 30);
    await addPastStory(2, 'Budget session opens in Parliament', 'External Affairs Minister Jaishankar answered questions on Japan ties.', 50);
    await addPastStory(3, 'Jaishankar in Washington for Quad meeting', 'Old story outside a two-day window.', 24 * 6);
    await addPastStory(4, 'Osaka Expo closes', 'Visitors from around the world.', 10);
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await redis.quit();
    await Promise.all([feeds?.close(), smtp?.close()]);
  });

  it('refuses a malformed query with 400, the position and what was expected, and stores nothing', async () => {
    const token = await newReader();
    const r = await api('/api/me/alerts', { method: 'POST', token, body: { name: 'Broken', query: '"Jaishankar" AND (Japan OR' } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'syntax', position: 26, field: 'query' });
    expect(r.body.expected).toContain('a term');
    expect(r.body.error).toMatch(/^invalid query: at character 27: expected a term/);
    expect((await api('/api/me/alerts', { token })).body.alerts).toEqual([]);
  });

  it('refuses a pure negation and an over-long query, saying why', async () => {
    const token = await newReader();
    const neg = await api('/api/me/alerts', { method: 'POST', token, body: { name: 'Not cricket', query: 'NOT cricket' } });
    expect(neg.status).toBe(400);
    expect(neg.body.code).toBe('refused');
    expect(neg.body.error).toMatch(/contain none of its words/);
    const long = await api('/api/me/alerts', { method: 'POST', token, body: { name: 'Long', query: 'japan '.repeat(100) } });
    expect(long.status).toBe(400);
    expect(long.body.code).toBe('too-long');
    expect(long.body.error).toContain('at most 500');
  });

  it('creates, lists, renames, re-queries and deletes an alert of the signed-in reader only', async () => {
    const token = await newReader();
    const other = await newReader();
    const created = await api('/api/me/alerts', { method: 'POST', token, body: { name: 'Jaishankar', query: 'jaishankar', cadence: 'daily' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'Jaishankar', query: 'jaishankar', cadence: 'daily', channels: [] });
    const id = created.body.id as string;
    expect((await api('/api/me/alerts', { token: other })).body.alerts).toEqual([]);
    expect((await api(`/api/me/alerts/${id}`, { method: 'PATCH', token: other, body: { name: 'Mine now' } })).status).toBe(404);

    const renamed = await api(`/api/me/alerts/${id}`, { method: 'PATCH', token, body: { name: 'EAM travels', query: 'jaishankar AND quad', cadence: 'instant', channels: ['email'] } });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id, name: 'EAM travels', query: 'jaishankar AND quad', cadence: 'instant', channels: ['email'] });
    const badEdit = await api(`/api/me/alerts/${id}`, { method: 'PATCH', token, body: { query: 'quad OR' } });
    expect(badEdit.status).toBe(400);
    expect((await api('/api/me/alerts', { token })).body.alerts).toMatchObject([{ id, name: 'EAM travels', query: 'jaishankar AND quad' }]);
    // Saving the catalog settings form leaves the own alert's follow alone.
    expect((await api('/api/me', { method: 'PUT', token, body: { topics: { japan: { cadence: 'daily', channels: [] } } } })).status).toBe(200);
    expect((await api('/api/me', { token })).body.topics[id]).toMatchObject({ cadence: 'instant', channels: ['email'] });

    await t.herald.stores.stories.logForTopics(storyIdFor('past', 'past-1'), [id], clock.now());
    expect((await api(`/api/me/alerts/${id}`, { method: 'DELETE', token })).status).toBe(204);
    expect((await api('/api/me/alerts', { token })).body.alerts).toEqual([]);
    // Its story log goes too: nothing would add to it, so nothing would ever trim it.
    expect(await t.herald.stores.stories.loggedBetween(id, 0, clock.now() + 1)).toEqual([]);
    expect((await api('/api/me', { token })).body.topics[id]).toBeUndefined();
    expect((await api(`/api/me/alerts/${id}`, { method: 'DELETE', token })).status).toBe(404);
  });

  it('a deleted account takes its own alerts with it: no classifier matches them any more', async () => {
    const token = await newReader();
    const created = await api('/api/me/alerts', { method: 'POST', token, body: { name: 'Osaka', query: 'osaka', cadence: 'daily' } });
    const alertId = created.body.id as string;
    const story = storyIdFor('past', 'past-4');
    await t.herald.stores.stories.logForTopics(story, [alertId], clock.now());
    expect((await t.herald.registry.current()).get(alertId)?.name).toBe('Osaka');

    expect((await api('/api/me', { method: 'DELETE', token })).status).toBe(204);
    expect(await t.herald.stores.customs.getMany([alertId])).toEqual([]);
    expect((await t.herald.registry.current()).get(alertId)).toBeUndefined();
    expect(await t.herald.stores.stories.loggedBetween(alertId, 0, clock.now() + 1)).toEqual([]);
  });

  it('needs a signed-in reader and caps the number of alerts', async () => {
    expect((await api('/api/me/alerts')).status).toBe(401);
    // A browser-style POST without a session is stopped by the CSRF check before authentication.
    expect((await api('/api/me/alerts/preview', { method: 'POST', body: { query: 'japan' } })).status).toBe(403);
    const token = await newReader();
    for (const q of ['japan', 'india', 'quad']) expect((await api('/api/me/alerts', { method: 'POST', token, body: { name: q, query: q } })).status).toBe(201);
    const version = await t.herald.stores.customs.version();
    for (let i = 0; i < 5; i++) {
      const refused = await api('/api/me/alerts', { method: 'POST', token, body: { name: 'osaka', query: 'osaka' } });
      expect(refused.status).toBe(409);
      expect(refused.body.error).toContain('3 alerts');
    }
    // A refused create announced a ghost id twice: every classifier then fetched ids that never existed.
    expect(await t.herald.stores.customs.version()).toBe(version);
  });

  it('previews the stories of the last N days a query would have matched and the alerts it would have sent', async () => {
    const token = await newReader();
    const r = await api('/api/me/alerts/preview', { method: 'POST', token, body: { query: 'jaishankar AND (japan OR quad)', days: 3 } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ days: 3, scanned: 3, matched: 2, alerts: 2 });
    expect(r.body.stories.map((s: { title: string }) => s.title)).toEqual(['Jaishankar meets Quad counterparts in Tokyo', 'Budget session opens in Parliament']);
    expect(r.body.stories[0].why).toBe('Matched: Jaishankar in title, Quad in title');
    expect(r.body.stories[0].hits[0]).toMatchObject({ term: 'jaishankar', field: 'title', text: 'Jaishankar', weight: 3 });

    // "Only the best": the story naming Jaishankar and Japan only in its summary would not have alerted.
    expect((await api('/api/me', { method: 'PUT', token, body: { quality: 'best' } })).body.quality).toBe('best');
    const best = await api('/api/me/alerts/preview', { method: 'POST', token, body: { query: 'jaishankar AND (japan OR quad)', days: 3 } });
    expect(best.body).toMatchObject({ matched: 2, alerts: 1 });

    expect((await api('/api/me/alerts/preview', { method: 'POST', token, body: { query: 'jaishankar', days: 30 } })).status).toBe(400);
    const bad = await api('/api/me/alerts/preview', { method: 'POST', token, body: { query: 'title:' } });
    expect(bad.status).toBe(400);
    expect(bad.body.expected).toContain('a term');
  });

  it('refuses a query that would have matched most recent stories', async () => {
    for (let i = 0; i < 25; i++) await addPastStory(100 + i, `Market update ${i}: shares move`, 'Stocks closed mixed.', 1 + i);
    const token = await newReader();
    const r = await api('/api/me/alerts', { method: 'POST', token, body: { name: 'Shares', query: 'shares OR stocks' } });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('refused');
    expect(r.body.error).toMatch(/matches 25 of the 29 stories of the last 7 days \(86%/);
  });

  it('delivers an own alert to its owner once, named by the alert, and respects "only the best"', async () => {
    // A: own alert by email, and also follows Japan by email: one email for the story, not two.
    const a = await newReader({ email: 'a@example.test', topics: { japan: { cadence: 'instant', channels: ['email'] } } });
    const alertA = await api('/api/me/alerts', { method: 'POST', token: a, body: { name: 'Jaishankar abroad', query: '"Jaishankar" AND (Japan OR Quad)', cadence: 'instant', channels: ['email'] } });
    expect(alertA.status).toBe(201);
    // B and C: an alert on a word only the summary has (score 1); C chose "only the best".
    const b = await newReader({ email: 'b@example.test' });
    const c = await newReader({ email: 'c@example.test', quality: 'best' });
    for (const token of [b, c]) {
      expect((await api('/api/me/alerts', { method: 'POST', token, body: { name: 'Minister watch', query: 'jaishankar', channels: ['email'] } })).status).toBe(201);
    }

    await t.herald.enqueue('FeedFetch', { feedId: 'wire' }, { jobId: 'fetch-wire-alerts' });
    await t.waitIdle();

    // Alerts only: the confirmation and manage-link emails each reader got are not what this counts.
    const alertsTo = (address: string) => smtp.to(address).filter((m) => !isAccountMail(m));
    const toA = alertsTo('a@example.test');
    expect(toA).toHaveLength(1);
    // The own alert explains more (score 3 + 3 + 1 = 7, the same as Japan's): either names the single email.
    expect(toA[0]!.subject).toMatch(/^(Japan|Jaishankar abroad): India and Japan foreign ministers hold talks in Tokyo/);
    expect(alertsTo('b@example.test').map((m) => m.subject)).toEqual(['Minister watch: India and Japan foreign ministers hold talks in Tokyo on Quad and UN reform']);
    expect(alertsTo('b@example.test')[0]!.text).toContain('Matched: Jaishankar in summary');
    // The email's stop link names the alert as the reader named it.
    const stop = /Stop Minister watch alerts: (\S+)/.exec(alertsTo('b@example.test')[0]!.text ?? '')?.[1];
    expect(stop).toBeDefined();
    expect(await (await fetch(stop!)).text()).toContain('Unsubscribe from Minister watch emails?');
    expect(alertsTo('c@example.test')).toHaveLength(0);
    const inbox = await api('/api/me/inbox', { token: b });
    expect(inbox.body.items).toMatchObject([{ why: 'Matched: Jaishankar in summary' }]);
  });

  it('shows a reader the delivery counts of their own alerts, and forgets them with the alert and with the account', async () => {
    // Three more readers with the same own alert, then the story classified again: only they have no record of it yet.
    const storyId = (await t.herald.stores.stories.getMany(await t.herald.stores.recent.between(0, clock.now() + 1, 100)))
      .find((s) => s.title.startsWith('India and Japan foreign ministers'))!.id;
    const readers = [];
    for (const address of ['d@example.test', 'e@example.test', 'f@example.test']) {
      const token = await newReader({ email: address });
      const created = await api('/api/me/alerts', { method: 'POST', token, body: { name: 'Minister watch', query: 'jaishankar', channels: ['email'] } });
      expect(created.status).toBe(201);
      readers.push({ token, alertId: created.body.id as string });
    }
    await t.herald.enqueue('StoryClassify', { storyId }, { jobId: 'classify-again-own-alert-stats' });
    await t.waitIdle();
    const [d, e, f] = readers as [(typeof readers)[number], (typeof readers)[number], (typeof readers)[number]];
    expect((await api('/api/me/clicks', { method: 'POST', token: d.token, body: { storyId, channel: 'email' } })).body).toEqual({ counted: true });

    const zero = { sent: 0, failed: 0, skipped: 0, clicked: 0 };
    const listed = await api('/api/me/alerts', { token: d.token });
    expect(listed.body.alerts).toMatchObject([{ id: d.alertId, stats: { push: zero, email: { ...zero, sent: 1, clicked: 1 } } }]);
    expect((await api('/api/me/alerts', { token: e.token })).body.alerts).toMatchObject([{ id: e.alertId, stats: { push: zero, email: { ...zero, sent: 1 } } }]);

    // An alert's counters: 1 while they count, 0 once forgotten (no counts left, and what stays of the key expires).
    const counters = async (alertId: string) => {
      const key = topicStatsKey(t.prefix, alertId);
      const fields = Object.keys(await redis.hgetall(key)).filter((f) => f !== 'forgottenAt');
      if (fields.length > 0) return 1;
      return (await redis.exists(key)) === 0 || (await redis.pttl(key)) > 0 ? 0 : 'a key that never expires';
    };
    expect(await counters(d.alertId)).toBe(1);
    expect((await api(`/api/me/alerts/${d.alertId}`, { method: 'DELETE', token: d.token })).status).toBe(204);
    expect(await counters(d.alertId)).toBe(0);
    // The email of a deleted alert opened later: the click is the reader's, but it makes no counter nothing would delete.
    expect((await api(`/api/me/alerts/${f.alertId}`, { method: 'DELETE', token: f.token })).status).toBe(204);
    expect((await api('/api/me/clicks', { method: 'POST', token: f.token, body: { storyId, channel: 'email' } })).status).toBe(200);
    expect(await counters(f.alertId)).toBe(0);
    expect(await counters(e.alertId)).toBe(1);
    expect((await api('/api/me', { method: 'DELETE', token: e.token })).status).toBe(204);
    expect(await counters(e.alertId)).toBe(0);
  });
});
