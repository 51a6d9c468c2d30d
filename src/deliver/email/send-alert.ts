import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Clock } from '../../model.ts';
import type { JobCatalog } from '../../queue/jobs.ts';
import type { Ledger } from '../../store/ledger.ts';
import type { StoryStore } from '../../store/stories.ts';
import type { SubscriberStore } from '../../store/subscribers.ts';
import type { Mailer } from './mailer.ts';
import { renderAlertEmail, type UnsubscribeLinks } from './render.ts';

export interface EmailDeliverDeps {
  subscribers: SubscriberStore;
  stories: StoryStore;
  ledger: Ledger;
  mailer: Mailer;
  topicName: (topicId: string) => string;
  links: (subscriberId: string, topicId: string) => UnsubscribeLinks;
  messageIdDomain: string;
  clock: Clock;
  log: Logger;
}

export class RetryLater extends Error {
  override name = 'RetryLater';
}

/** Same id on every retry of one alert, so a receiving server or client can drop a duplicate too. */
export const alertMessageId = (subscriberId: string, storyId: string, domain: string) => `<alert.${subscriberId}.${storyId}.email@${domain}>`;

export async function sendEmailAlert(deps: EmailDeliverDeps, data: JobCatalog['AlertSendEmail'], jobId: string): Promise<string> {
  const { subscriberId, storyId, topicId } = data;
  const log = deps.log.child({ subscriber_id: subscriberId, story_id: storyId, job_id: jobId, channel: 'email' });
  const claim = await deps.ledger.claim(subscriberId, storyId, 'email', jobId, topicId, deps.clock.now());
  if (!claim.claimed) return `already ${claim.status}`;

  const [story, subscriber] = await Promise.all([deps.stories.get(storyId), deps.subscribers.get(subscriberId)]);
  if (!story || !subscriber) {
    const reason = !story ? 'story no longer exists' : 'subscriber no longer exists';
    await deps.ledger.finish(subscriberId, storyId, 'email', 'failed', deps.clock.now(), reason);
    throw new UnrecoverableError(reason);
  }
  if (!subscriber.email) {
    await deps.ledger.finish(subscriberId, storyId, 'email', 'skipped', deps.clock.now(), 'no email address');
    return 'skipped: no email address';
  }
  const email = renderAlertEmail({ story, topicName: deps.topicName(topicId), why: data.why, links: deps.links(subscriberId, topicId) });
  const outcome = await deps.mailer.send({ ...email, to: subscriber.email, messageId: alertMessageId(subscriberId, storyId, deps.messageIdDomain) });
  const now = deps.clock.now();
  if (outcome.kind === 'retry') {
    await deps.ledger.noteError(subscriberId, storyId, 'email', outcome.reason, now);
    throw new RetryLater(outcome.reason);
  }
  if (outcome.kind === 'permanent') {
    await deps.ledger.finish(subscriberId, storyId, 'email', 'failed', now, outcome.reason);
    throw new UnrecoverableError(outcome.reason);
  }
  await deps.ledger.finish(subscriberId, storyId, 'email', 'sent', now);
  await deps.ledger.addToInbox(subscriberId, { storyId, title: story.title, url: story.url, topicId, why: data.why, channel: 'email', at: now, read: false });
  log.info('email alert sent');
  return 'sent';
}
