import type { JobsOptions } from 'bullmq';
import type { Topic } from '../../../src/config/catalog.ts';
import type { Clock, Story } from '../../../src/model.ts';
import { jobIds, QUEUE_NAMES } from '../../../src/queue/jobs.ts';
import type { DeliveryPrefs } from '../../../src/store/subscribers.ts';
import { startTestHerald, type TestHerald } from '../../helpers/herald.ts';
import { createReader } from '../../helpers/readers.ts';
import { startPushSink } from './push-sink.ts';
import { startScriptedSmtp } from './smtp.ts';

/** Test topics: small and explicit, so each test names what it matches. */
export const TOPICS: Topic[] = [
  { id: 'japan', name: 'Japan', group: 'Places', description: 'Japan', query: 'japan OR tokyo' },
  { id: 'india', name: 'India', group: 'Places', description: 'India', query: 'india OR delhi' },
];

let counter = 0;
export function makeStory(now: number, patch: Partial<Story> = {}): Story {
  counter++;
  const id = `st${Date.now().toString(36)}${counter.toString(36)}`.padEnd(20, '0').slice(0, 20);
  return {
    id, feedId: 'wire', guid: null, url: `https://news.example.test/story/${id}`, title: `Japan story ${counter}`,
    summary: `Summary of story ${counter}.`, categories: [], publishedAt: now, firstSeenAt: now, ...patch,
  };
}

/** Stores a subscriber the way the settings API would, straight through the stores. */
export async function addSubscriber(
  t: TestHerald,
  now: number,
  opts: { email?: string | null; timeZone?: string; digestTime?: string; topics?: Record<string, { cadence: 'instant' | 'daily'; channels: ('push' | 'email')[] }>; prefs?: Partial<DeliveryPrefs> } = {},
) {
  const s = t.herald.stores.subscribers;
  const { id } = await createReader(s, { email: opts.email ?? null, timeZone: opts.timeZone ?? 'UTC', digestTime: opts.digestTime ?? '08:00' }, now);
  await s.setFollows(id, opts.topics ?? { japan: { cadence: 'instant', channels: ['push'] } });
  if (opts.prefs) await s.setPrefs(id, opts.prefs, now);
  return id;
}

/** Enqueues alerts as the classifier does, with a short backoff so retries happen within the test. */
export async function enqueueAlert(t: TestHerald, channel: 'push' | 'email', subscriberId: string, storyId: string, topicId = 'japan', opts: JobsOptions = {}) {
  const name = channel === 'push' ? 'AlertSendPush' : 'AlertSendEmail';
  await t.herald.enqueue(name, { subscriberId, storyId, topicId, why: `Matched: ${topicId}` }, {
    jobId: jobIds.alert(subscriberId, storyId, channel),
    backoff: { type: 'delivery', delay: 100 },
    ...opts,
  });
}

/** Waits until nothing is waiting or running (delayed jobs, such as held bundles, may stay). */
export async function settle(t: TestHerald, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let quiet = 0;
  while (quiet < 3) {
    const counts = await Promise.all(QUEUE_NAMES.map((q) => t.herald.queues[q].getJobCounts('waiting', 'active', 'prioritized')));
    const busy = counts.reduce((n, c) => n + Object.values(c).reduce((a, b) => a + b, 0), 0);
    quiet = busy === 0 ? quiet + 1 : 0;
    if (Date.now() > deadline) throw new Error(`queues still busy after ${timeoutMs} ms: ${JSON.stringify(counts)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Makes every delayed push job (held bundles) due now, as if their release time had come. */
export async function releaseDelayed(t: TestHerald) {
  await t.herald.queues.push.promoteJobs();
  await settle(t);
}

/**
 * A whole Herald (every worker role) with a local push service it trusts (HERALD_PUSH_CA_FILE) and a local SMTP
 * server, as the push dispatch tests run it; `close` stops all three.
 */
export async function startPushWorld(name: string, clock: Clock, opts: { sink?: Parameters<typeof startPushSink>[0]; env?: Record<string, string> } = {}) {
  const sink = await startPushSink(opts.sink);
  const smtp = await startScriptedSmtp();
  const stopServers = () => Promise.all([sink.close(), smtp.close()]);
  let t: TestHerald;
  try {
    t = await startTestHerald({ name, clock, smtpUrl: smtp.url, topics: TOPICS, env: { HERALD_PUSH_CA_FILE: sink.caFile, ...opts.env } });
  } catch (err) {
    await stopServers();
    throw err;
  }
  return {
    sink, smtp, t,
    async close() {
      await t.close();
      await stopServers();
    },
  };
}
export type PushWorld = Awaited<ReturnType<typeof startPushWorld>>;
