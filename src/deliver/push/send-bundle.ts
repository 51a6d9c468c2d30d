import { randomUUID } from 'node:crypto';
import type { JobCatalog } from '../../queue/jobs.ts';
import { jobIds } from '../../queue/jobs.ts';
import type { Redelay } from '../../queue/queues.ts';
import { effectiveZone } from '../../digest/schedule.ts';
import { quietHoursAt } from '../quiet-hours.ts';
import { whileRenewing } from '../../queue/renewing.ts';
import { RetryLater, retryError } from '../retry.ts';
import { renderBundlePayload } from './payload.ts';
import { pushTopic } from './policy.ts';
import { queueBundle, releaseOfBundle, sendToDevices, type PushDeliverDeps } from './send-alert.ts';
import type { Story } from '../../model.ts';
import { FINAL_STATUSES, type HeldAlert } from '../../store/ledger.ts';

export const bundleLedgerId = (bundleId: string) => `bundle-${bundleId}`;
/** What the alerts a bundle carried have as `via`. */
export const bundleVia = (bundleId: string) => `bundle:${bundleId}`;
/** The `via` of the alerts carried by the bundle whose ledger id (the id its notification names) this is, or null. */
export const viaOfBundleLedgerId = (ledgerId: string): string | null => (ledgerId.startsWith('bundle-') ? bundleVia(ledgerId.slice('bundle-'.length)) : null);

/**
 * Sends the pushes held by quiet hours or a burst as one notification ("5 new stories in Japan, India").
 * The bundle has its own ledger record, claimed like any alert, so it goes out once; the held alerts'
 * records end as sent "via bundle" only after a device confirmed it.
 */
export async function sendPushBundle(deps: PushDeliverDeps & { inboxUrl: string }, data: JobCatalog['PushBundleSend'], jobId: string): Promise<string> {
  return withBundleLease(deps, data, () => sendLeasedBundle(deps, data, jobId));
}

/**
 * Runs `fn` under the reader's bundle lease: one bundle of a reader at a time, from before it reads what is held
 * until it has released it. Two bundles due together (release times passed during an outage, a reader who changed
 * their quiet hours) read the same held alerts and both pushed them. Busy, it throws RetryLater: the other bundle
 * waits, then finds nothing held.
 */
async function withBundleLease<T>(deps: PushDeliverDeps, data: JobCatalog['PushBundleSend'], fn: () => Promise<T>): Promise<T> {
  const ledgerId = bundleLedgerId(data.bundleId);
  const take = () => deps.ledger.takeBundleLease(data.subscriberId, ledgerId, deps.jobLockMs);
  const busyMs = await take();
  if (busyMs > 0) throw new RetryLater('another bundle of this reader is being sent', busyMs);
  try {
    // Taken again (its owner's) while the bundle runs: a send can outlast one lease, and the next bundle then pushed
    // the same held alerts.
    return await whileRenewing(deps.jobLockMs / 2, take, fn);
  } finally {
    await deps.ledger.dropBundleLease(data.subscriberId, ledgerId);
  }
}

