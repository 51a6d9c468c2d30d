import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestViewUrl } from '../../src/deliver/email/signed-links.ts';
import { LOG_SETTLE_MS, rescheduleDigest, runDigestTick } from '../../src/digest/send-digest.ts';
import type { Enqueue } from '../../src/queue/queues.ts';
import { jobIds } from '../../src/queue/jobs.ts';
import { manualClock } from '../helpers/clock.ts';
import { SIGNING_KEY, startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startScriptedSmtp, type ScriptedSmtp } from '../deliver/support/smtp.ts';
import { addSubscriber, makeStory, settle, TOPICS } from '../deliver/support/world.ts';
import { createReader } from '../helpers/readers.ts';
import { webClient } from '../helpers/web-client.ts';

/**
 * The minute sweep with an injected clock: digests at the reader's local time through the 2027 DST
 * changes, one per local date, a single catch-up after an outage, and the window moving only on success.
 * Tests run in calendar order on one clock; each reader has their own address.
 */
describe('digest sweep', () => {
  const clock = manualClock('2027-03-13T12:00:00Z');
  let smtp: ScriptedSmtp;
  let t: TestHerald;
  const at = (iso: string) => Date.parse(iso);
  const tick = async (iso: string) => {
    clock.set(iso);
    await t.herald.enqueue('DigestTick', {});
    await settle(t);
  };
  const reader = async (email: string, timeZone: string, digestTime: string, prefs = {}) => {
    const id = await addSubscriber(t, clock.now(), { email, timeZone, digestTime, topics: { japan: { cadence: 'daily', channels: [] } }, prefs });
    const dueAt = await rescheduleDigest({ subscribers: t.herald.stores.subscribers, digests: t.herald.stores.digests, ledger: t.herald.stores.ledger, clock }, id);
    return { id, dueAt: dueAt === null ? null : new Date(dueAt).toISOString() };
  };
  const logStory = async (iso: string, patch: Parameters<typeof makeStory>[1] = {}) => {
    const story = makeStory(at(iso), patch);
    await t.herald.stores.stories.put(story);
    await t.herald.stores.stories.logForTopics(story.id, ['japan'], at(iso));
    return story;
  };
  const dueAt = async (id: string) => new Date((await t.herald.stores.digests.dueAt(id))!).toISOString();

  beforeAll(async () => {
    smtp = await startScriptedSmtp();
    t = await startTestHerald({ name: 'digest', clock, smtpUrl: smtp.url, topics: TOPICS });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('New York, spring forward: a 02:30 digest goes at 03:00 EDT, once', async () => {
    const r = await reader('ny-spring@example.test', 'America/New_York', '02:30');
    expect(r.dueAt).toBe('2027-03-14T07:00:00.000Z');
    const story = await logStory('2027-03-13T20:00:00Z');
    await tick('2027-03-14T06:59:00Z'); // 01:59 EST
    expect(smtp.to('ny-spring@example.test')).toHaveLength(0);
    await tick('2027-03-14T07:00:00Z'); // 03:00 EDT
    await tick('2027-03-14T07:01:00Z');
    const mails = smtp.to('ny-spring@example.test');
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toContain('2027-03-14');
    expect(mails[0]!.text).toContain(story.title);
    expect(await dueAt(r.id)).toBe('2027-03-15T06:30:00.000Z');
  });

  it('London, spring forward: a 01:30 digest goes at 02:00 BST', async () => {
    clock.set('2027-03-27T12:00:00Z');
    const r = await reader('ldn-spring@example.test', 'Europe/London', '01:30');
    expect(r.dueAt).toBe('2027-03-28T01:00:00.000Z');
    await logStory('2027-03-27T15:00:00Z');
    await tick('2027-03-28T00:59:00Z');
    expect(smtp.to('ldn-spring@example.test')).toHaveLength(0);
    await tick('2027-03-28T01:00:00Z');
    expect(smtp.to('ldn-spring@example.test')).toHaveLength(1);
    expect(await dueAt(r.id)).toBe('2027-03-29T00:30:00.000Z');
  });

  it('London, fall back: a 01:30 digest goes once, not at the second 01:30', async () => {
    clock.set('2027-10-30T12:00:00Z');
    const r = await reader('ldn-fall@example.test', 'Europe/London', '01:30');
    expect(r.dueAt).toBe('2027-10-31T00:30:00.000Z');
    await logStory('2027-10-30T15:00:00Z');
    await tick('2027-10-31T00:31:00Z'); // 01:31 BST
    await logStory('2027-10-31T00:45:00Z');
    await tick('2027-10-31T01:31:00Z'); // 01:31 GMT, the same wall time again
    expect(smtp.to('ldn-fall@example.test')).toHaveLength(1);
    expect(await dueAt(r.id)).toBe('2027-11-01T01:30:00.000Z');
  });

  it('New York, fall back: a 01:30 digest goes once; the story of the repeated hour waits for the next', async () => {
    clock.set('2027-11-06T12:00:00Z');
    const r = await reader('ny-fall@example.test', 'America/New_York', '01:30');
    expect(r.dueAt).toBe('2027-11-07T05:30:00.000Z');
    await logStory('2027-11-06T20:00:00Z');
    await tick('2027-11-07T05:31:00Z'); // 01:31 EDT
    const late = await logStory('2027-11-07T06:00:00Z');
    await tick('2027-11-07T06:31:00Z'); // 01:31 EST
    expect(smtp.to('ny-fall@example.test')).toHaveLength(1);
    expect(await dueAt(r.id)).toBe('2027-11-08T06:30:00.000Z');
    await tick('2027-11-08T06:30:00Z');
    const mails = smtp.to('ny-fall@example.test');
    expect(mails).toHaveLength(2);
    expect(mails[1]!.subject).toContain('2027-11-08');
    expect(mails[1]!.text).toContain(late.title);
  });

  it('Kolkata 08:00: stories grouped, near-duplicates collapsed, pushed ones marked or left out as chosen', async () => {
    clock.set('2027-11-09T00:00:00Z');
    const mark = await reader('k-mark@example.test', 'Asia/Kolkata', '08:00', { digestPushed: 'mark' });
    const omit = await reader('k-omit@example.test', 'Asia/Kolkata', '08:00', { digestPushed: 'omit' });
    expect(mark.dueAt).toBe('2027-11-09T02:30:00.000Z');
    const a = await logStory('2027-11-09T00:10:00Z', { title: 'Japan and India sign chip pact in Tokyo' });
    await logStory('2027-11-09T00:20:00Z', { title: 'India and Japan sign chip pact in Tokyo' });
    const pushed = await logStory('2027-11-09T00:30:00Z', { title: 'Yen falls to a new low' });
    for (const r of [mark, omit]) {
      await t.herald.stores.ledger.claim(r.id, pushed.id, 'push', 'j', 'japan', clock.now(), 30_000);
      await t.herald.stores.ledger.finish(r.id, pushed.id, 'push', 'sent', clock.now());
    }
    await tick('2027-11-09T02:30:00Z');
    const m = smtp.to('k-mark@example.test')[0]!;
    expect(m.text).toContain(`* ${pushed.title} (already sent as a push)`);
    expect(m.subject).toBe('Your Herald digest for 2027-11-09: 2 stories in Japan');
    expect(m.text!.match(/chip pact/g)).toHaveLength(1);
    const o = smtp.to('k-omit@example.test')[0]!;
    expect(o.text).not.toContain(pushed.title);
    // Newest first: the later of the two near-identical wire copies stands for both.
    expect(o.text!.match(/chip pact/g)).toHaveLength(1);
    expect(o.text).not.toContain(a.title);
  });

  it('an empty digest is skipped, unless the reader asked for it anyway', async () => {
    clock.set('2027-11-10T12:00:00Z');
    const quiet = await reader('empty-skip@example.test', 'UTC', '20:00');
    const anyway = await reader('empty-send@example.test', 'UTC', '20:00', { digestSendEmpty: true });
    await tick('2027-11-10T20:00:00Z');
    expect(smtp.to('empty-skip@example.test')).toHaveLength(0);
    expect(await t.herald.stores.digests.record(quiet.id, '2027-11-10')).toMatchObject({ status: 'skipped' });
    const sent = smtp.to('empty-send@example.test');
    expect(sent.map((m) => m.subject)).toEqual(['Your Herald digest for 2027-11-10: nothing new today']);
    expect(anyway.dueAt).toBe('2027-11-10T20:00:00.000Z');
  });

  it('after an outage the overdue digest goes once (catch-up) and the next is scheduled normally', async () => {
    clock.set('2027-11-11T00:00:00Z');
    const r = await reader('outage@example.test', 'Asia/Kolkata', '08:00');
    const s1 = await logStory('2027-11-11T01:00:00Z');
    const s2 = await logStory('2027-11-12T10:00:00Z');
    // Herald was down from before 08:00 IST on the 11th until the 14th, 15:00 IST.
    await tick('2027-11-14T09:30:00Z');
    await tick('2027-11-14T09:31:00Z');
    const mails = smtp.to('outage@example.test');
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toContain('2027-11-11');
    expect(mails[0]!.text).toContain(s1.title);
    expect(mails[0]!.text).toContain(s2.title);
    expect(await dueAt(r.id)).toBe('2027-11-15T02:30:00.000Z');
  });

  it('the window moves only after a confirmed send: a refused digest leaves its stories for the next', async () => {
    clock.set('2027-11-15T12:00:00Z');
    smtp.script('bounce-once@example.test', { reject: 550 });
    const r = await reader('bounce-once@example.test', 'UTC', '20:00');
    const before = (await t.herald.stores.digests.state(r.id)).windowStart;
    const s1 = await logStory('2027-11-15T13:00:00Z');
    await tick('2027-11-15T20:00:00Z');
    expect(await t.herald.stores.digests.record(r.id, '2027-11-15')).toMatchObject({ status: 'failed' });
    expect((await t.herald.stores.digests.state(r.id)).windowStart).toBe(before);
    smtp.script('bounce-once@example.test', { tempFail: 0 });
    const s2 = await logStory('2027-11-16T13:00:00Z');
    await tick('2027-11-16T20:00:00Z');
    const mails = smtp.to('bounce-once@example.test');
    expect(mails).toHaveLength(1);
    expect(mails[0]!.text).toContain(s1.title);
    expect(mails[0]!.text).toContain(s2.title);
    // The window ends a settle interval before the read: entries of the last minute wait for the next digest.
    expect((await t.herald.stores.digests.state(r.id)).windowStart).toBe(at('2027-11-16T20:00:00Z') - LOG_SETTLE_MS);
  });

  it('a reader whose stored time zone is unknown still gets the digest, at the time in UTC, with the problem recorded', async () => {
    clock.set('2027-11-17T00:00:00Z');
    const { id } = await createReader(t.herald.stores.subscribers, { email: 'mars@example.test', timeZone: 'Mars/Olympus', digestTime: '08:00' }, clock.now());
    await t.herald.stores.subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
    const due = await rescheduleDigest({ subscribers: t.herald.stores.subscribers, digests: t.herald.stores.digests, ledger: t.herald.stores.ledger, clock }, id);
    expect(new Date(due!).toISOString()).toBe('2027-11-17T08:00:00.000Z');
    await logStory('2027-11-17T01:00:00Z');
    await tick('2027-11-17T08:00:00Z');
    expect(smtp.to('mars@example.test')).toHaveLength(1);
    expect((await t.herald.stores.digests.state(id)).problem).toBe('unknown time zone "Mars/Olympus": using UTC');
  });

  it('a digest time stored before validation stops nobody: "8:00" is 08:00, "noon" falls back to 08:00 with the problem shown', async () => {
    clock.set('2027-11-18T00:00:00Z');
    const loose = await createReader(t.herald.stores.subscribers, { email: 'loose@example.test', timeZone: 'UTC', digestTime: '8:00' }, clock.now());
    const bad = await createReader(t.herald.stores.subscribers, { email: 'noon@example.test', timeZone: 'UTC', digestTime: 'noon' }, clock.now());
    const fine = await reader('fine-18@example.test', 'UTC', '08:00');
    for (const { id } of [loose, bad]) {
      await t.herald.stores.subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
      // Scheduled as the sweep found them, due first (before anyone else that minute).
      await t.herald.stores.digests.initWindow(id, clock.now() - 24 * 3600_000);
      await t.herald.stores.digests.schedule(id, at('2027-11-18T07:59:00Z'));
    }
    await logStory('2027-11-18T01:00:00Z');
    await tick('2027-11-18T08:00:00Z');
    for (const address of ['loose@example.test', 'noon@example.test', 'fine-18@example.test']) expect(smtp.to(address)).toHaveLength(1);
    expect(await dueAt(loose.id)).toBe('2027-11-19T08:00:00.000Z');
    expect(await dueAt(bad.id)).toBe('2027-11-19T08:00:00.000Z');
    expect(await dueAt(fine.id)).toBe('2027-11-19T08:00:00.000Z');
    expect((await t.herald.stores.digests.state(loose.id)).problem).toBeNull();
    expect((await t.herald.stores.digests.state(bad.id)).problem).toBe('invalid digest time "noon": using 08:00');
  });

  it('pushes held for the digest end as skipped, with the reason, when the address stopped working before it went', async () => {
    clock.set('2027-11-19T00:00:00Z');
    const r = await reader('bounced-19@example.test', 'UTC', '08:00', { heldAlerts: 'digest' });
    const held = makeStory(at('2027-11-19T01:00:00Z'), { title: 'Held overnight' });
    await t.herald.stores.stories.put(held);
    await t.herald.stores.ledger.hold(r.id, held.id, 'japan', 'digest', 'quiet-hours', at('2027-11-19T01:00:00Z'));
    // Three hard bounces of instant emails (the default limit) disable the address.
    for (let i = 0; i < 3; i++) await t.herald.stores.subscribers.recordHardBounce(r.id, 'bounced-19@example.test', 3, 'SMTP 550: 5.1.1 gone', clock.now());
    await tick('2027-11-19T08:00:00Z');
    expect(smtp.to('bounced-19@example.test')).toHaveLength(0);
    expect(await t.herald.stores.ledger.held(r.id, 'digest')).toEqual([]);
    expect(await t.herald.stores.ledger.get(r.id, held.id, 'push')).toMatchObject({ status: 'skipped', reason: 'email address disabled after hard bounces' });
  });

  it('a busy topic: the email lists the 10 biggest stories and links to a page with all of them', async () => {
    clock.set('2027-11-20T00:00:00Z');
    const r = await reader('busy@example.test', 'UTC', '08:00');
    // 13 stories; the oldest was carried by four outlets, so it is among the ten the email lists.
    const stories = [];
    for (let i = 0; i < 13; i++) {
      const sources = i === 0 ? Array.from({ length: 4 }, (_, k) => ({ feedId: `wire${k}`, url: `https://wire${k}.example.test/a` })) : undefined;
      stories.push(await logStory(`2027-11-20T01:${String(10 + i)}:00Z`, sources ? { sources } : {}));
    }
    await tick('2027-11-20T08:00:00Z');
    const mail = smtp.to('busy@example.test')[0]!;
    expect(mail.subject).toBe('Your Herald digest for 2027-11-20: 13 stories in Japan');
    expect(mail.text).toContain(`* ${stories[0]!.title}\n`);
    for (const hidden of stories.slice(1, 4)) expect(mail.text).not.toContain(`* ${hidden.title}\n`);
    for (const listed of stories.slice(4)) expect(mail.text).toContain(`* ${listed.title}\n`);
    const link = /\* …and 3 more stories in Japan\n {2}(\S+)\n/.exec(mail.text!)?.[1];
    expect(link).toMatch(new RegExp(`^${t.baseUrl.replace(/[.]/g, '\\.')}/digest\\?s=${r.id}&d=2027-11-20&sig=[\\w-]+#t-japan$`));

    // The page lists all 13, to anyone holding the email, and asks search engines to stay away.
    const page = await fetch(link!);
    expect(page.status).toBe(200);
    expect(page.headers.get('x-robots-tag')).toBe('noindex');
    const html = await page.text();
    for (const st of stories) expect(html).toContain(`>${st.title}</a>`);
    expect(html).toContain('<section id="t-japan"><h2>Japan</h2>');

    // A link altered in any part, or a signature made for unsubscribing, opens nothing.
    const url = new URL(link!);
    const altered = (name: string, value: string) => {
      const u = new URL(url);
      u.searchParams.set(name, value);
      return fetch(u).then((res) => res.status);
    };
    expect(await altered('d', '2027-11-19')).toBe(400);
    expect(await altered('s', 'someone-else')).toBe(400);
    const sig = url.searchParams.get('sig')!;
    expect(await altered('sig', `${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`)).toBe(400);
    const stopAll = new URL(/Stop all Herald emails: (\S+)/.exec(mail.text!)![1]!);
    expect((await fetch(`${t.baseUrl}/digest?s=${r.id}&d=all&sig=${stopAll.searchParams.get('sig')}`)).status).toBe(400);

    // A digest that fits in its email has no page; a correctly signed link to it says so.
    const small = await addSubscriber(t, clock.now(), { email: 'small@example.test', timeZone: 'UTC', digestTime: '09:00', topics: { india: { cadence: 'daily', channels: [] } } });
    await rescheduleDigest({ subscribers: t.herald.stores.subscribers, digests: t.herald.stores.digests, ledger: t.herald.stores.ledger, clock }, small);
    const one = makeStory(at('2027-11-20T02:00:00Z'), { title: 'India story' });
    await t.herald.stores.stories.put(one);
    await t.herald.stores.stories.logForTopics(one.id, ['india'], at('2027-11-20T02:00:00Z'));
    await tick('2027-11-20T09:00:00Z');
    const smallMail = smtp.to('small@example.test')[0]!;
    expect(smallMail.text).toContain('* India story\n');
    expect(smallMail.text).not.toContain('more stor');
    expect(smallMail.text).not.toContain('/digest?');
    const gone = await fetch(digestViewUrl(t.baseUrl, SIGNING_KEY, small, '2027-11-20'));
    expect(gone.status).toBe(404);
    expect(await gone.text()).toContain('Digests can be opened here for 8 days after they are sent.');
  });
  it('a settings save after the digest time, before the sweep reached the reader, keeps that day\'s digest', async () => {
    clock.set('2027-11-21T00:00:00Z');
    const { id, token } = await createReader(t.herald.stores.subscribers, { email: 'save-0800@example.test', timeZone: 'UTC', digestTime: '08:00' }, clock.now());
    await t.herald.stores.subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
    await rescheduleDigest({ subscribers: t.herald.stores.subscribers, digests: t.herald.stores.digests, ledger: t.herald.stores.ledger, clock }, id);
    const story = await logStory('2027-11-21T03:00:00Z');
    // 08:00:30: due, but the minute sweep has not run yet. The reader saves an unrelated setting.
    clock.set('2027-11-21T08:00:30Z');
    const saved = await webClient(t.baseUrl).api('/api/me', { method: 'PUT', token, body: { quality: 'best' } });
    expect(saved.status).toBe(200);
    await tick('2027-11-21T08:01:00Z');
    const mails = smtp.to('save-0800@example.test');
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toContain('2027-11-21');
    expect(mails[0]!.text).toContain(story.title);
    expect(await dueAt(id)).toBe('2027-11-22T08:00:00.000Z');
  });

  /** One sweep at `iso` by the handler the digest role runs, with `during` done between its read of the due set and its writes. */
  const sweepWith = async (iso: string, during: () => Promise<void>) => {
    clock.set(iso);
    const real = t.herald.enqueue;
    const enqueue = Object.assign((...args: Parameters<Enqueue>) => real(...args), {
      bulk: async (...args: Parameters<Enqueue['bulk']>) => {
        await during();
        await real.bulk(...args);
      },
    }) as Enqueue;
    const deps = { subscribers: t.herald.stores.subscribers, digests: t.herald.stores.digests, enqueue, clock, log: pino({ level: 'silent' }) };
    await runDigestTick(deps);
    await settle(t);
  };
  const reschedule = (id: string) => rescheduleDigest({ subscribers: t.herald.stores.subscribers, digests: t.herald.stores.digests, ledger: t.herald.stores.ledger, clock }, id);

  it('a reader who turns the digest off while the sweep enqueues theirs stays off', async () => {
    clock.set('2027-11-22T00:00:00Z');
    const r = await reader('off-mid-sweep@example.test', 'UTC', '08:00', { digestSendEmpty: true });
    await logStory('2027-11-22T03:00:00Z');
    await sweepWith('2027-11-22T08:00:00Z', async () => {
      // PUT /api/me with Japan off, as the route does it.
      await t.herald.stores.subscribers.setFollows(r.id, { japan: { cadence: 'off', channels: [] } });
      await reschedule(r.id);
    });
    // That day's digest was due before the change: it goes.
    expect(smtp.to('off-mid-sweep@example.test')).toHaveLength(1);
    expect(await t.herald.stores.digests.dueAt(r.id)).toBeNull();
    await tick('2027-11-23T08:00:00Z');
    await tick('2027-11-24T08:00:00Z');
    expect(smtp.to('off-mid-sweep@example.test')).toHaveLength(1);
  });

  it('a reader who moves the digest from 08:00 to 20:00 while the sweep enqueues the 08:00 one gets the next at 20:00 the next day', async () => {
    clock.set('2027-11-25T00:00:00Z');
    const r = await reader('move-mid-sweep@example.test', 'UTC', '08:00');
    await logStory('2027-11-25T03:00:00Z');
    await sweepWith('2027-11-25T08:00:00Z', async () => {
      await t.herald.stores.subscribers.update(r.id, { digestTime: '20:00' }, clock.now());
      await reschedule(r.id);
    });
    expect(smtp.to('move-mid-sweep@example.test')).toHaveLength(1);
    // Today's went at 08:00; the saved 20:00 holds from tomorrow, and no second digest today.
    await tick('2027-11-25T20:00:00Z');
    expect(smtp.to('move-mid-sweep@example.test')).toHaveLength(1);
    expect(await dueAt(r.id)).toBe('2027-11-26T20:00:00.000Z');
    await logStory('2027-11-26T03:00:00Z');
    await tick('2027-11-26T08:00:00Z');
    expect(smtp.to('move-mid-sweep@example.test')).toHaveLength(1);
    await tick('2027-11-26T20:00:00Z');
    const mails = smtp.to('move-mid-sweep@example.test');
    expect(mails).toHaveLength(2);
    expect(mails[1]!.subject).toContain('2027-11-26');
  });

  it('a new digest time saved after the old one passed, before the sweep reached the reader: that day\'s digest at the new time, or at once when it has passed too', async () => {
    clock.set('2027-11-27T12:00:00Z');
    const later = await createReader(t.herald.stores.subscribers, { email: 'later-2000@example.test', timeZone: 'UTC', digestTime: '09:00' }, clock.now());
    const earlier = await createReader(t.herald.stores.subscribers, { email: 'earlier-0700@example.test', timeZone: 'UTC', digestTime: '09:00' }, clock.now());
    for (const { id } of [later, earlier]) {
      await t.herald.stores.subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
      await rescheduleDigest({ subscribers: t.herald.stores.subscribers, digests: t.herald.stores.digests, ledger: t.herald.stores.ledger, clock }, id);
    }
    await logStory('2027-11-28T03:00:00Z');
    clock.set('2027-11-28T09:00:30Z');
    const client = webClient(t.baseUrl);
    expect((await client.api('/api/me', { method: 'PUT', token: later.token, body: { digestTime: '20:00' } })).body.nextDigestAt).toBe('2027-11-28T20:00:00.000Z');
    expect((await client.api('/api/me', { method: 'PUT', token: earlier.token, body: { digestTime: '07:00' } })).status).toBe(200);
    await tick('2027-11-28T09:01:00Z');
    expect(smtp.to('later-2000@example.test')).toHaveLength(0);
    expect(smtp.to('earlier-0700@example.test').map((m) => m.subject?.includes('2027-11-28'))).toEqual([true]);
    expect(await dueAt(earlier.id)).toBe('2027-11-29T07:00:00.000Z');
    await tick('2027-11-28T20:00:00Z');
    expect(smtp.to('later-2000@example.test').map((m) => m.subject?.includes('2027-11-28'))).toEqual([true]);
    expect(await dueAt(later.id)).toBe('2027-11-29T20:00:00.000Z');
  });

  it('Nuuk, spring forward at the end of the day: a 23:30 digest goes at 00:00 -01, named for the day it is for, and the next day\'s still goes', async () => {
    // 25 March 2028: 22:59 -02 is followed by 00:00 -01 on the 26th; 23:30 on the 25th never shows on a clock there.
    clock.set('2028-03-25T12:00:00Z');
    const r = await reader('nuuk@example.test', 'America/Nuuk', '23:30');
    expect(r.dueAt).toBe('2028-03-26T01:00:00.000Z');
    const s1 = await logStory('2028-03-25T13:00:00Z');
    await tick('2028-03-26T00:59:00Z'); // 22:59 -02
    expect(smtp.to('nuuk@example.test')).toHaveLength(0);
    await tick('2028-03-26T01:00:00Z'); // 00:00 -01
    expect(await dueAt(r.id)).toBe('2028-03-27T00:30:00.000Z');
    const s2 = await logStory('2028-03-26T13:00:00Z');
    await tick('2028-03-27T00:30:00Z'); // 23:30 -01 on the 26th
    const mails = smtp.to('nuuk@example.test');
    expect(mails.map((m) => m.subject)).toEqual(['Your Herald digest for 2028-03-25: 1 story in Japan', 'Your Herald digest for 2028-03-26: 1 story in Japan']);
    expect(mails[0]!.text).toContain(s1.title);
    expect(mails[1]!.text).toContain(s2.title);
  });

  it('a delivered digest clears the count of hard bounces in a row; a refused one keeps it', async () => {
    const subs = t.herald.stores.subscribers;
    const r = await reader('bounced-once@example.test', 'UTC', '21:00');
    await subs.recordHardBounce(r.id, 'bounced-once@example.test', 3, 'SMTP 550: mailbox unavailable', clock.now());
    expect((await subs.forDelivery(r.id))!.emailHealth.hardBounces).toBe(1);
    smtp.script('bounced-once@example.test', { tempFail: 0 });
    await logStory('2028-04-12T13:00:00Z');
    await tick('2028-04-12T21:00:00Z');
    expect(smtp.to('bounced-once@example.test')).toHaveLength(1);
    expect((await subs.forDelivery(r.id))!.emailHealth.hardBounces).toBe(0);
    // Refused: the digest's record fails and the bounce counts.
    smtp.script('bounced-once@example.test', { reject: 550 });
    await logStory('2028-04-13T13:00:00Z');
    await tick('2028-04-13T21:00:00Z');
    expect(await t.herald.stores.digests.record(r.id, '2028-04-13')).toMatchObject({ status: 'failed' });
    expect((await subs.forDelivery(r.id))!.emailHealth.hardBounces).toBe(1);
  });

  it('a reader deleted after the sweep enqueued their digest gets none, and leaves the schedule', async () => {
    const r = await reader('deleted-after-sweep@example.test', 'UTC', '22:00');
    await logStory('2028-04-14T13:00:00Z');
    clock.set('2028-04-14T22:00:00Z');
    // The reader's data goes (the schedule entry is left, as between the sweep and the job), then the sweep's job runs.
    await t.herald.stores.subscribers.delete(r.id);
    await t.herald.enqueue('DigestSend', { subscriberId: r.id, localDate: '2028-04-14', dueAt: at('2028-04-14T22:00:00Z') });
    await settle(t);
    expect(smtp.to('deleted-after-sweep@example.test')).toHaveLength(0);
    expect(await t.herald.stores.digests.dueAt(r.id)).toBeNull();
    expect((await t.herald.stores.digests.record(r.id, '2028-04-14')).status).toBeUndefined();
  });

  it('a digest the SMTP server defers on every attempt ends as failed once BullMQ gives up, and its stories go with the next', async () => {
    clock.set('2028-04-10T12:00:00Z');
    smtp.script('deferred@example.test', { tempFail: 1000, code: 451 });
    const r = await reader('deferred@example.test', 'UTC', '20:00');
    const before = (await t.herald.stores.digests.state(r.id)).windowStart;
    const s1 = await logStory('2028-04-10T13:00:00Z');
    await tick('2028-04-10T20:00:00Z');
    // Every retry made due at once, until BullMQ has used the digest's attempts (10).
    const job = () => t.herald.queues.digest.getJob(jobIds.digest(r.id, '2028-04-10'));
    const deadline = Date.now() + 60_000;
    while ((await job())?.finishedOn === undefined && Date.now() < deadline) {
      await t.herald.queues.digest.promoteJobs();
      await settle(t);
    }
    expect((await job())?.attemptsMade).toBe(10);
    // Before: "sending" for the record's 40 days, as if the digest were still on its way.
    // The give-up step runs on the worker's 'failed' event, just after the job is marked failed.
    const ends = Date.now() + 10_000;
    while ((await t.herald.stores.digests.record(r.id, '2028-04-10')).status === 'sending' && Date.now() < ends) await new Promise((res) => setTimeout(res, 50));
    expect(await t.herald.stores.digests.record(r.id, '2028-04-10')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^gave up after 10 attempts: .*451/) });
    expect((await t.herald.stores.digests.state(r.id)).windowStart).toBe(before);
    expect(smtp.to('deferred@example.test')).toHaveLength(0);
    // The server takes mail again: the next digest carries the day that failed too.
    smtp.script('deferred@example.test', { tempFail: 0 });
    const s2 = await logStory('2028-04-11T13:00:00Z');
    await tick('2028-04-11T20:00:00Z');
    const mails = smtp.to('deferred@example.test');
    expect(mails).toHaveLength(1);
    expect(mails[0]!.text).toContain(s1.title);
    expect(mails[0]!.text).toContain(s2.title);
  });

  it('a digest whose message cannot be built fails at once with the reason, and its stories wait for the next', async () => {
    clock.set('2028-05-10T12:00:00Z');
    // An address stored before validation, too long for one header line (998 octets): no attempt can write its To.
    const r = await reader(`${'d'.repeat(1000)}@example.test`, 'UTC', '20:00');
    const before = (await t.herald.stores.digests.state(r.id)).windowStart;
    await logStory('2028-05-10T13:00:00Z');
    await tick('2028-05-10T20:00:00Z');
    const record = await t.herald.stores.digests.record(r.id, '2028-05-10');
    expect(record).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^message not built: email header To /) });
    expect((await t.herald.queues.digest.getJob(jobIds.digest(r.id, '2028-05-10')))?.attemptsMade).toBe(1);
    expect((await t.herald.stores.digests.state(r.id)).windowStart).toBe(before);
  });

  /**
   * A reader who changes zone (or time) between digests. Each case: a reader at `from` gets one digest at `first`, saves
   * `save` at `saveAt`, and the sweep runs at each of `ticks`; `dates` are the local dates of the digests they get, in
   * order. Every local date gets at most one, none is skipped while its digest was still to come, and the due time the
   * API shows after the save is one that sends (`shown`, when given), not a date already sent.
   */
  const zoneChanges: { name: string; from: string; created: string; first: string; saveAt: string; save: { timeZone?: string; digestTime?: string }; shown?: string; ticks: string[]; dates: string[] }[] = [
    {
      // The 2 May digest went at 08:00 Tokyo; in Los Angeles it is still 1 May, and its 2 May 08:00 is a date already sent.
      name: 'moved west (Tokyo to Los Angeles) after that day\'s digest: the next is the next date, not the one sent again',
      from: 'Asia/Tokyo', created: '2028-05-01T00:00:00Z', first: '2028-05-01T23:00:00Z',
      saveAt: '2028-05-02T00:00:00Z', save: { timeZone: 'America/Los_Angeles' }, shown: '2028-05-03T15:00:00.000Z',
      ticks: ['2028-05-02T15:00:00Z', '2028-05-03T15:00:00Z'], dates: ['2028-05-02', '2028-05-03'],
    },
    {
      // 07:00 on 11 May in Los Angeles is 23:00 in Tokyo: 11 May's 08:00 there has passed, so that day's goes at once.
      name: 'moved east (Los Angeles to Tokyo) an hour before that day\'s digest: that date still gets one, at once',
      from: 'America/Los_Angeles', created: '2028-05-10T00:00:00Z', first: '2028-05-10T15:00:00Z',
      saveAt: '2028-05-11T14:00:00Z', save: { timeZone: 'Asia/Tokyo' },
      ticks: ['2028-05-11T14:01:00Z', '2028-05-11T23:00:00Z'], dates: ['2028-05-10', '2028-05-11', '2028-05-12'],
    },
    {
      // Already right before the fix: 13:00 in Los Angeles is 05:00 the next day in Tokyo, whose 08:00 is still to come.
      name: 'moved east (Los Angeles to Tokyo) after that day\'s digest: the next date at 08:00 Tokyo',
      from: 'America/Los_Angeles', created: '2028-05-14T00:00:00Z', first: '2028-05-14T15:00:00Z',
      saveAt: '2028-05-14T20:00:00Z', save: { timeZone: 'Asia/Tokyo' }, shown: '2028-05-14T23:00:00.000Z',
      ticks: ['2028-05-14T23:00:00Z', '2028-05-15T23:00:00Z'], dates: ['2028-05-14', '2028-05-15', '2028-05-16'],
    },
    {
      // Kiritimati (+14) to Pago Pago (-11): 25 hours back, so the date just sent comes round again there.
      name: 'moved west across the date line after that day\'s digest: no date twice, the next one shown',
      from: 'Pacific/Kiritimati', created: '2028-05-20T00:00:00Z', first: '2028-05-20T18:00:00Z',
      saveAt: '2028-05-20T19:00:00Z', save: { timeZone: 'Pacific/Pago_Pago' }, shown: '2028-05-22T19:00:00.000Z',
      ticks: ['2028-05-21T19:00:00Z', '2028-05-22T19:00:00Z'], dates: ['2028-05-21', '2028-05-22'],
    },
    {
      // Pago Pago at 23:00 on 1 June is 00:00 on 3 June at Kiritimati: 2 June there is over, its digest still owed.
      name: 'moved east across the date line before that day\'s digest: the date jumped over still gets one',
      from: 'Pacific/Pago_Pago', created: '2028-06-01T00:00:00Z', first: '2028-06-01T19:00:00Z',
      saveAt: '2028-06-02T10:00:00Z', save: { timeZone: 'Pacific/Kiritimati' },
      ticks: ['2028-06-02T10:01:00Z', '2028-06-02T18:00:00Z'], dates: ['2028-06-01', '2028-06-02', '2028-06-03'],
    },
    {
      name: 'digest time moved from 08:00 to 07:00 at 07:30, before that day\'s went: that day\'s goes at once',
      from: 'UTC', created: '2028-06-10T00:00:00Z', first: '2028-06-10T08:00:00Z',
      saveAt: '2028-06-11T07:30:00Z', save: { digestTime: '07:00' },
      ticks: ['2028-06-11T07:31:00Z', '2028-06-12T07:00:00Z'], dates: ['2028-06-10', '2028-06-11', '2028-06-12'],
    },
  ];

  it.each(zoneChanges)('$name', async (c) => {
    clock.set(c.created);
    const email = `zone-${Date.parse(c.created)}@example.test`;
    const { id, token } = await createReader(t.herald.stores.subscribers, { email, timeZone: c.from, digestTime: '08:00' }, clock.now());
    await t.herald.stores.subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
    // Every date's digest goes, stories or not: the dates mailed are what the case is about.
    await t.herald.stores.subscribers.setPrefs(id, { digestSendEmpty: true }, clock.now());
    await reschedule(id);
    await tick(c.first);
    // Logged between the first digest and the save: the next digest carries it, and only that one.
    const story = await logStory(new Date(Date.parse(c.saveAt) - 60_000).toISOString(), { title: `Story before the save of ${email}` });
    clock.set(c.saveAt);
    const saved = await webClient(t.baseUrl).api('/api/me', { method: 'PUT', token, body: c.save });
    expect(saved.status).toBe(200);
    if (c.shown) expect(saved.body.nextDigestAt).toBe(c.shown);
    for (const at of c.ticks) await tick(at);
    const mails = smtp.to(email);
    expect(mails.map((m) => /digest for (\d{4}-\d{2}-\d{2})/.exec(m.subject ?? '')?.[1])).toEqual(c.dates);
    expect(mails.map((m) => m.text?.includes(story.title) ?? false)).toEqual(mails.map((_, i) => i === 1));
  });

  it('readers due at the same instant with the same digest time in different zones each get their own next time', async () => {
    // 08:00 in London and in Reykjavik are both 08:00 UTC on 24 March 2029; the next day London is on BST, Reykjavik
    // (no DST) is not.
    clock.set('2029-03-23T12:00:00Z');
    const london = await reader('same-instant-ldn@example.test', 'Europe/London', '08:00', { digestSendEmpty: true });
    const reykjavik = await reader('same-instant-rkv@example.test', 'Atlantic/Reykjavik', '08:00', { digestSendEmpty: true });
    expect([london.dueAt, reykjavik.dueAt]).toEqual(['2029-03-24T08:00:00.000Z', '2029-03-24T08:00:00.000Z']);
    await tick('2029-03-24T08:00:00Z');
    expect(smtp.to('same-instant-ldn@example.test').map((m) => m.subject)).toEqual([expect.stringContaining('2029-03-24')]);
    expect(smtp.to('same-instant-rkv@example.test').map((m) => m.subject)).toEqual([expect.stringContaining('2029-03-24')]);
    expect(await dueAt(london.id)).toBe('2029-03-25T07:00:00.000Z');
    expect(await dueAt(reykjavik.id)).toBe('2029-03-25T08:00:00.000Z');
  });
});
