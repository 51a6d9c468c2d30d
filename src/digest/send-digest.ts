import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Clock, Story } from '../model.ts';
import type { JobCatalog } from '../queue/jobs.ts';
import { jobIds } from '../queue/jobs.ts';
import type { Enqueue } from '../queue/queues.ts';
import type { DigestStore } from '../store/digests.ts';
import type { StoryStore } from '../store/stories.ts';
import type { SubscriberStore } from '../store/subscribers.ts';
import type { Mailer } from '../deliver/email/mailer.ts';
import { renderDigestEmail, type DigestGroup, type UnsubscribeLinks } from '../deliver/email/render.ts';
import { isValidTimeZone, localDate, nextDigestAt } from './schedule.ts';

export interface DigestDeps {
  subscribers: SubscriberStore;
  stories: StoryStore;
  digests: DigestStore;
  mailer: Mailer;
  enqueue: Enqueue;
  topicName: (topicId: string) => string;
  links: (subscriberId: string, topicId: string) => UnsubscribeLinks;
  messageIdDomain: string;
  clock: Clock;
  log: Logger;
}

const FIRST_DIGEST_LOOKBACK_MS = 24 * 60 * 60 * 1000;
const TICK_BATCH = 1000;

export class RetryLater extends Error {
  override name = 'RetryLater';
}

/**
 * (Re)schedules a subscriber's digest after their settings change: due at the next local digest time
 * when they follow any topic daily and have an email address; otherwise unscheduled.
 */
export async function rescheduleDigest(deps: Pick<DigestDeps, 'subscribers' | 'digests' | 'clock'>, subscriberId: string) {
  const [sub, follows] = await Promise.all([deps.subscribers.get(subscriberId), deps.subscribers.follows(subscriberId)]);
  const wantsDigest = sub?.email && Object.values(follows).some((f) => f.cadence === 'daily');
  if (!sub || !wantsDigest || !isValidTimeZone(sub.timeZone)) {
    await deps.digests.unschedule(subscriberId);
    return null;
  }
  const now = deps.clock.now();
  const dueAt = nextDigestAt(now, sub.timeZone, sub.digestTime);
  await deps.digests.initWindow(subscriberId, now - FIRST_DIGEST_LOOKBACK_MS);
  await deps.digests.schedule(subscriberId, dueAt);
  return dueAt;
}

/** The minute sweep: one DigestSend per due subscriber, named by subscriber and local date. */
export async function runDigestTick(deps: DigestDeps): Promise<number> {
  const due = await deps.digests.due(deps.clock.now(), TICK_BATCH);
  const jobs = [];
  for (const { subscriberId, dueAt } of due) {
    const sub = await deps.subscribers.get(subscriberId);
    if (!sub || !isValidTimeZone(sub.timeZone)) {
      await deps.digests.unschedule(subscriberId);
      deps.log.warn({ subscriber_id: subscriberId }, 'digest unscheduled: subscriber gone or time zone unknown');
      continue;
    }
    const date = localDate(dueAt, sub.timeZone);
    jobs.push({ data: { subscriberId, localDate: date, dueAt }, opts: { jobId: jobIds.digest(subscriberId, date) } });
  }
  await deps.enqueue.bulk('DigestSend', jobs);
  return jobs.length;
}

/** Groups stories by the reader's daily topics; a story in two topics is listed once, under the first. */
export function groupDigest(topicStories: { topicId: string; storyIds: string[] }[], stories: ReadonlyMap<string, Story>, topicName: (id: string) => string): DigestGroup[] {
  const seen = new Set<string>();
  const groups: DigestGroup[] = [];
  for (const { topicId, storyIds } of topicStories) {
    const list = storyIds
      .filter((id) => !seen.has(id) && stories.has(id))
      .map((id) => stories.get(id)!)
      .sort((a, b) => b.publishedAt - a.publishedAt);
    list.forEach((s) => seen.add(s.id));
    if (list.length > 0) groups.push({ topicName: topicName(topicId), stories: list });
  }
  return groups;
}

export async function sendDigest(deps: DigestDeps, data: JobCatalog['DigestSend'], jobId: string): Promise<string> {
  const { subscriberId, localDate: date } = data;
  const log = deps.log.child({ subscriber_id: subscriberId, job_id: jobId, local_date: date });
  const sub = await deps.subscribers.get(subscriberId);
  if (!sub) {
    await deps.digests.unschedule(subscriberId);
    return 'skipped: subscriber gone';
  }
  const scheduleNext = async () => {
    const dueAt = nextDigestAt(Math.max(deps.clock.now(), data.dueAt), sub.timeZone, sub.digestTime);
    await deps.digests.schedule(subscriberId, dueAt);
  };
  if (!(await deps.digests.claimDate(subscriberId, date, jobId))) {
    await scheduleNext();
    return 'already sent';
  }
  const follows = await deps.subscribers.follows(subscriberId);
  // A muted topic sits out the digest too; the topic log keeps no scores, so "less like this" is for instant alerts.
  const mutedNow = deps.clock.now();
  const dailyTopics = Object.entries(follows)
    .filter(([, f]) => f.cadence === 'daily' && !(f.mutedUntil !== undefined && f.mutedUntil > mutedNow))
    .map(([t]) => t);
  const windowStart = (await deps.digests.windowStart(subscriberId)) ?? data.dueAt - FIRST_DIGEST_LOOKBACK_MS;
  const windowEnd = deps.clock.now();
  const topicStories = [];
  for (const topicId of dailyTopics) topicStories.push({ topicId, storyIds: await deps.stories.loggedBetween(topicId, windowStart, windowEnd) });
  const stories = await deps.stories.getMany([...new Set(topicStories.flatMap((t) => t.storyIds))]);
  const groups = groupDigest(topicStories, new Map(stories.map((s) => [s.id, s])), deps.topicName);

  if (groups.length === 0 || !sub.email) {
    await deps.digests.complete(subscriberId, date, 'skipped', windowEnd, deps.clock.now());
    await scheduleNext();
    log.info({ reason: sub.email ? 'no stories' : 'no email' }, 'digest skipped');
    return 'skipped: empty';
  }
  const email = renderDigestEmail({ localDate: date, groups, links: deps.links(subscriberId, 'all') });
  const outcome = await deps.mailer.send({ ...email, to: sub.email, messageId: `<digest.${subscriberId}.${date}@${deps.messageIdDomain}>` });
  if (outcome.kind === 'retry') throw new RetryLater(outcome.reason);
  if (outcome.kind === 'permanent') {
    // The window stays put: the stories go out with the next digest if the address recovers.
    await scheduleNext();
    throw new UnrecoverableError(outcome.reason);
  }
  await deps.digests.complete(subscriberId, date, 'sent', windowEnd, deps.clock.now());
  await scheduleNext();
  log.info({ stories: stories.length }, 'digest sent');
  return 'sent';
}
