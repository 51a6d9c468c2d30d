import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { AlertQuality, Channel, Clock, Follow, TopicMatch } from '../model.ts';
import { followAllows } from './follow-allows.ts';
import { jobIds } from '../queue/jobs.ts';
import type { Enqueue } from '../queue/queues.ts';
import { planPushBatches } from '../queue/shards.ts';
import type { RecentStories } from '../store/recent-stories.ts';
import type { Ledger } from '../store/ledger.ts';
import { CorruptStoryError, type StoryStore } from '../store/stories.ts';
import type { SubscriberStore } from '../store/subscribers.ts';
import { explainStory, type StoryLimits, type TopicIndex } from './match.ts';

export interface ClassifyDeps {
  stories: StoryStore;
  ledger: Pick<Ledger, 'open' | 'noteFanOut' | 'dropFanOut' | 'finish'>;
  subscribers: SubscriberStore;
  recent: RecentStories;
  enqueue: Enqueue;
  /** The compiled index of catalog topics and readers' own alerts, current with Redis. */
  index: () => Promise<TopicIndex>;
  /** Score a match needs for readers who chose "only the best". */
  bestMinScore: number;
  storyLimits: StoryLimits;
  /** Push fan-out jobs: the number of push shards and the alerts per batch job. */
  pushBatches: { shards: number; size: number };
  clock: Clock;
  log: Logger;
}

export interface AlertPlan {
  subscriberId: string;
  topicId: string;
  why: string;
  channels: Channel[];
}

/**
 * Picks, for each instant follower of any matched topic, one alert per channel: the best-scoring topic they
 * follow on that channel names it, so a reader following both "Japan" and "India" (or an own alert) gets the
 * story once per channel. Per channel, not per reader: the send checks that the alert's topic still wants its
 * channel, so an email named by a topic followed by push only was skipped as unfollowed, and a reader following
 * Japan by push and India by email got no email. A reader whose channels come from two topics has two plans, each
 * with its own channels (never one channel twice). Readers who chose "only the best" are left out of matches
 * scoring below `bestMinScore`.
 */
export function planInstantAlerts(
  matches: readonly TopicMatch[],
  followersOf: ReadonlyMap<string, readonly string[]>,
  followsOf: ReadonlyMap<string, Record<string, Pick<Follow, 'cadence' | 'channels' | 'minScore' | 'mutedUntil'>>>,
  now: number,
  quality: { of: ReadonlyMap<string, AlertQuality>; bestMinScore: number } = { of: new Map(), bestMinScore: 0 },
): AlertPlan[] {
  const plans = new Map<string, AlertPlan>();
  const planned = new Set<string>();
  const ordered = [...matches].sort((a, b) => b.score - a.score);
  for (const m of ordered) {
    for (const subscriberId of followersOf.get(m.topicId) ?? []) {
      const follow = followsOf.get(subscriberId)?.[m.topicId];
      // The follower set is an index; the subscriber's own record decides.
      if (!follow || follow.cadence !== 'instant' || !followAllows(follow, m.score, now)) continue;
      if (quality.of.get(subscriberId) === 'best' && m.score < quality.bestMinScore) continue;
      for (const c of follow.channels) {
        if (planned.has(`${subscriberId}\n${c}`)) continue;
        planned.add(`${subscriberId}\n${c}`);
        const key = `${subscriberId}\n${m.topicId}`;
        const plan = plans.get(key);
        if (plan) plan.channels.push(c);
        else plans.set(key, { subscriberId, topicId: m.topicId, why: m.why, channels: [c] });
      }
    }
  }
  return [...plans.values()];
}

/** The (reader, channel) pairs of `earlier` that `planned` leaves out. */
export function unplanned<E extends { subscriberId: string; channel: Channel }>(earlier: readonly E[], planned: readonly { subscriberId: string; channel: Channel }[]): E[] {
  const now = new Set(planned.map((p) => `${p.subscriberId} ${p.channel}`));
  return earlier.filter((e) => !now.has(`${e.subscriberId} ${e.channel}`));
}

