import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Clock, PushSubscriptionRecord, Story } from '../../model.ts';
import { jobIds, type JobCatalog } from '../../queue/jobs.ts';
import { addUnlessStarted, type Enqueue, type JobStateOf } from '../../queue/queues.ts';
import type { HeldBucket, Ledger, QuietBundle } from '../../store/ledger.ts';
import type { StoryStore } from '../../store/stories.ts';
import type { DeliveryPrefs, SubscriberStore } from '../../store/subscribers.ts';
import { effectiveZone, localDate } from '../../digest/schedule.ts';
import { followWants } from '../follow-wants.ts';
import { quietHoursAt } from '../quiet-hours.ts';
import { whileRenewing } from '../../queue/renewing.ts';
import { deliveryBackoffMs, RetryLater, retryError } from '../retry.ts';
import { MAX_PAYLOAD_BYTES, renderPushPayload } from './payload.ts';
import { isBreaking, pushTopic, pushTtlSeconds, pushUrgency } from './policy.ts';
import type { PushSendOptions, PushSender } from './web-push-sender.ts';

export interface PushDeliverDeps {
  subscribers: SubscriberStore;
  stories: StoryStore;
  ledger: Ledger;
  sender: PushSender;
  enqueue: Enqueue;
  /** Whether a bundle's job id is still free or its job still to run (`queueBundle`). */
  jobState: JobStateOf;
  topicName: (topicId: string) => string;
  clock: Clock;
  log: Logger;
  /** Non-breaking matches within this long after a push are bundled (0: never). */
  burstWindowMs: number;
  /** HERALD_JOB_LOCK_SECONDS in ms: another job's claim younger than this is left alone (see `ledger.claim`). */
  jobLockMs: number;
}

export { RetryLater };

/** What to do with one alert before sending, from the reader's choices; pure so each rule is table-tested. */
export type PushDecision =
  | { kind: 'send' }
  | { kind: 'skip'; reason: 'muted' | 'no-device' | 'cap' }
  | { kind: 'hold'; bucket: HeldBucket; reason: 'quiet-hours' | 'burst' | 'cap'; releaseAt: number | null };

export function decidePush(input: {
  now: number;
  zone: string;
  prefs: DeliveryPrefs;
  breaking: boolean;
  following: boolean;
  devices: number;
  hasDigest: boolean;
  lastPushAt: number | null;
  burstWindowMs: number;
}): PushDecision {
  const { now, prefs } = input;
  if (!input.following) return { kind: 'skip', reason: 'muted' };
  if (input.devices === 0) return { kind: 'skip', reason: 'no-device' };
  const quiet = quietHoursAt(now, input.zone, prefs.quietHours);
  if (quiet.active && !(input.breaking && prefs.breakingThroughQuiet)) {
    // Held, never dropped: into the next digest when they chose it and have one, else one bundle at the end.
    return prefs.heldAlerts === 'digest' && input.hasDigest
      ? { kind: 'hold', bucket: 'digest', reason: 'quiet-hours', releaseAt: null }
      : { kind: 'hold', bucket: 'bundle', reason: 'quiet-hours', releaseAt: quiet.endsAt };
  }
  if (!input.breaking && input.burstWindowMs > 0 && input.lastPushAt !== null && now - input.lastPushAt < input.burstWindowMs) {
    return { kind: 'hold', bucket: 'bundle', reason: 'burst', releaseAt: input.lastPushAt + input.burstWindowMs };
  }
  return { kind: 'send' };
}

export type DeviceSend = (device: PushSubscriptionRecord, payload: string, opts: PushSendOptions) => ReturnType<PushSender['send']>;

/**
 * Sends one payload to each device. A 413 gets one more try with the payload rendered to half the size;
 * 404/410 remove the device. Returns what happened so the caller records it. Each reached device is marked
 * done at once, not with the record's final write: a re-run of the job (a worker or Redis node lost
 * mid-send) then skips it. Deferring the mark to the final write measurably raised same-Topic resends in
 * the cluster master-kill test. `finalWriteMarks`: the caller's final write marks every reached device and
 * follows at once when nothing is left to retry, so the last device's mark rides on it (one Redis command
 * less per alert; the common alert has one device).
 */
