import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Clock } from '../model.ts';
import type { JobCatalog } from '../queue/jobs.ts';
import { jobIds } from '../queue/jobs.ts';
import { groupBy } from '../queue/queues.ts';
import type { Enqueue } from '../queue/queues.ts';
import type { DigestStore } from '../store/digests.ts';
import type { Ledger } from '../store/ledger.ts';
import type { StoryStore } from '../store/stories.ts';
import type { SubscriberStore } from '../store/subscribers.ts';
import { handedBackAtShutdown, type Mailer } from '../deliver/email/mailer.ts';
import { renderDigestEmail } from '../deliver/email/render.ts';
import type { UnsubscribeLinks } from '../deliver/email/signed-links.ts';
import { noteBounce } from '../deliver/email/send-alert.ts';
import { RetryLater, retryError } from '../deliver/retry.ts';
import { composeDigest } from './compose.ts';
import { dateDigestAt, digestDate, effectiveDigestClock, effectiveDigestTime, effectiveZone, nextDigestAt, sameDayDigestAt } from './schedule.ts';

export interface DigestDeps {
  subscribers: SubscriberStore;
  stories: StoryStore;
  digests: DigestStore;
  ledger: Ledger;
  mailer: Mailer;
  enqueue: Enqueue;
  topicName: (topicId: string) => string;
  /** Stop links of an email to `address`: they act on that address only. */
  links: (subscriberId: string, topicId: string, address: string) => UnsubscribeLinks;
  /** The signed page of one digest (subscriber, local date). */
  viewUrl: (subscriberId: string, localDate: string) => string;
  /** Stories of one topic an email lists; the rest are on the digest's page. */
  storiesPerTopic: number;
  /** HERALD_DIGEST_SETTLE_SECONDS in ms (LOG_SETTLE_MS when not given): see LOG_SETTLE_MS. */
  logSettleMs?: number;
  messageIdDomain: string;
  hardBounceLimit: number;
  clock: Clock;
  log: Logger;
}

const FIRST_DIGEST_LOOKBACK_MS = 24 * 60 * 60 * 1000;
/**
 * A digest covers the topic logs up to this long before it reads them. The classifier stamps a log entry with its
 * clock reading and writes it a round trip later (from another machine, its clock maybe a little behind): an entry
 * stamped before the read but written after it fell between two windows and was in neither digest. Entries of the
 * last minute wait for the next digest instead.
 */
export const LOG_SETTLE_MS = 60_000; // the default of HERALD_DIGEST_SETTLE_SECONDS
const TICK_BATCH = 1000;
/** A tick hands out at most this many batches; the rest stay due for the next minute. */
const TICK_MAX_BATCHES = 100;

export { RetryLater };

/** Same id on every retry of one digest: derived from the subscriber and the local date it is for. */
export const digestMessageId = (subscriberId: string, date: string, domain: string) => `<digest.${subscriberId}.${date}@${domain}>`;

/**
 * (Re)schedules a subscriber's digest after their settings change: due at the next local digest time when
 * they have a working email address and something can go into a digest (a daily topic, or pushes held
 * for it by their quiet-hours or cap choice); otherwise unscheduled.
 */
