import type { Queue } from 'bullmq';
import { planInstantAlerts } from '../classify/classify-story.ts';
import { followAllows } from '../classify/follow-allows.ts';
import { explainStory, type StoryLimits, type TopicIndex } from '../classify/match.ts';
import { canonicalUrl } from '../ingest/normalize.ts';
import { CHANNELS, type Channel, type Follow, type Story, type Subscriber } from '../model.ts';
import { jobIds } from '../queue/jobs.ts';
import type { DeliveryRecord, Ledger } from '../store/ledger.ts';
import type { RecentStories } from '../store/recent-stories.ts';
import type { StoryStore } from '../store/stories.ts';
import type { DeliveryPrefs, EmailHealth, SubscriberStore } from '../store/subscribers.ts';

/**
 * "Why did this reader get (or not get) that story?": the path of one story to one subscriber, from the
 * stored story, the subscriber's current settings, the delivery ledger and the topics as they are now.
 */

export interface TraceMatch {
  topicId: string;
  name: string;
  score: number;
  why: string;
  /** How the subscriber follows it now ("instant", "daily"), or why it does not lead to an instant alert. */
  follow: string;
}

export type ChannelOutcome = 'sent' | 'failed' | 'skipped' | 'held' | 'pending' | 'none';

export interface ChannelTrace {
  channel: Channel;
  outcome: ChannelOutcome;
  /** One sentence an operator can act on. */
  explanation: string;
  record: (Omit<DeliveryRecord, 'createdAt' | 'updatedAt' | 'clickedAt'> & { createdAt: string; updatedAt: string; clickedAt: string | null }) | null;
}

export interface Trace {
  subscriber: { id: string; email: string | null; quality: string; timeZone: string };
  story: { id: string; title: string; url: string; feedId: string; publishedAt: string; ingestedAt: string; classifiedAt: string | null };
  /** The matcher re-run now against the current topics (the classifier ran at classifiedAt; topics may have changed since). */
  matches: TraceMatch[];
  matchedNote: string;
  channels: ChannelTrace[];
}

export interface TraceInput {
  subscriber: Subscriber;
  follows: Record<string, Follow>;
  prefs: DeliveryPrefs;
  emailHealth: EmailHealth;
  pushDevices: number;
  story: Story;
  classifiedAt: number | null;
  matches: { topicId: string; score: number; why: string }[];
  topicName: (id: string) => string;
  bestMinScore: number;
  records: Record<Channel, DeliveryRecord | null>;
  /** BullMQ state of each channel's alert job, when the job is still kept ("waiting", "delayed", "failed"...). */
  jobStates: Partial<Record<Channel, string>>;
  now: number;
}

const iso = (t: number) => new Date(t).toISOString();

const SKIP_REASONS: Record<string, string> = {
  'quiet-hours': 'quiet hours',
  cap: 'daily push cap reached',
  muted: 'topic muted',
  'already-pushed': 'already pushed to this reader (the email leaves it out)',
  'no-device': 'push subscription gone: no device left to push to',
  'no-email': 'channel unconfirmed: no confirmed email address',
  'email-disabled': 'email disabled after hard bounces',
  'rolled-into-digest': 'rolled into the daily digest',
  burst: 'a burst of alerts: bundled into one notification',
};

function describeSkip(reason: string | null, prefs: DeliveryPrefs): string {
  if (!reason) return 'skipped';
  const base = SKIP_REASONS[reason] ?? reason;
  if (reason === 'quiet-hours' && prefs.quietHours) return `${base} (${prefs.quietHours.from}–${prefs.quietHours.to} local)`;
  if (reason === 'cap' && prefs.dailyPushCap !== null) return `${base} (${prefs.dailyPushCap} a day)`;
  return base;
}

function describeRecord(r: DeliveryRecord, prefs: DeliveryPrefs): { outcome: ChannelOutcome; explanation: string } {
  const tries = `${r.attempts} attempt${r.attempts === 1 ? '' : 's'}`;
  switch (r.status) {
    case 'sent':
      return { outcome: 'sent', explanation: `sent at ${iso(r.updatedAt)} after ${tries}${r.via ? ` (in ${r.via})` : ''}${r.clickedAt ? `; opened at ${iso(r.clickedAt)}` : ''}` };
    case 'failed':
      return { outcome: 'failed', explanation: `failed for good at ${iso(r.updatedAt)} after ${tries}: ${r.lastError ?? r.reason ?? 'no error recorded'}` };
    case 'skipped':
      return { outcome: 'skipped', explanation: `not sent: ${describeSkip(r.reason, prefs)} (decided at ${iso(r.updatedAt)})` };
    case 'held': {
      // The push dispatcher's buckets: over the cap goes to the digest, a burst to the bundle, quiet hours as the reader chose.
      const digest = r.reason === 'cap' || (r.reason === 'quiet-hours' && prefs.heldAlerts === 'digest');
      return { outcome: 'held', explanation: `held since ${iso(r.updatedAt)}: ${describeSkip(r.reason, prefs)}; goes out with the ${digest ? 'next digest' : 'bundle when the hold ends'}` };
    }
    default:
      return { outcome: 'pending', explanation: `${r.status} since ${iso(r.updatedAt)} (${tries}${r.lastError ? `, last error: ${r.lastError}` : ''})` };
  }
}