export async function sendToDevices(
  deps: Pick<PushDeliverDeps, 'sender' | 'subscribers' | 'ledger' | 'log'>,
  subscriberId: string,
  ledgerStoryId: string,
  devices: PushSubscriptionRecord[],
  render: (maxBytes: number) => string,
  opts: PushSendOptions,
  finalWriteMarks = false,
): Promise<{ reached: number; reachedIds: string[]; problems: string[]; retry: boolean; retryAfterMs: number | null; handedBack: boolean }> {
  const reachedIds: string[] = [];
  let retry = false;
  // Every retry a send handed back unsent (this dispatcher shutting down): no device was tried and found wanting.
  let handedBack = true;
  let retryAfterMs: number | null = null;
  const problems: string[] = [];
  const payload = render(MAX_PAYLOAD_BYTES);
  for (const [k, device] of devices.entries()) {
    let outcome = await deps.sender.send(device, payload, opts);
    if (outcome.kind === 'too-large') {
      outcome = await deps.sender.send(device, render(Math.floor(MAX_PAYLOAD_BYTES / 2)), opts);
      if (outcome.kind === 'too-large') outcome = { kind: 'permanent', status: 413, reason: 'push service refused the payload as too large, even trimmed to half' };
    }
    if (outcome.kind === 'sent') {
      reachedIds.push(device.id);
      if (!(finalWriteMarks && k === devices.length - 1 && !retry)) await deps.ledger.markDeviceDone(subscriberId, ledgerStoryId, device.id);
    } else if (outcome.kind === 'gone') {
      await deps.subscribers.removePushSubscription(subscriberId, device.id);
      deps.log.info({ subscriber_id: subscriberId, device_id: device.id, status: outcome.status }, 'push subscription gone, removed');
    } else if (outcome.kind === 'retry') {
      retry = true;
      if (!outcome.unsent) handedBack = false;
      if (outcome.retryAfterMs !== null) retryAfterMs = Math.max(retryAfterMs ?? 0, outcome.retryAfterMs);
      problems.push(`${device.id}: ${outcome.reason}`);
    } else {
      problems.push(`${device.id}: ${outcome.reason}`);
    }
  }
  return { reached: reachedIds.length, reachedIds, problems, retry, retryAfterMs, handedBack: retry && handedBack };
}

/** What became of one alert: it ended (sent, skipped, held), failed for good, or waits for another attempt. */
export type AlertResult =
  | { kind: 'ended'; summary: string }
  | { kind: 'failed'; reason: string }
  /** `notAttempted`: every send was handed back unsent at shutdown; the job's attempt does not count (NotAttempted). */
  | { kind: 'retry'; reason: string; retryAfterMs: number | null; notAttempted?: true };

/** Renders a story's push payload (renderPushPayload, or a memo of it shared by a batch's alerts). */
export type PayloadRenderer = (story: Story, topicName: string, why: string, maxBytes: number) => string;

/**
 * renderPushPayload remembered per story record, topic, why-line and size: a batch is one story, and its
 * alerts mostly share the topic and why-line, so each distinct payload is rendered once, not once per alert.
 */
export function memoRenderer(render: PayloadRenderer = renderPushPayload): PayloadRenderer {
  const byStory = new WeakMap<Story, Map<string, string>>();
  return (story, topicName, why, maxBytes) => {
    let memo = byStory.get(story);
    if (!memo) byStory.set(story, (memo = new Map()));
    const key = `${topicName}\u0000${why}\u0000${maxBytes}`;
    let payload = memo.get(key);
    if (payload === undefined) memo.set(key, (payload = render(story, topicName, why, maxBytes)));
    return payload;
  };
}

/**
 * Delivers one alert to every push device of the subscriber, once. The ledger claim makes a re-run a no-op
 * once the record has ended; devices already reached are skipped when a retry follows a partial failure.
 * Every outcome is in the ledger before this returns; the caller decides how a job reports it.
 */