export async function rescheduleDigest(deps: Pick<DigestDeps, 'subscribers' | 'digests' | 'clock' | 'ledger'>, subscriberId: string) {
  const [who, follows, heldForIt] = await Promise.all([
    deps.subscribers.forDelivery(subscriberId), deps.subscribers.follows(subscriberId), deps.ledger.hasHeld(subscriberId, 'digest'),
  ]);
  // Pushes already held for the digest keep it scheduled, whatever the reader changed since (held alerts now go
  // to a bundle, no daily topic left, the address removed): its send delivers them, or ends them with the reason
  // when there is no address to send to. Unscheduled, they would wait for ever.
  const feedsDigest = heldForIt || Object.values(follows).some((f) => f.cadence === 'daily') || (who !== null && (who.prefs.heldAlerts === 'digest' || who.prefs.dailyPushCap !== null));
  const canMail = who !== null && who.subscriber.email !== null && who.emailHealth.disabledAt === null;
  if (!who || !feedsDigest || (!canMail && !heldForIt)) {
    await deps.digests.unschedule(subscriberId);
    return null;
  }
  const now = deps.clock.now();
  const { zone, time, problem } = effectiveDigestClock(who.subscriber);
  await deps.digests.noteProblem(subscriberId, problem);
  await deps.digests.initWindow(subscriberId, now - FIRST_DIGEST_LOOKBACK_MS);
  // The entry is the digest of one local date, owed whether or not its time has come: it moves to that date's time
  // under the settings saved now, and goes at once when that has passed. The date is read with the zone and time it
  // was scheduled under: read with the new zone, a save from Tokyo to Los Angeles after Tokyo's 2 May digest named
  // the entry for 3 May "2 May" (a date already sent: due at a time that sent nothing), and one from Los Angeles to
  // Tokyo at 07:00 on 11 May named it "12 May", so 11 May never got one. Unchanged settings leave the entry as it is;
  // 08:00 moved to 20:00 at 08:00:30 waits for 20:00 that day; a new value is one a sweep already under way sees
  // changed and does not overwrite (moveDue).
  const [current, scheduledUnder] = await Promise.all([deps.digests.dueAt(subscriberId), deps.digests.scheduledClock(subscriberId)]);
  const dueAt = current !== null && scheduledUnder !== null
    ? dateDigestAt(digestDate(current, effectiveZone(scheduledUnder.zone).zone, effectiveDigestTime(scheduledUnder.time).time), zone, time)
    // An entry scheduled before its clock was kept: the date its instant falls on under the new settings.
    : current !== null && current <= now ? sameDayDigestAt(current, zone, time) : nextDigestAt(now, zone, time);
  await deps.digests.schedule(subscriberId, dueAt, { zone, time });
  return dueAt;
}

/**
 * The minute sweep, O(due): one DigestSend per due subscriber, named by subscriber and local date, and the
 * subscriber moved to their next digest time. After an outage an overdue subscriber gets one job for the
 * date they missed first (the catch-up), and is then scheduled from now as usual.
 */
export async function runDigestTick(deps: Pick<DigestDeps, 'subscribers' | 'digests' | 'enqueue' | 'clock' | 'log'>): Promise<number> {
  const now = deps.clock.now();
  let total = 0;
  // Readers due at the same instant with the same zone and digest time share their local date and next time: each
  // costs Luxon a zone lookup and a few DateTimes, and at 08:00 in a popular zone thousands of readers share them.
  const clocks = new Map<string, { date: string; next: number }>();
  const clockOf = (dueAt: number, zone: string, time: string) => {
    const key = `${dueAt} ${zone} ${time}`;
    let c = clocks.get(key);
    if (!c) clocks.set(key, (c = { date: digestDate(dueAt, zone, time), next: nextDigestAt(Math.max(now, dueAt), zone, time) }));
    return c;
  };
  for (let batch = 0; batch < TICK_MAX_BATCHES; batch++) {
    const due = await deps.digests.due(now, TICK_BATCH);
    if (due.length === 0) break;
    const jobs = [];
    const next: { subscriberId: string; from: number; to: number }[] = [];
    // One batch of reads: at 08:00 in a popular zone thousands are due in the same minute.
    const profiles = await Promise.all(due.map((d) => deps.subscribers.forDelivery(d.subscriberId)));
    for (const [i, { subscriberId, dueAt }] of due.entries()) {
      const who = profiles[i];
      if (!who) {
        await deps.digests.unschedule(subscriberId);
        continue;
      }
      const { zone, time, problem } = effectiveDigestClock(who.subscriber);
      if (problem) {
        await deps.digests.noteProblem(subscriberId, problem);
        deps.log.warn({ subscriber_id: subscriberId }, problem);
      }
      const { date, next: nextAt } = clockOf(dueAt, zone, time);
      jobs.push({ data: { subscriberId, localDate: date, dueAt }, opts: { jobId: jobIds.digest(subscriberId, date) } });
      next.push({ subscriberId, from: dueAt, to: nextAt });
    }
    // Enqueue first: a crash in between re-adds the same job ids next minute, which is a no-op.
    await deps.enqueue.bulk('DigestSend', jobs);
    // Moved only while still due at the time read: a settings save meanwhile has the last word (MOVE_DUE).
    await deps.digests.moveDue(next);
    total += jobs.length;
  }
  return total;
}

