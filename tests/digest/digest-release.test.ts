import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailer, type Mailer } from '../../src/deliver/email/mailer.ts';
import { rescheduleDigest, sendDigest } from '../../src/digest/send-digest.ts';
import { createDigestStore } from '../../src/store/digests.ts';
import { createLedger, type Ledger } from '../../src/store/ledger.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { manualClock } from '../helpers/clock.ts';
import { noEnqueue, releaseFailingOnce } from '../helpers/faults.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';
import { createReader } from '../helpers/readers.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { makeStory } from '../deliver/support/world.ts';

/**
 * A digest carrying pushes held for it (over the daily cap), sent by the handler the digest dispatcher runs,
 * called as BullMQ would (the same job id again for a retry), with the real stores on Redis and nodemailer to
 * an in-process SMTP server. The held pushes must end with the digest even when an attempt dies half-way.
 */
describe('digest: held pushes end with it', () => {
  const { redis, prefix } = isolatedRedis('digest-release');
  const clock = manualClock('2027-04-01T08:00:00Z');
  const subscribers = createSubscriberStore(redis, prefix);
  const stories = createStoryStore(redis, prefix);
  const digests = createDigestStore(redis, prefix);
  const ledger = createLedger(redis, prefix);
  let smtp: SmtpSink;
  let mailer: Mailer;
  const deps = (l: Ledger) => ({
    subscribers, stories, digests, ledger: l, mailer, enqueue: noEnqueue, clock, log: pino({ level: 'silent' }),
    topicName: (id: string) => (id === 'japan' ? 'Japan' : id),
    links: () => ({ topic: 'https://herald.example.test/u/t', all: 'https://herald.example.test/u/all', manage: 'https://herald.example.test/' }),
    viewUrl: () => 'https://herald.example.test/digest', storiesPerTopic: 10, messageIdDomain: 'herald.example.test', hardBounceLimit: 3,
  });

  /** A reader following Japan for pushes only, with one story's push held for their digest two minutes ago. */
  const pushReaderWithHeld = async (email: string, title: string, reason: 'cap' | 'quiet-hours') => {
    const { id } = await createReader(subscribers, { email, timeZone: 'UTC', digestTime: '08:00' }, clock.now());
    await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
    const story = makeStory(clock.now() - 3_600_000, { title });
    await stories.put(story);
    await ledger.hold(id, story.id, 'japan', 'digest', reason, clock.now() - 120_000);
    return { id, story };
  };

  beforeAll(async () => {
    smtp = await startSmtpSink();
    mailer = createMailer({ url: smtp.url, from: 'Herald <herald@herald.example.test>', poolSize: 1, clock });
  });
  afterAll(async () => {
    mailer?.close();
    await smtp?.close();
  });

  it('an attempt that dies after the mail went out: the retry releases the held pushes and completes the date', async () => {
    const { id } = await createReader(subscribers, { email: 'held@example.test', timeZone: 'UTC', digestTime: '08:00' }, clock.now());
    const held = [makeStory(clock.now() - 3_600_000, { title: 'Held for the digest one' }), makeStory(clock.now() - 3_600_000, { title: 'Held for the digest two' })];
    for (const [i, s] of held.entries()) {
      await stories.put(s);
      // Held two minutes before the digest: held within its last minute, they would wait for the next one (LOG_SETTLE_MS).
      await ledger.hold(id, s.id, 'japan', 'digest', 'cap', clock.now() - 120_000 + i);
    }
    const faulty = releaseFailingOnce(ledger);
    const data = { subscriberId: id, localDate: '2027-04-01', dueAt: clock.now() };
    await expect(sendDigest(deps(faulty), data, 'digest-job-1')).rejects.toThrow('Connection is closed.');
    // BullMQ's retry of the same job. Before, the date was already complete: "already sent", the pushes still held.
    expect(await sendDigest(deps(faulty), data, 'digest-job-1')).toBe('sent');
    expect(await ledger.held(id, 'digest')).toEqual([]);
    for (const s of held) expect(await ledger.get(id, s.id, 'push')).toMatchObject({ status: 'skipped', reason: 'cap', via: 'digest:2027-04-01' });
    expect((await digests.record(id, '2027-04-01')).status).toBe('sent');
    // The retry mails the digest again, with the same Message-ID for the receiver to collapse (README).
    const mails = smtp.to('held@example.test');
    expect(mails.map((m) => m.messageId)).toEqual([`<digest.${id}.2027-04-01@herald.example.test>`, `<digest.${id}.2027-04-01@herald.example.test>`]);
    expect(mails[1]!.text).toContain('Held for the digest one');
  });

  it('a story the classifier stamped just before a digest read the log, but wrote just after, goes out with the next digest', async () => {
    clock.set('2027-04-02T08:00:00Z');
    const { id } = await createReader(subscribers, { email: 'late-log@example.test', timeZone: 'UTC', digestTime: '08:00' }, clock.now());
    await subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
    const early = makeStory(clock.now() - 3_600_000, { title: 'Logged an hour before the digest' });
    await stories.put(early);
    await stories.logForTopics(early.id, ['japan'], clock.now() - 3_600_000);
    // classifyStory takes its clock reading, then writes the log entry with it: a round trip (or a clock on another
    // machine a little behind) later. The digest reads the log in between.
    const late = makeStory(clock.now(), { title: 'Stamped before the read, written after it' });
    await stories.put(late);
    const stamp = clock.now();
    clock.advance(50);
    expect(await sendDigest(deps(ledger), { subscriberId: id, localDate: '2027-04-02', dueAt: stamp }, 'digest-late-1')).toBe('sent');
    await stories.logForTopics(late.id, ['japan'], stamp);
    clock.advance(24 * 3_600_000);
    expect(await sendDigest(deps(ledger), { subscriberId: id, localDate: '2027-04-03', dueAt: clock.now() }, 'digest-late-2')).toBe('sent');
    const mails = smtp.to('late-log@example.test');
    expect(mails).toHaveLength(2);
    expect(mails[0]!.text).toContain(early.title);
    expect(mails.filter((m) => m.text!.includes(late.title))).toHaveLength(1);
  });

  it('two digests of one reader in flight together (a catch-up still retrying when the day\'s is due): the window never moves back', async () => {
    clock.set('2027-04-05T08:00:00Z');
    const { id } = await createReader(subscribers, { email: 'overlap@example.test', timeZone: 'UTC', digestTime: '08:00' }, clock.now());
    await subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
    await digests.initWindow(id, clock.now() - 3 * 86_400_000);
    const s1 = makeStory(clock.now() - 3_600_000, { title: 'Before both digests read the log' });
    await stories.put(s1);
    await stories.logForTopics(s1.id, ['japan'], clock.now() - 3_600_000);
    // The catch-up's send hangs on a slow server until the day's digest has been sent and confirmed.
    let release!: () => void;
    const slow: Mailer = { send: async (m) => { await new Promise<void>((r) => (release = r)); return mailer.send(m); }, close: () => {} };
    const catchUp = sendDigest({ ...deps(ledger), mailer: slow }, { subscriberId: id, localDate: '2027-04-03', dueAt: clock.now() - 2 * 86_400_000 }, 'digest-catch-up');
    await new Promise((r) => setTimeout(r, 50));
    clock.advance(10 * 60_000);
    const s2 = makeStory(clock.now() - 5 * 60_000, { title: 'Between the two reads' });
    await stories.put(s2);
    await stories.logForTopics(s2.id, ['japan'], clock.now() - 5 * 60_000);
    expect(await sendDigest(deps(ledger), { subscriberId: id, localDate: '2027-04-05', dueAt: clock.now() }, 'digest-today')).toBe('sent');
    const todayEnd = (await digests.state(id)).windowStart;
    release();
    expect(await catchUp).toBe('sent');
    // The catch-up read the log first: its window ends earlier, and confirming it last must not move the window back.
    expect((await digests.state(id)).windowStart).toBe(todayEnd);
    clock.advance(86_400_000);
    expect(await sendDigest(deps(ledger), { subscriberId: id, localDate: '2027-04-06', dueAt: clock.now() }, 'digest-next')).toBe('skipped: empty');
    expect(smtp.to('overlap@example.test').filter((m) => m.text!.includes(s2.title))).toHaveLength(1);
  });

  it('a topic there only through held pushes offers no "Stop … emails" link: stopping its email would change nothing', async () => {
    // Followed for pushes only: its stories reach the digest because pushes over the cap were held for it.
    const { id } = await pushReaderWithHeld('held-only@example.test', 'Held push over the cap', 'cap');
    expect(await sendDigest(deps(ledger), { subscriberId: id, localDate: '2027-04-01', dueAt: clock.now() }, 'digest-held-only')).toBe('sent');
    const [mail] = smtp.to('held-only@example.test');
    expect(mail!.text).toContain('Held push over the cap');
    // What the link's POST does for this follow: nothing, yet the page would say "unsubscribed from Japan emails".
    const before = await subscribers.follows(id);
    await subscribers.stopEmail(id, 'japan', clock.now());
    expect(await subscribers.follows(id)).toEqual(before);
    expect(mail!.text).not.toContain('Stop Japan emails');
    expect(mail!.html).not.toContain('Stop Japan emails');
    // The footer's links still stop all email or open the settings.
    expect(mail!.text).toContain('Stop all Herald emails: https://herald.example.test/u/all');
  });

  // Before: the change unscheduled the reader's digest, and the pushes held for it waited for ever.
  it('pushes held for the digest keep it scheduled after the reader stops feeding it, and it ends them', async () => {
    const { id, story: held } = await pushReaderWithHeld('switched@example.test', 'Held before the switch', 'quiet-hours');
    // No daily topic, held alerts to a bundle from now on, and then no address at all.
    await subscribers.setPrefs(id, { heldAlerts: 'bundle' }, clock.now());
    const due = await rescheduleDigest(deps(ledger), id);
    expect(due).not.toBeNull();
    await subscribers.removeEmail(id, clock.now());
    expect(await rescheduleDigest(deps(ledger), id)).toBe(due);
    expect((await digests.due(due!, 100)).map((d) => d.subscriberId)).toContain(id);
    // Its send has no address to mail: the held push ends with the reason, and nothing keeps the digest on.
    await sendDigest(deps(ledger), { subscriberId: id, localDate: '2027-04-02', dueAt: due! }, 'digest-switched');
    expect(await ledger.held(id, 'digest')).toEqual([]);
    expect((await ledger.get(id, held.id, 'push'))!.status).toBe('skipped');
    expect(await rescheduleDigest(deps(ledger), id)).toBeNull();
  });
});