/** sendPushBundle once the reader's bundle lease is held. */
async function sendLeasedBundle(deps: PushDeliverDeps & { inboxUrl: string }, data: JobCatalog['PushBundleSend'], jobId: string): Promise<string> {
  const { subscriberId, bundleId } = data;
  const now = deps.clock.now();
  const who = await deps.subscribers.forDelivery(subscriberId);
  if (!who) return 'skipped: subscriber gone';
  const quiet = quietHoursAt(now, effectiveZone(who.subscriber.timeZone).zone, who.prefs.quietHours);
  const ledgerId = bundleLedgerId(bundleId);
  const held = await deps.ledger.held(subscriberId, 'bundle');
  if (held.length === 0) {
    // This job's earlier attempt may have released them all and died before ending the bundle's own record.
    const earlier = await deps.ledger.get(subscriberId, ledgerId, 'push');
    if (earlier?.status === 'sending' && earlier.jobId === jobId) {
      await deps.ledger.finish(subscriberId, ledgerId, 'push', earlier.devicesDone.length > 0 ? 'sent' : 'failed', now);
    }
    return 'nothing held';
  }
  if (quiet.active) {
    // The reader moved or widened their quiet hours since: wait for the new end.
    await deps.ledger.noteQuietBundles(subscriberId, [await queueBundle(deps, subscriberId, quiet.endsAt, now)], now);
    return 'still quiet: moved to the end of the quiet hours';
  }
  // No topic on the bundle's own record: the topic counters count the held alerts it carries, once each.
  const claim = await deps.ledger.claim(subscriberId, ledgerId, 'push', jobId, '', now, deps.jobLockMs);
  if (!claim.claimed) return `already ${claim.status}`;

  const [stories, devices, record] = await Promise.all([
    deps.stories.getMany(held.map((h) => h.storyId)),
    deps.subscribers.pushSubscriptions(subscriberId),
    deps.ledger.get(subscriberId, ledgerId, 'push'),
  ]);
  const items = await withStories(deps, subscriberId, held, stories, now);
  if (items.length === 0 || devices.length === 0) {
    const reason = items.length === 0 ? 'held stories no longer exist' : 'no-device';
    await deps.ledger.release(subscriberId, 'bundle', items.map((i) => i.held), { status: 'skipped', via: bundleVia(bundleId), reason }, now);
    await deps.ledger.finish(subscriberId, ledgerId, 'push', 'skipped', now, { reason });
    return `skipped: ${reason}`;
  }
  const pending = devices.filter((d) => !record?.devicesDone.includes(d.id));
  const res = await sendToDevices(deps, subscriberId, ledgerId, pending, (max) => renderBundlePayload(items, ledgerId, deps.inboxUrl, max), {
    // A bundle is released when the reader is awake again: worth a few hours, never urgent.
    ttlSeconds: 4 * 60 * 60,
    urgency: 'normal',
    topic: pushTopic(ledgerId),
  });
  const after = deps.clock.now();
  const done = (record?.devicesDone.length ?? 0) + res.reached;
  if (res.retry) {
    // Refused when another attempt took the bundle over meanwhile: that one sends and releases it.
    if (!(await deps.ledger.requeue(subscriberId, ledgerId, 'push', { jobId, attempt: claim.attempt }, res.problems.join('; '), after))) return 'taken over by another attempt';
    // Handed back unsent at shutdown (waiting out a service's pause): the job runs again once the pause is over,
    // without this attempt counting, as a single alert's does (sendPushAlert).
    throw retryError(res.problems.join('; '), { retryAfterMs: res.retryAfterMs, handedBack: res.handedBack });
  }
  const outcome = done > 0 ? 'sent' : 'failed';
  // Every device answered 404/410 (removed, no problem noted): the held alerts fail with that reason, as a single
  // alert does, rather than with none.
  const error = res.problems.join('; ') || (done === 0 ? 'every push subscription was gone' : undefined);
  await endBundle(deps, subscriberId, bundleId, items, outcome, after, error);
  deps.log.info({ subscriber_id: subscriberId, bundle_id: bundleId, stories: items.length, devices: done }, `push bundle ${outcome}`);
  return outcome;
}

/**
 * After the reader saved their settings: pushes held by quiet hours go out when the quiet hours now end, or at once
 * when they are over or off, not at the end they had when held. Each quiet-hours bundle due later is brought forward.
 * Quiet hours that end later need nothing: a bundle that finds the reader still quiet moves itself. Returns when the
 * held pushes now go, or null when nothing was moved.
 */
export async function rescheduleBundles(deps: Pick<PushDeliverDeps, 'ledger' | 'subscribers' | 'enqueue' | 'jobState' | 'clock'> & { redelay: Redelay }, subscriberId: string): Promise<number | null> {
  if (!(await deps.ledger.hasHeld(subscriberId, 'bundle'))) return null;
  const who = await deps.subscribers.forDelivery(subscriberId);
  if (!who) return null;
  const now = deps.clock.now();
  const quiet = quietHoursAt(now, effectiveZone(who.subscriber.timeZone).zone, who.prefs.quietHours);
  const releaseAt = quiet.active ? quiet.endsAt : now;
  const bundleAt = () => queueBundle(deps, subscriberId, releaseAt, now);
  // Under the reader's bundle lease, which a bundle holds from before it reads their hours until it has moved or
  // sent: one running now may have read the old hours and be moving itself to their end, unseen here. Then a bundle
  // of its own at the new time, which runs after that one (the lease) and finds the held pushes, or nothing.
  const owner = `settings-${randomUUID()}`;
  if ((await deps.ledger.takeBundleLease(subscriberId, owner, RESCHEDULE_LEASE_MS)) > 0) {
    await deps.ledger.noteQuietBundles(subscriberId, [await bundleAt()], now);
    return releaseAt;
  }
  try {
    const later = await deps.ledger.quietBundlesAfter(subscriberId, releaseAt);
    if (later.length === 0) return null;
    // changeDelay moves a job only while it is still delayed, in one script: never a bundle being sent.
    const moved = await Promise.all(later.map((b) => deps.redelay('PushBundleSend', { subscriberId, bundleId: b.bundleId }, jobIds.bundle(subscriberId, b.bundleId), releaseAt - now)));
    const notes = later.filter((_, i) => moved[i]).map((b) => ({ bundleId: b.bundleId, releaseAt }));
    // Not delayed (due already, or gone): one at the new time, as above.
    if (moved.some((m) => !m)) notes.push(await bundleAt());
    await deps.ledger.noteQuietBundles(subscriberId, notes, now);
    return releaseAt;
  } finally {
    await deps.ledger.dropBundleLease(subscriberId, owner);
  }
}

