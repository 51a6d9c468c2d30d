import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualClock } from '../helpers/clock.ts';
import { startFixtureServer, type FixtureServer } from '../helpers/http-fixtures.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startPushService, type LocalPushService, type PushDevice } from '../helpers/push-server.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { confirmationLink, isAccountMail } from '../helpers/web-client.ts';
import { hasChromium, launchChromium, resultsDir } from '../helpers/browser.ts';

/**
 * A reader uses the settings page in Debian's chromium: topics, time settings, notifications (a real
 * encrypted push, decrypted by the local push service, handed to the page's service worker over CDP),
 * the inbox, and one-click unsubscribe from a real email.
 */

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const storyTitle = 'Bullet train line to Osaka reopens after typhoon repairs';
// The browser, the service worker and every Herald worker share two cores with other test files.
const slow = { timeout: 15_000 };

describe.skipIf(!hasChromium)('settings page in a real browser', () => {
  const clock = manualClock('2027-01-15T05:00:00Z');
  let fixtures: FixtureServer;
  let push: LocalPushService;
  let smtp: SmtpSink;
  let t: TestHerald;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let device: PushDevice;
  const address = 'reader@example.test';

  const me = () => page.evaluate(async () => (await fetch('/api/me')).json());
  /** The notifications the service worker shows now. */
  const shown = () => page.evaluate(async () =>
    (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body, url: (n.data as { url?: string } | null)?.url ?? null })));
  const closeAll = () => page.evaluate(async () => { for (const n of await (await navigator.serviceWorker.ready).getNotifications()) n.close(); });
  /** Hands `data` to the page's service worker as a push message (DevTools), and waits until a notification shows. */
  const deliverPush = async (data: string) => {
    const cdp = await context.newCDPSession(page);
    const registrations: { registrationId: string; scopeURL: string; isDeleted: boolean }[] = [];
    const versions: { registrationId: string; status: string }[] = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    cdp.on('ServiceWorker.workerVersionUpdated', (e) => versions.push(...e.versions));
    await cdp.send('ServiceWorker.enable');
    await page.evaluate(async () => void (await navigator.serviceWorker.ready));
    await expect.poll(() => registrations.some((r) => r.scopeURL === `${t.baseUrl}/` && !r.isDeleted), slow).toBe(true);
    const registration = registrations.filter((r) => r.scopeURL === `${t.baseUrl}/` && !r.isDeleted).at(-1)!;
    // DevTools learns of the activation a moment after the page does; a push delivered earlier is dropped.
    await expect.poll(() => versions.some((v) => v.registrationId === registration.registrationId && v.status === 'activated'), slow).toBe(true);
    // On a loaded machine DevTools may still drop the first delivery; the same message again only replaces
    // the notification (same tag), so a retry cannot fake a second one.
    for (let attempt = 0; attempt < 3 && (await shown()).length === 0; attempt++) {
      await cdp.send('ServiceWorker.deliverPushMessage', { origin: t.baseUrl, registrationId: registration.registrationId, data });
      await expect.poll(async () => (await shown()).length, { timeout: 5_000 }).toBe(1).catch(() => undefined);
    }
    await cdp.detach();
  };

  beforeAll(async () => {
    fixtures = await startFixtureServer({
      '/wire.xml': { file: 'feeds/browser-japan.xml' },
      '/stories/osaka-bullet-train-reopens': { file: 'pages/story.html', headers: { 'content-type': 'text/html; charset=utf-8' } },
    });
    push = await startPushService();
    smtp = await startSmtpSink();
    t = await startTestHerald({
      name: 'browser',
      clock,
      smtpUrl: smtp.url,
      pushCa: push.ca,
      pushOrigin: push.origin,
      feeds: [{ id: 'wire', url: fixtures.url('/wire.xml') }],
    });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'Europe/Berlin' });
    await context.grantPermissions(['notifications'], { origin: t.baseUrl });
    // No vendor push service is reachable: subscribe() answers with a subscription at the local push service,
    // whose keys that service holds, so what Herald sends is really encrypted for this "browser".
    device = push.newDevice();
    await context.addInitScript((sub) => {
      const fake = { endpoint: sub.endpoint, expirationTime: null, options: { userVisibleOnly: true }, toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }) };
      PushManager.prototype.subscribe = async function subscribe() {
        return fake as unknown as PushSubscription;
      };
    }, device.subscription);
    page = await context.newPage();
    mkdirSync(resultsDir, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await Promise.all([fixtures?.close(), push?.close(), smtp?.close()]);
  });

  it('saves instant Japan, daily Cricket, a time zone and a digest time', async () => {
    await page.goto(t.baseUrl);
    await expect.poll(() => page.locator('#cadence-japan').count(), slow).toBe(1);
    // The browser's own zone is preselected.
    expect(await page.locator('#timezone').inputValue()).toBe('Europe/Berlin');

    await page.fill('#topic-search', 'japan');
    expect(await page.locator('[data-topic-row="cricket"]').isHidden()).toBe(true);
    await page.selectOption('#cadence-japan', 'instant');
    await page.check('#email-japan');
    await page.fill('#topic-search', '');
    // Keyboard only: focus Cricket's cadence and pick "Daily" with the arrow keys.
    await page.focus('#cadence-cricket');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    expect(await page.locator('#cadence-cricket').inputValue()).toBe('daily');

    await page.fill('#email', address);
    await page.selectOption('#timezone', 'Asia/Tokyo');
    await page.fill('#digest-time', '07:30');
    await page.check('#quiet-on');
    await page.fill('#quiet-from', '23:00');
    await page.fill('#quiet-to', '06:30');
    await page.fill('#push-cap', '12');
    await page.selectOption('#held-alerts', 'digest');
    await page.selectOption('#digest-pushed', 'omit');
    await page.check('#digest-empty');
    await page.click('#save');
    await expect.poll(() => page.textContent('#save-status'), slow).toBe('Saved.');

    const settings = await me();
    expect(settings.timeZone).toBe('Asia/Tokyo');
    expect(settings.digestTime).toBe('07:30');
    expect(settings.delivery).toEqual({
      quietHours: { from: '23:00', to: '06:30' }, breakingThroughQuiet: true, dailyPushCap: 12, heldAlerts: 'digest', digestPushed: 'omit', digestSendEmpty: true,
    });
    expect(settings.topics.japan).toMatchObject({ cadence: 'instant', channels: ['push', 'email'] });
    expect(settings.topics.cricket).toMatchObject({ cadence: 'daily' });
    expect(settings.pendingEmail).toBe(address);
    expect(settings.email).toBeNull();
    // The identity cookie is HttpOnly: the page's script cannot read it.
    expect(await page.evaluate(() => document.cookie)).not.toContain('herald_token');
    const cookie = (await context.cookies()).find((c) => c.name === 'herald_token');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
  });

  it('confirms the address from the emailed link', async () => {
    const other = await context.newPage();
    await other.goto(confirmationLink(smtp.to(address)));
    // Opening the link changes nothing (mail scanners open links too); the button confirms.
    expect((await me()).email).toBeNull();
    await other.click('text=Confirm my address');
    await other.waitForLoadState();
    expect(await other.textContent('h1')).toBe('Your address is confirmed');
    await other.close();
    expect((await me()).email).toBe(address);
  });

  it('allows notifications and shows the push as a notification with the story', async () => {
    await page.reload();
    await page.click('#allow-push');
    await expect.poll(() => page.textContent('#save-status'), slow).toBe('Notifications are on for this browser.');
    expect((await me()).devices).toHaveLength(1);
    expect(await page.textContent('#push-state')).toContain('Notifications are allowed');

    await t.herald.enqueue('FeedFetch', { feedId: 'wire' }, { jobId: 'fetch-wire-browser' });
    await t.waitIdle();
    const received = push.received.filter((p) => p.deviceId === device.id);
    expect(received).toHaveLength(1);
    expect(received[0]!.payload.title).toBe(storyTitle);

    // The payload the local push service decrypted, delivered to the service worker as the browser would.
    await deliverPush(JSON.stringify(received[0]!.payload));
    expect(await shown()).toHaveLength(1);
    const [notification] = await shown();
    expect(notification!.title).toBe(storyTitle);
    expect(notification!.body).toBe(
      'Japanese rail operators restored full service between Tokyo and Osaka after crews rebuilt a washed-out embankment.\nMatched: Osaka in title, Japanese in summary, Tokyo in summary',
    );
  });

  it('sends a test notification to this device from the button', async () => {
    const before = push.received.length;
    await page.click('#test-push');
    await expect.poll(() => page.textContent('#test-push-status'), slow).toBe('Test notification sent to 1 of 1 device.');
    expect(push.received.slice(before).map((p) => [p.deviceId, p.payload.title])).toEqual([[device.id, 'Herald test notification']]);
  });

  it('lists the alert in the inbox with its topic and why it matched', async () => {
    await page.reload();
    const item = page.locator('#inbox li[data-story]');
    await expect.poll(() => item.count(), slow).toBe(1);
    expect(await item.locator('a').textContent()).toBe(storyTitle);
    const meta = await item.locator('.meta').textContent();
    expect(meta).toContain('Japan');
    expect(meta).toContain('Matched: Osaka in title');
    expect(await item.getAttribute('class')).toBe('unread');
  });

  it('edits, previews, renames and deletes an alert of the reader\'s own (when the server has the own-alerts API)', async (testCtx) => {
    if ((await page.evaluate(async () => (await fetch('/api/me/alerts')).status)) === 404) {
      console.warn('own-alerts editor not exercised: this build has no /api/me/alerts (classification stage)');
      expect(await page.locator('#alerts-section').isHidden()).toBe(true);
      testCtx.skip();
      return;
    }
    await page.reload();
    await expect.poll(() => page.locator('#alerts-section').isVisible(), slow).toBe(true);
    await page.click('#alert-new');
    await page.fill('#alert-name', 'Osaka trains');
    await page.fill('#alert-query', 'osaka (');
    await expect.poll(() => page.textContent('#alert-query-status'), slow).toContain('at character');
    expect(await page.getAttribute('#alert-query', 'aria-invalid')).toBe('true');
    await page.fill('#alert-query', 'osaka "bullet train"');
    await expect.poll(() => page.textContent('#alert-query-status'), slow).toMatch(/^Looks good: about/);
    expect(await page.locator('#alert-preview a').first().textContent()).toBe(storyTitle);
    await page.click('#alert-save');
    await expect.poll(() => page.locator('#alerts li[data-alert] strong').textContent(), slow).toBe('Osaka trains');
    await page.click('#alerts li[data-alert] >> text=Edit or rename');
    await page.fill('#alert-name', 'Osaka rail');
    await page.click('#alert-save');
    await expect.poll(() => page.locator('#alerts li[data-alert] strong').textContent(), slow).toBe('Osaka rail');
    await page.click('#alerts li[data-alert] >> text=Delete');
    await page.click('#alerts li[data-alert] >> text=Really delete?');
    await expect.poll(() => page.textContent('#alerts'), slow).toBe('No alerts of your own yet.');
  });

  it('opens the story and marks it read when the notification is clicked', async () => {
    const worker = context.serviceWorkers().find((w) => w.url() === `${t.baseUrl}/sw.js`);
    expect(worker).toBeDefined();
    // No browser lets automation click a notification; the service worker gets the same event from script.
    await worker!.evaluate(async () => {
      const sw = self as unknown as { registration: ServiceWorkerRegistration; dispatchEvent(e: Event): boolean };
      const [n] = await sw.registration.getNotifications();
      const NotificationEventCtor = (self as unknown as { NotificationEvent: new (type: string, init: { notification: Notification }) => Event }).NotificationEvent;
      sw.dispatchEvent(new NotificationEventCtor('notificationclick', { notification: n! }));
    });
    await page.waitForURL(fixtures.url('/stories/osaka-bullet-train-reopens'), slow);
    expect(await page.textContent('h1')).toBe('Fixture story');
    await page.goto(t.baseUrl);
    await expect.poll(() => page.locator('#inbox li[data-story]').getAttribute('class'), slow).toBe('read');
  });

  it('shows a fallback notification for a push without a title or with a payload it cannot read', async () => {
    await closeAll();
    const storyUrl = fixtures.url('/stories/osaka-bullet-train-reopens');
    for (const [data, expected] of [
      [JSON.stringify({ url: storyUrl, body: 'A story without a title' }), { title: 'New alert from Herald', body: 'A story without a title', url: storyUrl }],
      ['not json {', { title: 'New alert from Herald', body: '', url: null }],
    ] as const) {
      await deliverPush(data);
      expect(await shown()).toEqual([expected]);
      await closeAll();
    }
  });

  it('keeps the stories a bundle\'s push lists with its notification, for the click to count them', async () => {
    await closeAll();
    const bundle = { title: '2 new stories in Japan', body: '• One\n• Two', url: `${t.baseUrl}/#inbox`, storyId: 'bundle-b1', stories: ['story-one', 'story-two'] };
    await deliverPush(JSON.stringify(bundle));
    const data = await page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => n.data as unknown));
    expect(data).toEqual([{ url: bundle.url, storyId: 'bundle-b1', stories: ['story-one', 'story-two'] }]);
    await closeAll();
  });

  it('has no serious or critical axe violations, fits 360 px and writes screenshots at 1280 and 375 px', async () => {
    for (const width of [1280, 375, 360]) {
      await page.setViewportSize({ width, height: 900 });
      await page.goto(t.baseUrl);
      await expect.poll(() => page.locator('#inbox li[data-story]').count(), slow).toBe(1);
      if (width !== 360) await page.screenshot({ path: new URL(`settings-${width}.png`, resultsDir).pathname, fullPage: true });
      // CDP evaluation is not subject to the page's CSP, which (rightly) refuses injected script tags.
      await page.evaluate(axeSource);
      const violations = await page.evaluate(async () => {
        const axe = (window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }).axe;
        const r = await axe.run();
        return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
      });
      expect(violations).toEqual([]);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(width);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('"clear all" empties the inbox only after the confirm step', async () => {
    await page.goto(t.baseUrl);
    await expect.poll(() => page.locator('#inbox li[data-story]').count(), slow).toBe(1);
    await page.click('#clear-inbox');
    expect(await page.locator('#clear-confirm').isVisible()).toBe(true);
    await page.click('#clear-no');
    expect(await page.locator('#inbox li[data-story]').count()).toBe(1);
    await page.click('#clear-inbox');
    await page.click('#clear-yes');
    await expect.poll(() => page.textContent('#inbox'), slow).toBe('No alerts yet.');
    await page.reload();
    await expect.poll(() => page.textContent('#inbox'), slow).toBe('No alerts yet.');
  });

  it('shows a blocked browser how to unblock, and an unsupported one what to do instead', async () => {
    const blocked = await browser.newContext();
    const bp = await blocked.newPage();
    const cdp = await blocked.newCDPSession(bp);
    const { targetInfo } = await cdp.send('Target.getTargetInfo');
    await cdp.send('Browser.setPermission', { permission: { name: 'notifications' }, setting: 'denied', origin: t.baseUrl, browserContextId: targetInfo.browserContextId });
    await bp.goto(t.baseUrl);
    await expect.poll(() => bp.textContent('#push-state'), slow).toMatch(/^Notifications are blocked for this site\. To unblock:/);
    expect(await bp.isDisabled('#allow-push')).toBe(true);
    await blocked.close();

    const old = await browser.newContext();
    await old.addInitScript(() => {
      delete (window as unknown as Record<string, unknown>).PushManager;
    });
    const op = await old.newPage();
    await op.goto(t.baseUrl);
    await expect.poll(() => op.textContent('#push-state'), slow).toBe('This browser cannot receive push notifications. Choose email for your alerts.');
    expect(await op.isDisabled('#allow-push')).toBe(true);
    await old.close();
  });

  it('removes a device from the list', async () => {
    await page.goto(t.baseUrl);
    await expect.poll(() => page.locator('#devices li button').count(), slow).toBe(1);
    await page.click('#devices li button');
    await expect.poll(() => page.textContent('#devices'), slow).toBe('No device gets notifications yet.');
    expect((await me()).devices).toEqual([]);
  });

  it('unsubscribes from the Japan emails with a one-click POST from the alert email', async () => {
    const alert = smtp.to(address).filter((m) => !isAccountMail(m));
    expect(alert.map((m) => m.subject)).toEqual([`Japan: ${storyTitle}`]);
    const header = alert[0]!.headerLines.map((h) => h.line.replace(/\r?\n\s+/g, ' ')).find((l) => l.startsWith('List-Unsubscribe:'));
    const url = /<(\S+)>/.exec(header ?? '')?.[1];
    expect(url).toBeDefined();
    // What a mail client does for RFC 8058: a POST with no cookie and no page.
    const res = await fetch(url!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    expect(res.status).toBe(200);
    await page.reload();
    const after = await me();
    expect(after.topics.japan).toMatchObject({ cadence: 'instant', channels: ['push'] });
    expect(await page.isChecked('#email-japan')).toBe(false);
  });
});
