import type { Logger } from 'pino';
import type { Channel, Clock, Follow, TopicMatch } from '../model.ts';
import { followAllows } from './follow-allows.ts';
import { jobIds } from '../queue/jobs.ts';
import type { Enqueue } from '../queue/queues.ts';
import type { StoryStore } from '../store/stories.ts';
import type { SubscriberStore } from '../store/subscribers.ts';
import { matchStory, type CompiledTopic } from './match.ts';

export interface ClassifyDeps {
  stories: StoryStore;
  subscribers: SubscriberStore;
  enqueue: Enqueue;
  topics: () => readonly CompiledTopic[];
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
 * Picks, for each instant follower of any matched topic, one alert per channel: the best-scoring topic
 * they follow names the alert, so a reader following both "Japan" and "India" gets the story once.
 */
export function planInstantAlerts(
  matches: readonly TopicMatch[],
  followersOf: ReadonlyMap<string, readonly string[]>,
  followsOf: ReadonlyMap<string, Record<string, Pick<Follow, 'cadence' | 'channels' | 'minScore' | 'mutedUntil'>>>,
  now: number,
): AlertPlan[] {
  const plans = new Map<string, AlertPlan>();
  for (const m of matches) {
    for (const subscriberId of followersOf.get(m.topicId) ?? []) {
      const follow = followsOf.get(subscriberId)?.[m.topicId];
      // The follower set is an index; the subscriber's own record decides.
      if (!follow || follow.cadence !== 'instant' || !followAllows(follow, m.score, now)) continue;
      const plan = plans.get(subscriberId);
      if (!plan) plans.set(subscriberId, { subscriberId, topicId: m.topicId, why: m.why, channels: [...follow.channels] });
      else for (const c of follow.channels) if (!plan.channels.includes(c)) plan.channels.push(c);
    }
  }
  return [...plans.values()];
}

export async function classifyStory(deps: ClassifyDeps, storyId: string): Promise<{ matches: TopicMatch[]; alerts: number }> {
  const story = await deps.stories.get(storyId);
  if (!story) throw new Error(`story ${storyId} not found`);
  const matches = matchStory(story, deps.topics());
  const now = deps.clock.now();
  // Fan-out on read for digests: one write per matched topic, whatever the number of daily followers.
  await deps.stories.logForTopics(storyId, matches.map((m) => m.topicId), now);

  const followersOf = new Map<string, string[]>();
  for (const m of matches) followersOf.set(m.topicId, await deps.subscribers.followers(m.topicId, 'instant'));
  const candidates = new Set([...followersOf.values()].flat());
  const followsOf = new Map<string, Awaited<ReturnType<SubscriberStore['follows']>>>();
  for (const id of candidates) followsOf.set(id, await deps.subscribers.follows(id));

  const plans = planInstantAlerts(matches, followersOf, followsOf, now);
  const push = plans.filter((p) => p.channels.includes('push'));
  const email = plans.filter((p) => p.channels.includes('email'));
  const data = (p: AlertPlan) => ({ subscriberId: p.subscriberId, storyId, topicId: p.topicId, why: p.why });
  await deps.enqueue.bulk('AlertSendPush', push.map((p) => ({ data: data(p), opts: { jobId: jobIds.alert(p.subscriberId, storyId, 'push') } })));
  await deps.enqueue.bulk('AlertSendEmail', email.map((p) => ({ data: data(p), opts: { jobId: jobIds.alert(p.subscriberId, storyId, 'email') } })));
  await deps.stories.markClassified(storyId, now);
  deps.log.info({ story_id: storyId, topics: matches.map((m) => m.topicId), alerts: push.length + email.length }, 'story classified');
  return { matches, alerts: push.length + email.length };
}