/** How long the settings may hold the reader's bundle lease while they move bundles (a few Redis commands). */
const RESCHEDULE_LEASE_MS = 5_000;

type BundleItem = { story: Story; topicName: string; held: HeldAlert };

/**
 * The held alerts whose story is still there, as bundle items. One whose story expired or was deleted can go into
 * no bundle: it ends here as skipped ('story-gone'), or every later bundle would read it again and it would stay
 * held for ever.
 */
async function withStories(deps: PushDeliverDeps, subscriberId: string, held: HeldAlert[], stories: Story[], now: number): Promise<BundleItem[]> {
  const byId = new Map(stories.map((s) => [s.id, s]));
  const gone = held.filter((h) => !byId.has(h.storyId));
  if (gone.length > 0) await deps.ledger.release(subscriberId, 'bundle', gone, { status: 'skipped', via: '', reason: 'story-gone' }, now);
  return held.filter((h) => byId.has(h.storyId)).map((h) => ({ story: byId.get(h.storyId)!, topicName: deps.topicName(h.topicId), held: h }));
}

/**
 * Ends a bundle that went out (or failed for good): its held alerts end with its outcome, each with its inbox entry
 * when sent, before the bundle's own record does. If the attempt dies in between, the bundle is still this job's
 * claim, and the retry (no device left to reach) releases whatever is still held; ended first, the bundle
 * answered the retry "already sent" and the rest stayed held for ever.
 */
async function endBundle(deps: PushDeliverDeps, subscriberId: string, bundleId: string, items: BundleItem[], outcome: 'sent' | 'failed', at: number, error?: string) {
  const released = items.map((i) => ({
    ...i.held,
    ...(outcome === 'sent' ? { inbox: { storyId: i.story.id, title: i.story.title, url: i.story.url, topicId: i.held.topicId, why: 'bundled', channel: 'push' as const, at, read: false } } : {}),
  }));
  await deps.ledger.release(subscriberId, 'bundle', released, { status: outcome, via: bundleVia(bundleId), ...(outcome === 'failed' && error ? { error } : {}) }, at);
  if (outcome === 'sent') await deps.ledger.notePush(subscriberId, at);
  await deps.ledger.finish(subscriberId, bundleLedgerId(bundleId), 'push', outcome, at, { error });
}

/**
 * BullMQ gave up on a bundle (its last attempt failed too): it ends as sent if a device got it, else as failed
 * with `reason`, and the held alerts it was for (held by its release time, which the bundle id names; later ones
 * wait for their own bundle) end with it, so none waits for a bundle that will not come. Nothing to do when the
 * bundle's record has already ended.
 */
export async function giveUpBundle(deps: PushDeliverDeps, data: JobCatalog['PushBundleSend'], reason: string): Promise<void> {
  // Under the reader's bundle lease too: run beside another bundle that was sending the same held alerts, this
  // step failed them while the reader got them. Busy, the step throws and the give-up sweep runs it again later.
  await withBundleLease(deps, data, () => giveUpLeasedBundle(deps, data, reason));
}

async function giveUpLeasedBundle(deps: PushDeliverDeps, data: JobCatalog['PushBundleSend'], reason: string): Promise<void> {
  const { subscriberId, bundleId } = data;
  const now = deps.clock.now();
  const record = await deps.ledger.get(subscriberId, bundleLedgerId(bundleId), 'push');
  if (record && FINAL_STATUSES.includes(record.status)) return;
  // Parsed, not Number(): of a `<release>-<n>` id that is NaN, which would end every held alert, later ones too.
  const releaseAt = releaseOfBundle(bundleId);
  const held = (await deps.ledger.held(subscriberId, 'bundle')).filter((h) => !Number.isFinite(releaseAt) || h.at <= releaseAt);
  const items = await withStories(deps, subscriberId, held, await deps.stories.getMany(held.map((h) => h.storyId)), now);
  await endBundle(deps, subscriberId, bundleId, items, (record?.devicesDone.length ?? 0) > 0 ? 'sent' : 'failed', now, reason);
}
