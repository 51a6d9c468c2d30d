import { existsSync, mkdirSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_NAV } from '../../src/web/admin/pages.ts';
import { manualClock } from '../helpers/clock.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { createReader } from '../helpers/readers.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { hasChromium, launchChromium, resultsDir } from '../helpers/browser.ts';

/**
 * The operator console in Debian's chromium, logged in with the admin token as a browser does (HTTP Basic):
 * feeds checked from the page, a broken feed in red, the overview's charts after the pipeline ran, and the
 * trace of a delivered and of a suppressed alert.
 */

const ADMIN = 'test-admin-token-0123456789abcdef';
const STORY_URL = 'https://wire.example.test/world/india-japan-foreign-ministers-tokyo?utm_source=rss';
const slow = { timeout: 20_000 };

describe.skipIf(!hasChromium)('operator console in a real browser', () => {
  const clock = manualClock('2027-01-15T06:00:00Z');
  let fixtures: FixtureServer;
  let smtp: SmtpSink;
  let t: TestHerald;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  const checkNow = async (feedId: string) => {
    await Promise.all([page.waitForURL(/\/check$/), page.locator(`tr[data-feed="${feedId}"] button`, { hasText: 'Check now' }).click()]);
    return (await page.locator('.notice').textContent()) ?? '';
  };

  beforeAll(async () => {
    fixtures = await startFixtureServer({ '/wire.xml': { file: 'feeds/india-japan.xml' }, '/broken.xml': { status: 503, body: 'maintenance' } });
    smtp = await startSmtpSink();
    t = await startTestHerald({
      name: 'browser-console', clock, smtpUrl: smtp.url,
      feeds: [{ id: 'wire', url: fixtures.url('/wire.xml'), title: 'Test wire' }, { id: 'broken', url: fixtures.url('/broken.xml'), title: 'Broken wire' }],
    });
    const subs = t.herald.stores.subscribers;
    const a = await createReader(subs, { email: 'a@example.test' }, clock.now());
    await subs.setFollows(a.id, { japan: { cadence: 'instant', channels: ['email'] } });
    const b = await createReader(subs, { email: 'b@example.test' }, clock.now());
    await subs.setFollows(b.id, { japan: { cadence: 'instant', channels: ['email'], mutedUntil: clock.now() + 7 * 86_400_000 } });

    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, httpCredentials: { username: 'admin', password: ADMIN } });
    page = await context.newPage();
    mkdirSync(resultsDir, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await Promise.all([fixtures?.close(), smtp?.close()]);
  });

  it('checks feeds from the page; the broken one shows up red with its error', slow, async () => {
    await page.goto(`${t.baseUrl}/admin/feeds`);
    expect(await checkNow('wire')).toContain('Checked wire: 2 items, 2 new');
    expect(await checkNow('broken')).toContain('HTTP 503');
    await t.waitIdle();
    await page.goto(`${t.baseUrl}/admin/feeds`);
    const broken = page.locator('tr[data-feed="broken"]');
    expect(await broken.locator('.badge').textContent()).toBe('failing');
    expect(await broken.locator('.badge').evaluate((el) => getComputedStyle(el).backgroundColor)).toBe('rgb(179, 38, 30)');
    expect(await broken.locator('td').first().evaluate((el) => getComputedStyle(el).backgroundColor)).toBe('rgb(253, 236, 234)');
    expect(await broken.locator('.err').textContent()).toMatch(/^http-status: HTTP 503/);
    const wire = page.locator('tr[data-feed="wire"]');
    expect(await wire.locator('td').first().evaluate((el) => getComputedStyle(el).backgroundColor)).not.toBe('rgb(253, 236, 234)');
    expect(await wire.locator('.badge').textContent()).toBe('ok');
    await page.screenshot({ path: new URL('admin-feeds.png', resultsDir).pathname, fullPage: true });
  });

  it('the overview renders its charts with the data of that run', slow, async () => {
    await page.goto(`${t.baseUrl}/admin`);
    const jobs = page.locator('figure[data-chart="jobs"] svg');
    await jobs.waitFor();
    const series = await jobs.locator('polyline title').allTextContents();
    expect(series).toEqual(expect.arrayContaining(['classify', 'email']));
    expect(await jobs.textContent()).not.toContain('no events in this period');
    // The last minute's point of a series with data sits above the x axis (y 172 at height 220).
    const points = await jobs.locator('polyline').first().getAttribute('points');
    const ys = (points ?? '').split(' ').map((p) => Number(p.split(',')[1]));
    expect(Math.min(...ys)).toBeLessThan(172);
    expect(await page.locator('figure[data-chart]').count()).toBe(5);
    // Stories ingested and alerts sent are counted where they happen: their charts carry this run too.
    for (const id of ['stories', 'alerts']) expect(await page.locator(`figure[data-chart="${id}"] svg`).textContent()).not.toContain('no events in this period');
    expect(await page.locator('figure[data-chart="alerts"] polyline title').allTextContents()).toContain('email');
    expect(await page.locator('#live tr[data-queue="email"]').count()).toBe(1);
    await page.screenshot({ path: new URL('admin-overview.png', resultsDir).pathname, fullPage: true });
    expect(existsSync(new URL('admin-overview.png', resultsDir))).toBe(true);
  });

  it('the trace page explains a delivered and a suppressed alert', slow, async () => {
    await page.goto(`${t.baseUrl}/admin/trace`);
    await page.getByLabel('Subscriber (email or id)').fill('a@example.test');
    await page.getByLabel('Story (URL or id)').fill(STORY_URL);
    await Promise.all([page.waitForURL(/subscriber=/), page.getByRole('button', { name: 'Trace' }).click()]);
    const email = page.locator('li[data-channel="email"]');
    expect(await email.getAttribute('data-outcome')).toBe('sent');
    expect(await email.textContent()).toBe('email: sent at 2027-01-15T06:00:00.000Z after 1 attempt');
    expect(await page.locator('table.matches').textContent()).toContain('instant by email');

    await page.getByLabel('Subscriber (email or id)').fill('b@example.test');
    await Promise.all([page.waitForURL(/subscriber=/), page.getByRole('button', { name: 'Trace' }).click()]);
    expect(await page.locator('li[data-channel="email"]').getAttribute('data-outcome')).toBe('none');
    expect(await page.locator('li[data-channel="email"]').textContent()).toBe('email: no alert: muted until 2027-01-22T06:00:00.000Z');
    await page.screenshot({ path: new URL('admin-trace.png', resultsDir).pathname, fullPage: true });
  });

  it('without the admin token every console page answers 401 and shows nothing of Herald', slow, async () => {
    // The browser's request API: a page would stop at chromium's login prompt, which is the point.
    const anonymous = await browser.newContext();
    for (const [href] of ADMIN_NAV) {
      const res = await anonymous.request.get(`${t.baseUrl}${href}`);
      expect(res.status(), href).toBe(401);
      expect(res.headers()['www-authenticate'], href).toBe('Basic realm="Herald admin", charset="UTF-8"');
      expect(await res.text(), href).toBe('{"error":"admin token required"}');
    }
    await anonymous.close();
  });
});