export async function deliverPushAlert(
  deps: PushDeliverDeps,
  data: JobCatalog['AlertSendPush'],
  jobId: string,
  render: PayloadRenderer = renderPushPayload,
): Promise<AlertResult> {
  const { subscriberId, storyId, topicId } = data;
  // The subscriber's profile, devices and follows are read by the claim's own script: one command per alert.
  // The claim marks the reader as being pushed to (when no push went out within the burst window), so that matches
  // claimed beside it are held for the burst rather than each sent alone (see CLAIM_READ).
  const claim = await deps.ledger.claimPush(subscriberId, storyId, jobId, topicId, deps.clock.now(), deps.jobLockMs, deps.subscribers.forSendKeys(subscriberId), deps.burstWindowMs);
  if (!claim.claimed) return { kind: 'ended', summary: `already ${claim.status}` };
  try {
    // Renewed while the attempt runs: another job of the alert (the reader in two batches of a classification run
    // again, a batch's retry beside the alert's own) takes over a claim older than the job lock.
    const renew = () => deps.ledger.renewClaim(subscriberId, storyId, 'push', { jobId, attempt: claim.record.attempts }, deps.clock.now());
    return await whileRenewing(deps.jobLockMs / 2, renew, () => deliverClaimed(deps, data, jobId, render, claim));
  } catch (err) {
    // An error after the claim (a stored record that does not parse, a connection lost half-way) fails this
    // attempt like a 5xx would: the record goes back to queued under this claim and the caller retries it (the
    // job, or for a batch a single job of its own), instead of the record staying in "sending" under a batch
    // that went on. Where it broke off is unknown (the push may have reached the device before a ledger write
    // failed), so it counts as a reclaim. A refused requeue (the record ended or was taken over) leaves the
    // error to the job.
    const reason = (err as Error).message;
    if (!(await deps.ledger.requeue(subscriberId, storyId, 'push', { jobId, attempt: claim.record.attempts }, reason, deps.clock.now(), true))) throw err;
    return { kind: 'retry', reason, retryAfterMs: null };
  }
}

/** deliverPushAlert once the claim is held. */
async function deliverClaimed(
  deps: PushDeliverDeps,
  data: JobCatalog['AlertSendPush'],
  jobId: string,
  render: PayloadRenderer,
  claim: Extract<Awaited<ReturnType<PushDeliverDeps['ledger']['claimPush']>>, { claimed: true }>,
): Promise<AlertResult> {
  const { subscriberId, storyId, topicId } = data;
  const { record, lastPushAt } = claim;
  const { who, devices, follows } = deps.subscribers.forSendOf(claim.reads);
  const story = await deps.stories.get(storyId);
  // An alert that ends here without a push gives up the claim's "pushing" mark: the reader's next match is not a
  // burst of a push that never went. Only off the common path (a sent push is overtaken by its last push time).
  const noPush = () => (deps.burstWindowMs > 0 ? deps.ledger.dropPushing(subscriberId, storyId) : undefined);
  const fail = async (reason: string): Promise<AlertResult> => {
    await deps.ledger.finish(subscriberId, storyId, 'push', 'failed', deps.clock.now(), { error: reason });
    await noPush();
    return { kind: 'failed', reason };
  };
  if (!who) return fail('subscriber no longer exists');
  if (!story) return fail(`story ${storyId} no longer exists`);

  const now = deps.clock.now();
  const { zone } = effectiveZone(who.subscriber.timeZone);
  const breaking = isBreaking(story, now);
  // The reader's rules (unfollowed or muted, quiet hours, bursts) hold for every attempt, not only the first: a
  // retry can come an hour later. Once a device has the alert, a retry only finishes the delivery to the others:
  // holding or skipping it then would notify the reader twice, or record as skipped an alert they got.
  const decision = record.devicesDone.length === 0
    ? decidePush({
        now, zone, prefs: who.prefs, breaking,
        following: followWants(follows[topicId], 'push', now),
        devices: devices.length,
        hasDigest: who.subscriber.email !== null && who.emailHealth.disabledAt === null,
        lastPushAt,
        burstWindowMs: deps.burstWindowMs,
      })
    : ({ kind: 'send' } as const);

  if (decision.kind === 'skip') {
    await deps.ledger.finish(subscriberId, storyId, 'push', 'skipped', now, { reason: decision.reason });
    await noPush();
    return { kind: 'ended', summary: `skipped: ${decision.reason}` };
  }
  if (decision.kind === 'hold') {
    const summary = await hold(deps, data, decision.bucket, decision.reason, decision.releaseAt, now);
    await noPush();
    return { kind: 'ended', summary };
  }

  // The cap counts individual pushes on the reader's local date; a retry does not take a second slot (the slot is
  // marked on the record), and one whose earlier attempt broke off before the cap takes its slot now. Never once a
  // device has the alert: refused then, it would be recorded as skipped though the reader got it.
  if (record.devicesDone.length === 0 && who.prefs.dailyPushCap !== null && !breaking) {
    const ok = await deps.ledger.reservePush(subscriberId, storyId, localDate(now, zone), who.prefs.dailyPushCap);
    if (!ok) {
      await noPush();
      if (who.subscriber.email !== null && who.emailHealth.disabledAt === null) return { kind: 'ended', summary: await hold(deps, data, 'digest', 'cap', null, now) };
      await deps.ledger.finish(subscriberId, storyId, 'push', 'skipped', now, { reason: 'cap' });
      return { kind: 'ended', summary: 'skipped: cap' };
    }
  }

  const pending = devices.filter((d) => !record.devicesDone.includes(d.id));
  const topic = deps.topicName(topicId);
  const res = await sendToDevices(deps, subscriberId, storyId, pending, (max) => render(story, topic, data.why, max), {
    ttlSeconds: pushTtlSeconds(story, now, breaking),
    urgency: pushUrgency(breaking),
    topic: pushTopic(storyId),
  }, /* finalWriteMarks: finishPushSent below marks every reached device */ true);
  const done = record.devicesDone.length + res.reached;
  const after = deps.clock.now();
  if (res.retry) {
    // Refused when another attempt took the record over meanwhile: that one owns what happens next.
    if (!(await deps.ledger.requeue(subscriberId, storyId, 'push', { jobId, attempt: record.attempts }, res.problems.join('; '), after))) {
      return { kind: 'ended', summary: 'taken over by another attempt' };
    }
    return { kind: 'retry', reason: res.problems.join('; '), retryAfterMs: res.retryAfterMs, ...(res.handedBack ? { notAttempted: true as const } : {}) };
  }
  if (done === 0) return fail(res.problems.length > 0 ? res.problems.join('; ') : 'every push subscription was gone');
  await deps.ledger.finishPushSent(subscriberId, storyId, after, {
    devices: res.reachedIds,
    error: res.problems.join('; ') || undefined,
    inbox: { storyId, title: story.title, url: story.url, topicId, why: data.why, channel: 'push', at: after, read: false },
  });
  // Fields inline rather than a child logger per job: at fan-out volume the child's allocations show in GC.
  if (deps.log.isLevelEnabled('info')) deps.log.info({ subscriber_id: subscriberId, story_id: storyId, job_id: jobId, devices: done, breaking }, 'push alert sent');
  return { kind: 'ended', summary: 'sent' };
}

