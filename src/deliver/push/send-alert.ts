import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Clock } from '../../model.ts';
import type { JobCatalog } from '../../queue/jobs.ts';
import type { Ledger } from '../../store/ledger.ts';
import type { StoryStore } from '../../store/stories.ts';
import type { SubscriberStore } from '../../store/subscribers.ts';
import { renderPushPayload } from './payload.ts';
import type { PushSender } from './web-push-sender.ts';

export interface PushDeliverDeps {
  subscribers: SubscriberStore;
  stories: StoryStore;
  ledger: Ledger;
  sender: PushSender;
  topicName: (topicId: string) => string;
  clock: Clock;
  log: Logger;
}

/** Without an explicit TTL web-push asks push services to keep a message four weeks: news is stale long before. */
export const DEFAULT_PUSH_TTL_SECONDS = 4 * 60 * 60;

export class RetryLater extends Error {
  override name = 'RetryLater';
}

/**
 * Sends one alert to every push device of the subscriber, once. The ledger claim makes a re-run of the
 * job a no-op once it has ended, and devices already reached are skipped when a retry follows a partial failure.
 */
export async function sendPushAlert(deps: PushDeliverDeps, data: JobCatalog['AlertSendPush'], jobId: string): Promise<string> {
  const { subscriberId, storyId, topicId } = data;
  const log = deps.log.child({ subscriber_id: subscriberId, story_id: storyId, job_id: jobId, channel: 'push' });
  const claim = await deps.ledger.claim(subscriberId, storyId, 'push', jobId, topicId, deps.clock.now());
  if (!claim.claimed) return `already ${claim.status}`;

  const [story, devices, record] = await Promise.all([
    deps.stories.get(storyId),
    deps.subscribers.pushSubscriptions(subscriberId),
    deps.ledger.get(subscriberId, storyId, 'push'),
  ]);
  if (!story) {
    await deps.ledger.finish(subscriberId, storyId, 'push', 'failed', deps.clock.now(), 'story no longer exists');
    throw new UnrecoverableError(`story ${storyId} no longer exists`);
  }
  const pending = devices.filter((d) => !record?.devicesDone.includes(d.id));
  if (devices.length === 0) {
    await deps.ledger.finish(subscriberId, storyId, 'push', 'skipped', deps.clock.now(), 'no push subscription');
    return 'skipped: no push subscription';
  }

  const payload = renderPushPayload(story, deps.topicName(topicId), data.why);
  const problems: string[] = [];
  let retry = false;
  for (const device of pending) {
    // The Topic header lets the push service replace an undelivered earlier version of the same story.
    const outcome = await deps.sender.send(device, payload, { ttlSeconds: DEFAULT_PUSH_TTL_SECONDS, urgency: 'normal', topic: storyId });
    if (outcome.kind === 'sent') {
      await deps.ledger.markDeviceDone(subscriberId, storyId, device.id);
    } else if (outcome.kind === 'gone') {
      await deps.subscribers.removePushSubscription(subscriberId, device.id);
      log.info({ device_id: device.id, status: outcome.status }, 'push subscription gone, removed');
    } else {
      problems.push(`${device.id}: ${outcome.reason}`);
      if (outcome.kind === 'retry') retry = true;
    }
  }
  const now = deps.clock.now();
  if (retry) {
    await deps.ledger.noteError(subscriberId, storyId, 'push', problems.join('; '), now);
    throw new RetryLater(problems.join('; '));
  }
  const after = await deps.ledger.get(subscriberId, storyId, 'push');
  if ((after?.devicesDone.length ?? 0) === 0) {
    const reason = problems.length > 0 ? problems.join('; ') : 'every push subscription was gone';
    await deps.ledger.finish(subscriberId, storyId, 'push', 'failed', now, reason);
    throw new UnrecoverableError(reason);
  }
  await deps.ledger.finish(subscriberId, storyId, 'push', 'sent', now, problems.join('; ') || undefined);
  await deps.ledger.addToInbox(subscriberId, {
    storyId, title: story.title, url: story.url, topicId, why: data.why, channel: 'push', at: now, read: false,
  });
  log.info({ devices: after?.devicesDone.length }, 'push alert sent');
  return 'sent';
}