export async function sendDigest(deps: DigestDeps, data: JobCatalog['DigestSend'], jobId: string): Promise<string> {
  const { subscriberId, localDate: date } = data;
  // Fields inline rather than a child logger per job: at digest volume the child's allocations show in GC.
  const fields = { subscriber_id: subscriberId, job_id: jobId, local_date: date };
  // The reader's profile, devices and follows are read by the claim's own script: one command, not two.
  const readKeys = deps.subscribers.forSendKeys(subscriberId);
  const claim = await deps.digests.claimDate(subscriberId, date, jobId, readKeys);
  if (!claim.claimed && claim.gone) {
    await deps.digests.unschedule(subscriberId);
    return 'skipped: subscriber gone';
  }
  if (!claim.claimed) return 'already sent';
  const { who, follows } = deps.subscribers.forSendOf(claim.reads);
  // The claim found the profile's id, which is all a reader needs to be read.
  if (!who) throw new Error(`subscriber ${subscriberId}: a claimed digest without a reader`);

  const address = who.subscriber.email;
  const windowStart = claim.windowStart ?? data.dueAt - FIRST_DIGEST_LOOKBACK_MS;
  const windowEnd = Math.max(windowStart, deps.clock.now() - (deps.logSettleMs ?? LOG_SETTLE_MS));
  if (!address || who.emailHealth.disabledAt !== null) {
    const reason = !address ? 'no email address' : 'email address disabled after hard bounces';
    // Pushes held for this digest can reach the reader no other way now: they end, with the reason.
    const stranded = (await deps.ledger.held(subscriberId, 'digest')).filter((h) => h.at <= windowEnd);
    await deps.ledger.release(subscriberId, 'digest', stranded, { status: 'skipped', via: `digest:${date}`, reason }, deps.clock.now());
    await deps.digests.complete(subscriberId, date, 'skipped', windowEnd, deps.clock.now());
    deps.log.info({ ...fields, reason }, 'digest skipped');
    return `skipped: ${reason}`;
  }
  const allHeld = await deps.ledger.held(subscriberId, 'digest');
  // A muted topic sits out the digest too; the topic log keeps no scores, so "less like this" is for instant alerts.
  const dailyTopics = Object.entries(follows)
    .filter(([, f]) => f.cadence === 'daily' && !(f.mutedUntil !== undefined && f.mutedUntil > windowEnd))
    .map(([t]) => t);
  const topicStories: { topicId: string; storyIds: string[] }[] = await Promise.all(
    dailyTopics.map(async (topicId) => ({ topicId, storyIds: await deps.stories.loggedBetween(topicId, windowStart, windowEnd) })),
  );
  const dailyIds = [...new Set(topicStories.flatMap((t) => t.storyIds))];
  const pushedStatus = await deps.ledger.statuses(subscriberId, dailyIds, 'push');
  const pushed = new Set([...pushedStatus].filter(([, s]) => s === 'sent').map(([id]) => id));
  // Pushes held for the digest (quiet hours in digest mode, or over the daily cap) come after the daily topics.
  const held = allHeld.filter((h) => h.at <= windowEnd);
  for (const [topicId, group] of groupBy(held, (h) => h.topicId)) topicStories.push({ topicId, storyIds: group.map((h) => h.storyId) });

  // One get per story (not getMany): with the dispatcher's story cache, readers of the same topics share reads.
  const stories = (await Promise.all([...new Set([...dailyIds, ...held.map((h) => h.storyId)])].map((id) => deps.stories.get(id)))).filter(
    (s): s is NonNullable<typeof s> => s !== null,
  );
  const { groups, storyIds, view } = composeDigest({
    topicStories,
    stories: new Map(stories.map((s) => [s.id, s])),
    topicName: deps.topicName,
    pushed,
    pushedMode: who.prefs.digestPushed,
    perTopic: deps.storiesPerTopic,
  });

  if (storyIds.length === 0 && !who.prefs.digestSendEmpty) {
    // Released before the date is completed, as below.
    await deps.ledger.release(subscriberId, 'digest', held, { status: 'skipped', via: `digest:${date}` }, deps.clock.now());
    await deps.digests.complete(subscriberId, date, 'skipped', windowEnd, deps.clock.now());
    deps.log.info({ ...fields, reason: 'no stories' }, 'digest skipped');
    return 'skipped: empty';
  }
  // Each daily topic carries its own signed stop link; the footer and List-Unsubscribe stop all email. A topic
  // here only through pushes held for the digest gets none: its follow has no email to stop, so the link's
  // POST changed nothing while its page said "unsubscribed" (the reader changes holding on the settings page).
  const linked = groups.map((g) => (follows[g.topicId]?.cadence === 'daily' ? { ...g, stopUrl: deps.links(subscriberId, g.topicId, address).topic } : g));
  // Only a digest that leaves stories out has a page: kept before the send, so its links work on arrival.
  const overflows = groups.some((g) => (g.more ?? 0) > 0);
  if (overflows) await deps.digests.saveView(subscriberId, date, view);
  const email = renderDigestEmail({
    localDate: date, groups: linked, links: deps.links(subscriberId, 'all', address),
    ...(overflows ? { viewUrl: deps.viewUrl(subscriberId, date) } : {}),
  });
  const outcome = await deps.mailer.send({ ...email, to: address, messageId: digestMessageId(subscriberId, date, deps.messageIdDomain) });
  if (outcome.kind === 'retry') {
    throw retryError(outcome.reason, { handedBack: handedBackAtShutdown(outcome) });
  }
  if (outcome.kind === 'permanent') {
    // The window stays put: the stories go out with the next digest if the address recovers.
    await deps.digests.fail(subscriberId, date, outcome.reason, deps.clock.now());
    await noteBounce(deps, subscriberId, address, outcome);
    throw new UnrecoverableError(outcome.reason);
  }
  const now = deps.clock.now();
  // A held push reached the reader inside this digest: its record ends as skipped (its reason kept) via the digest.
  // Before the date is completed: an attempt that dies in between leaves the date claimable by the retry, which
  // releases the rest; completed first, the retry answered "already sent" and they were held into the next digest.
  await deps.ledger.release(subscriberId, 'digest', held, { status: 'skipped', via: `digest:${date}` }, now);
  // Completing also clears the address's count of consecutive hard bounces (recordEmailDelivered), in one command.
  await deps.digests.complete(subscriberId, date, 'sent', windowEnd, now, readKeys[0]);
  if (deps.log.isLevelEnabled('info')) deps.log.info({ ...fields, stories: storyIds.length }, 'digest sent');
  return 'sent';
}

/**
 * BullMQ gave up on a digest: every attempt met a transient failure (SMTP down or answering 4xx for hours). Its
 * date's record, left "sending" by the last attempt's claim, ends as failed with `reason` ("gave up after N
 * attempts: ..."), as a refused digest's does: the record said "sending" for its 40 days, as if a digest were still
 * on its way. The window stays where it was, so the stories go out with the next digest. A record another job
 * claimed since, or that ended, is left alone.
 */
export async function giveUpDigest(deps: Pick<DigestDeps, 'digests' | 'clock'>, data: JobCatalog['DigestSend'], jobId: string, reason: string): Promise<void> {
  const record = await deps.digests.record(data.subscriberId, data.localDate);
  if (record.status !== 'sending' || record.jobId !== jobId) return;
  await deps.digests.fail(data.subscriberId, data.localDate, reason, deps.clock.now());
}