/**
 * A job of one alert: a transient failure retries the job itself (RetryLater, BullMQ's backoff honouring
 * Retry-After), a permanent one fails it with the reason.
 */
export async function sendPushAlert(deps: PushDeliverDeps, data: JobCatalog['AlertSendPush'], jobId: string): Promise<string> {
  const r = await deliverPushAlert(deps, data, jobId);
  // Handed back at shutdown: the job runs again once the service's pause is over, without this attempt counting.
  if (r.kind === 'retry') throw retryError(r.reason, { retryAfterMs: r.retryAfterMs, handedBack: r.notAttempted === true });
  if (r.kind === 'failed') throw new UnrecoverableError(r.reason);
  return r.summary;
}

/** First delay of an alert that leaves its batch to be retried alone (then BullMQ's delivery backoff). */
export const BATCH_RETRY_BASE_MS = 5000;

/** A bundle's id: its release time, then `-<n>` for the n-th bundle queued for that time after the earlier ones ran. */
export const bundleIdOf = (releaseAt: number, n: number) => (n === 0 ? String(releaseAt) : `${releaseAt}-${n}`);

/** The release time a bundle id names (NaN for an id of another form). */
export const releaseOfBundle = (bundleId: string) => Number(bundleId.split('-')[0]);

/**
 * Queues the reader's bundle due at `releaseAt`: the job for that time that has not started yet, so every alert held
 * for the same window lands in one job, whoever queues it (a hold, a bundle moving itself, the settings), and holds
 * side by side make one bundle. Once that job has started (running, done or failed: BullMQ keeps them for days and
 * ignores an add under a kept id), the next id for the time: a bundle that has read the held alerts sends none held
 * after. Named by the time alone, a bundle moving itself to its own release time (run early by its dispatcher's
 * clock), or pushes held again for a time whose bundle had been brought forward and sent (quiet hours off, then on
 * with the same end), had no job, and waited for some later bundle.
 */