/** Why a followed, matched topic leads to no instant alert, or null when it does. */
function followBlock(follow: Follow | undefined, score: number, quality: string, bestMinScore: number, now: number): string | null {
  if (!follow || follow.cadence === 'off') return 'not followed';
  if (follow.cadence === 'daily') return 'followed daily: goes into the digest, no instant alert';
  if (follow.mutedUntil !== undefined && follow.mutedUntil > now) return `muted until ${iso(follow.mutedUntil)}`;
  if (!followAllows(follow, score, now)) return `below threshold: score ${score} < ${follow.minScore} ("less like this")`;
  if (quality === 'best' && score < bestMinScore) return `below threshold: the reader takes only the best (score ${score} < ${bestMinScore})`;
  return null;
}

/** Pure: the whole explanation from what the stores hold. */
export function explainTrace(input: TraceInput): Trace {
  const { subscriber, follows, prefs, now } = input;
  const matches: TraceMatch[] = input.matches.map((m) => {
    const block = followBlock(follows[m.topicId], m.score, subscriber.quality, input.bestMinScore, now);
    const f = follows[m.topicId];
    return { topicId: m.topicId, name: input.topicName(m.topicId), score: m.score, why: m.why, follow: block ?? `instant by ${f!.channels.join(' and ') || 'no channel'}` };
  });
  // One plan per topic that names a channel of the reader's alerts (two when Japan sends the push and India the email).
  const plans = planInstantAlerts(
    input.matches,
    new Map(input.matches.map((m) => [m.topicId, [subscriber.id]])),
    new Map([[subscriber.id, follows]]),
    now,
    { of: new Map([[subscriber.id, subscriber.quality]]), bestMinScore: input.bestMinScore },
  );

  const noAlertReason = (channel: Channel): string => {
    if (input.classifiedAt === null) return 'the story has not been classified yet';
    if (matches.length === 0) return 'the story matches none of the current topics';
    if (plans.length === 0) {
      const followed = matches.filter((m) => m.follow !== 'not followed');
      if (followed.length === 0) return `not followed: the reader follows none of the matched topics (${matches.map((m) => m.name).join(', ')})`;
      const reasons = [...new Set(followed.map((m) => m.follow))];
      return reasons.length === 1 ? reasons[0]! : followed.map((m) => `${m.name}: ${m.follow}`).join('; ');
    }
    if (!plans.some((p) => p.channels.includes(channel))) {
      const named = plans.map((p) => (p.topicId === '' ? 'this topic' : `"${input.topicName(p.topicId)}"`)).join(' and ');
      return `channel not chosen: the reader gets ${named} by ${plans.flatMap((p) => p.channels).join(' and ')} only`;
    }
    if (channel === 'push' && input.pushDevices === 0) return 'push subscription gone: no device to push to';
    if (channel === 'email' && !subscriber.email) return `channel unconfirmed: ${subscriber.pendingEmail ? `${subscriber.pendingEmail} waits for its confirmation link` : 'no email address'}`;
    if (channel === 'email' && input.emailHealth.disabledAt) return `email disabled: ${input.emailHealth.disabledReason ?? 'hard bounces'}`;
    const job = input.jobStates[channel];
    return job
      ? `an alert is due but not recorded yet: its job is ${job}`
      : 'an alert would be due under the current settings, but none was created (settings or topics changed after classification)';
  };

  const channels: ChannelTrace[] = CHANNELS.map((channel) => {
    const r = input.records[channel];
    if (r) {
      const { outcome, explanation } = describeRecord(r, prefs);
      return {
        channel, outcome, explanation,
        record: { ...r, createdAt: iso(r.createdAt), updatedAt: iso(r.updatedAt), clickedAt: r.clickedAt === null ? null : iso(r.clickedAt) },
      };
    }
    return { channel, outcome: 'none' as const, explanation: `no alert: ${noAlertReason(channel)}`, record: null };
  });

  return {
    subscriber: { id: subscriber.id, email: subscriber.email, quality: subscriber.quality, timeZone: subscriber.timeZone },
    story: {
      id: input.story.id, title: input.story.title, url: input.story.url, feedId: input.story.feedId,
      publishedAt: iso(input.story.publishedAt), ingestedAt: iso(input.story.firstSeenAt),
      classifiedAt: input.classifiedAt === null ? null : iso(input.classifiedAt),
    },
    matches,
    matchedNote: `Matched against the topics as they are now (${iso(now)}); the classifier ran ${input.classifiedAt === null ? 'not yet' : `at ${iso(input.classifiedAt)}`}.`,
    channels,
  };
}