/** Returns what BullMQ keeps as the job's result: the matched topic ids (not their evidence) and the alerts sent. */
export async function classifyStory(deps: ClassifyDeps, storyId: string): Promise<{ topics: string[]; alerts: number }> {
  const story = await deps.stories.get(storyId).catch((err: unknown) => {
    // A corrupt record fails the same way on every attempt: straight to failed, with the reason.
    throw err instanceof CorruptStoryError ? new UnrecoverableError(err.message) : err;
  });
  if (!story) throw new Error(`story ${storyId} not found`);
  // Explanations render their "why" on first use: only the matches that become alerts pay for it.
  const matches: TopicMatch[] = explainStory(story, await deps.index(), deps.storyLimits);
  const now = deps.clock.now();
  // Fan-out on read for digests: one write per matched topic, whatever the number of daily followers.
  await deps.stories.logForTopics(storyId, matches.map((m) => m.topicId), now);

  // All topics' followers at once: a story can match thousands of readers' own alerts, and one round trip
  // after another cost a millisecond each across a network.
  const followersOf = new Map(await Promise.all(matches.map(async (m) => [m.topicId, await deps.subscribers.followers(m.topicId, 'instant')] as const)));
  const candidates = [...new Set([...followersOf.values()].flat())];
  const followsOf = new Map<string, Awaited<ReturnType<SubscriberStore['follows']>>>();
  const qualityOf = new Map<string, AlertQuality>();
  await Promise.all(
    candidates.map(async (id) => {
      const [follows, sub] = await Promise.all([deps.subscribers.follows(id), deps.subscribers.get(id)]);
      followsOf.set(id, follows);
      if (sub) qualityOf.set(id, sub.quality);
    }),
  );

  const plans = planInstantAlerts(matches, followersOf, followsOf, now, { of: qualityOf, bestMinScore: deps.bestMinScore });
  const push = plans.filter((p) => p.channels.includes('push'));
  const email = plans.filter((p) => p.channels.includes('email'));
  const data = (p: AlertPlan) => ({ subscriberId: p.subscriberId, storyId, topicId: p.topicId, why: p.why });
  const batches = planPushBatches(storyId, push.map((p) => ({ subscriberId: p.subscriberId, topicId: p.topicId, why: p.why })), deps.pushBatches);
  const records = [
    ...batches.flatMap((b) => b.data.alerts.map((a) => ({ subscriberId: a.subscriberId, storyId, channel: 'push' as const, jobId: b.jobId, topicId: a.topicId }))),
    ...email.map((p) => ({ subscriberId: p.subscriberId, storyId, channel: 'email' as const, jobId: jobIds.alert(p.subscriberId, storyId, 'email'), topicId: p.topicId })),
  ];
  const earlier = await deps.ledger.noteFanOut(storyId, records);
  // The ledger opens each record before its job exists: a job is never without its record.
  await deps.ledger.open(records, now);
  await deps.enqueue.bulk('AlertSendPushBatch', batches.map((b) => ({ data: b.data, opts: { jobId: b.jobId } })));
  await deps.enqueue.bulk('AlertSendEmail', email.map((p) => ({ data: data(p), opts: { jobId: jobIds.alert(p.subscriberId, storyId, 'email') } })));
  // An earlier run that died before its enqueues left records queued with no job; those of readers this run no
  // longer plans (they unfollowed or muted the topic since, or it no longer matches for them) would wait for ever.
  // They end as skipped 'muted', as a send skips an alert its reader no longer wants, rather than being enqueued
  // now: a reader who left or muted the topic expects no alert from it. Only while still queued: a record a job of
  // the earlier run claimed, held or ended is that job's.
  await Promise.all(
    unplanned(earlier, records).map((e) => deps.ledger.finish(e.subscriberId, storyId, e.channel, 'skipped', now, { reason: 'muted', from: 'queued' })),
  );
  await deps.ledger.dropFanOut(storyId);
  // The preview of readers' own alerts replays these.
  await deps.recent.add(storyId, now);
  await deps.stories.markClassified(storyId, now);
  deps.log.info({ story_id: storyId, topics: matches.map((m) => m.topicId), alerts: push.length + email.length }, 'story classified');
  return { topics: matches.map((m) => m.topicId), alerts: push.length + email.length };
}

/**
 * What BullMQ giving up on a classification records: a run that opened its readers' records and then failed for
 * good (its enqueues refused on every attempt) left them queued with no job, so nothing would ever send or end
 * them. Each record its runs noted that is still queued and whose job does not exist ends as failed with the
 * reason; a record whose job was enqueued is that job's to send or give up. Then the note goes.
 */
export async function giveUpClassification(
  deps: { ledger: Pick<Ledger, 'fanOutNoted' | 'get' | 'finish' | 'dropFanOut'>; jobExists: (channel: Channel, jobId: string) => Promise<boolean>; clock: Clock },
  storyId: string,
  reason: string,
): Promise<number> {
  let ended = 0;
  for (const { subscriberId, channel } of await deps.ledger.fanOutNoted(storyId)) {
    const record = await deps.ledger.get(subscriberId, storyId, channel);
    if (record?.status !== 'queued' || (record.jobId && (await deps.jobExists(channel, record.jobId)))) continue;
    if (await deps.ledger.finish(subscriberId, storyId, channel, 'failed', deps.clock.now(), { error: reason, from: 'queued' })) ended++;
  }
  await deps.ledger.dropFanOut(storyId);
  return ended;
}