export async function queueBundle(deps: Pick<PushDeliverDeps, 'enqueue' | 'jobState'>, subscriberId: string, releaseAt: number, now: number): Promise<QuietBundle> {
  // One lookup per bundle already run for this time: none or one, unless the reader keeps toggling or clocks disagree.
  const [n] = await addUnlessStarted(deps, 'PushBundleSend', [{
    at: (n) => ({ data: { subscriberId, bundleId: bundleIdOf(releaseAt, n) }, jobId: jobIds.bundle(subscriberId, bundleIdOf(releaseAt, n)) }),
    opts: { delay: Math.max(0, releaseAt - now) },
  }]);
  return { bundleId: bundleIdOf(releaseAt, n!), releaseAt };
}

/**
 * Hands alerts to jobs of their own (AlertSendPush, each after its `delay`): the alert's id, or when BullMQ keeps that
 * job as started, the next free one (`addUnlessStarted`). A single job can have ended without the alert: it ran while
 * a batch held the alert's claim ("already sending", or its requeue refused), and is kept for days. Under the alert's
 * one id, that batch sending the alert off for a retry, or giving up on it, added nothing, and the record waited as
 * queued with no job.
 */
export async function queueAlone(deps: Pick<PushDeliverDeps, 'enqueue' | 'jobState'>, alerts: readonly { data: JobCatalog['AlertSendPush']; delay?: number }[]): Promise<void> {
  await addUnlessStarted(deps, 'AlertSendPush', alerts.map(({ data, delay }) => ({
    at: (n: number) => ({ data, jobId: jobIds.pushAlone(data.subscriberId, data.storyId, n) }),
    opts: delay === undefined ? {} : { delay },
  })));
}

/**
 * A batch of one story's alerts, delivered side by side: their ledger claims, reads and final writes are
 * issued in the same ticks, so auto-pipelining sends each step of the whole batch as one Redis write, and
 * the batch costs one job's queue overhead instead of one per alert. Each alert still has its own ledger
 * record and outcome; one that must be retried leaves as an AlertSendPush job of its own (`queueAlone`), delayed
 * by Retry-After or the backoff, so a slow device never holds the rest.
 */
export async function sendPushBatch(
  deps: PushDeliverDeps,
  data: JobCatalog['AlertSendPushBatch'],
  jobId: string,
  random: () => number = Math.random,
): Promise<{ sent: number; ended: number; failed: number; retried: number }> {
  const alerts = data.alerts.map((a) => ({ ...a, storyId: data.storyId }));
  const render = memoRenderer();
  // Settled, not Promise.all: one alert's error (Redis lost mid-way) must not drop the retry jobs of the others,
  // which were requeued in the ledger and wait for them.
  const settled = await Promise.allSettled(alerts.map((a) => deliverPushAlert(deps, a, jobId, render)));
  const results = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const retries = alerts.flatMap((a, i) => {
    const r = settled[i]!;
    if (r.status !== 'fulfilled' || r.value.kind !== 'retry') return [];
    const delay = deliveryBackoffMs(1, BATCH_RETRY_BASE_MS, new RetryLater(r.value.reason, r.value.retryAfterMs), random);
    return [{ data: a, delay }];
  });
  await queueAlone(deps, retries);
  // The alerts that threw are left to the batch's own retry: its claims are this job's, taken over at once, and
  // the alerts that ended are no-ops for it.
  const thrown = settled.find((r) => r.status === 'rejected');
  if (thrown) throw thrown.reason;
  const count = (pred: (r: AlertResult) => boolean) => results.filter(pred).length;
  return {
    sent: count((r) => r.kind === 'ended' && r.summary === 'sent'),
    ended: count((r) => r.kind === 'ended'),
    failed: count((r) => r.kind === 'failed'),
    retried: retries.length,
  };
}

async function hold(
  deps: PushDeliverDeps,
  data: JobCatalog['AlertSendPush'],
  bucket: HeldBucket,
  reason: string,
  releaseAt: number | null,
  now: number,
): Promise<string> {
  // Enqueued before the hold: the job is in another Redis slot than the record, and when its add failed after the
  // hold, the retry found the alert held and ended there, held with no bundle to release it. Failing first, the
  // record is still this attempt's claim and the retry holds it again.
  const bundle = bucket === 'bundle' && releaseAt !== null ? await queueBundle(deps, data.subscriberId, releaseAt, now) : null;
  // A quiet-hours bundle is noted with the hold, so that shorter quiet hours can bring it forward (rescheduleBundles).
  await deps.ledger.hold(data.subscriberId, data.storyId, data.topicId, bucket, reason, now, bundle && reason === 'quiet-hours' ? bundle : undefined);
  return `held for ${bucket}: ${reason}`;
}