export interface TraceDeps {
  subscribers: SubscriberStore;
  stories: StoryStore;
  ledger: Ledger;
  recent: RecentStories;
  index: () => Promise<TopicIndex>;
  topicName: (id: string) => string;
  bestMinScore: number;
  storyLimits: StoryLimits;
  queues?: Partial<Record<Channel, Queue>>;
  now: number;
}

export class TraceLookupError extends Error {
  override name = 'TraceLookupError';
}

/** A subscriber by id or by email address (through the email index). */
export async function findSubscriber(deps: Pick<TraceDeps, 'subscribers'>, ref: string): Promise<Subscriber> {
  const key = ref.trim();
  if (!key) throw new TraceLookupError('give a subscriber: an email address or a subscriber id');
  const id = key.includes('@') ? await deps.subscribers.idForEmail(key) : key;
  const sub = id ? await deps.subscribers.get(id) : null;
  if (!sub) throw new TraceLookupError(key.includes('@') ? `no subscriber has the confirmed address ${key}` : `no subscriber with id ${key}`);
  return sub;
}

const RECENT_SCAN_BATCH = 500;
const RECENT_SCAN_MAX = 50_000;

/** A story by id or by URL: the link index first, then the recently classified stories (items with a guid). */
export async function findStory(deps: Pick<TraceDeps, 'stories' | 'recent' | 'now'>, ref: string): Promise<Story> {
  const key = ref.trim();
  if (!key) throw new TraceLookupError('give a story: its URL or its id');
  if (!/^https?:\/\//i.test(key)) {
    const story = await deps.stories.get(key);
    if (!story) throw new TraceLookupError(`no story with id ${key}`);
    return story;
  }
  const canonical = canonicalUrl(key) ?? key;
  const byLink = await deps.stories.idForCanonicalUrl(canonical, deps.now);
  const linked = byLink ? await deps.stories.get(byLink) : null;
  if (linked) return linked;
  const same = (u: string) => u === key || canonicalUrl(u) === canonical;
  for (let offset = 0; offset < RECENT_SCAN_MAX; offset += RECENT_SCAN_BATCH) {
    const ids = await deps.recent.page(offset, RECENT_SCAN_BATCH);
    if (ids.length === 0) break;
    const found = (await deps.stories.getMany(ids)).find((s) => same(s.url) || (s.sources ?? []).some((src) => same(src.url)));
    if (found) return found;
  }
  throw new TraceLookupError(`no story with the URL ${key} among the stories Herald remembers`);
}

export async function traceAlert(deps: TraceDeps, refs: { subscriber: string; story: string }): Promise<Trace> {
  const subscriber = await findSubscriber(deps, refs.subscriber);
  const story = await findStory(deps, refs.story);
  const [follows, delivery, devices, classifiedAt, push, email, index] = await Promise.all([
    deps.subscribers.follows(subscriber.id),
    deps.subscribers.forDelivery(subscriber.id),
    deps.subscribers.pushSubscriptions(subscriber.id),
    deps.stories.classifiedAt(story.id),
    deps.ledger.get(subscriber.id, story.id, 'push'),
    deps.ledger.get(subscriber.id, story.id, 'email'),
    deps.index(),
  ]);
  const jobStates: Partial<Record<Channel, string>> = {};
  for (const channel of CHANNELS) {
    const job = await deps.queues?.[channel]?.getJob(jobIds.alert(subscriber.id, story.id, channel));
    if (job) jobStates[channel] = await job.getState();
  }
  const matches = explainStory(story, index, deps.storyLimits).map((m) => ({ topicId: m.topicId, score: m.score, why: m.why }));
  return explainTrace({
    subscriber, follows, prefs: delivery!.prefs, emailHealth: delivery!.emailHealth, pushDevices: devices.length,
    story, classifiedAt, matches, topicName: deps.topicName, bestMinScore: deps.bestMinScore,
    records: { push, email }, jobStates, now: deps.now,
  });
}

/** The trace as text, for the CLI. */
export function renderTraceText(t: Trace): string {
  const lines = [
    `Subscriber ${t.subscriber.id}${t.subscriber.email ? ` <${t.subscriber.email}>` : ''} (quality: ${t.subscriber.quality}, time zone ${t.subscriber.timeZone})`,
    `Story ${t.story.id}: ${t.story.title}`,
    `  ${t.story.url}`,
    `  published ${t.story.publishedAt}, ingested ${t.story.ingestedAt} from feed ${t.story.feedId}, classified ${t.story.classifiedAt ?? 'not yet'}`,
    '',
    `Matched topics (${t.matchedNote})`,
    ...(t.matches.length === 0 ? ['  none'] : t.matches.map((m) => `  ${m.name} [${m.topicId}] score ${m.score}: ${m.why} -> ${m.follow}`)),
    '',
    'Channels',
    ...t.channels.map((c) => `  ${c.channel}: ${c.outcome}: ${c.explanation}`),
  ];
  return `${lines.join('\n')}\n`;
}
