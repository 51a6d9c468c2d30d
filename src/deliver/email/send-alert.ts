import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Clock } from '../../model.ts';
import type { JobCatalog } from '../../queue/jobs.ts';
import type { Ledger } from '../../store/ledger.ts';
import type { StoryStore } from '../../store/stories.ts';
import type { SubscriberStore } from '../../store/subscribers.ts';
import { followWants } from '../follow-wants.ts';
import { RetryLater, retryError } from '../retry.ts';
import { handedBackAtShutdown, type Mailer, type MailOutcome } from './mailer.ts';
import { renderAlertEmail } from './render.ts';
import type { UnsubscribeLinks } from './signed-links.ts';

export interface EmailDeliverDeps {
  subscribers: SubscriberStore;
  stories: StoryStore;
  ledger: Ledger;
  mailer: Mailer;
  topicName: (topicId: string) => string;
  /** Stop links of an email to `address`: they act on that address only. */
  links: (subscriberId: string, topicId: string, address: string) => UnsubscribeLinks;
  messageIdDomain: string;
  clock: Clock;
  log: Logger;
  /** Hard bounces in a row that disable the address. */
  hardBounceLimit: number;
  /** HERALD_JOB_LOCK_SECONDS in ms: another job's claim younger than this is left alone (see `ledger.claim`). */
  jobLockMs: number;
}

export { RetryLater };

/**
 * Derived from the ledger key (subscriber, story, channel): every retry of one alert carries the same id,
 * so a receiving server or mail client can drop a duplicate a crash might cause.
 */
export const alertMessageId = (subscriberId: string, storyId: string, domain: string) => `<alert.${subscriberId}.${storyId}.email@${domain}>`;

/**
 * After a refused send: a hard bounce counts against the address, which is disabled at the limit so the
 * reader sees why on their settings page and Herald stops hammering a dead mailbox.
 */
export async function noteBounce(
  deps: Pick<EmailDeliverDeps, 'subscribers' | 'hardBounceLimit' | 'clock' | 'log'>,
  subscriberId: string,
  address: string,
  outcome: Extract<MailOutcome, { kind: 'permanent' }>,
) {
  if (!outcome.hardBounce) return;
  const r = await deps.subscribers.recordHardBounce(subscriberId, address, deps.hardBounceLimit, outcome.reason, deps.clock.now());
  if (r.disabled) deps.log.warn({ subscriber_id: subscriberId, bounces: r.bounces }, 'email address disabled after hard bounces');
}

export async function sendEmailAlert(deps: EmailDeliverDeps, data: JobCatalog['AlertSendEmail'], jobId: string): Promise<string> {
  const { subscriberId, storyId, topicId } = data;
  const log = deps.log.child({ subscriber_id: subscriberId, story_id: storyId, job_id: jobId, channel: 'email' });
  const claim = await deps.ledger.claim(subscriberId, storyId, 'email', jobId, topicId, deps.clock.now(), deps.jobLockMs);
  if (!claim.claimed) return `already ${claim.status}`;

  const [story, who, follows] = await Promise.all([deps.stories.get(storyId), deps.subscribers.forDelivery(subscriberId), deps.subscribers.follows(subscriberId)]);
  if (!story || !who) {
    const reason = !story ? 'story no longer exists' : 'subscriber no longer exists';
    await deps.ledger.finish(subscriberId, storyId, 'email', 'failed', deps.clock.now(), { error: reason });
    throw new UnrecoverableError(reason);
  }
  const skip = async (reason: 'muted' | 'no-email' | 'email-disabled') => {
    await deps.ledger.finish(subscriberId, storyId, 'email', 'skipped', deps.clock.now(), { reason });
    return `skipped: ${reason}`;
  };
  // Checked on every attempt: a retry can come after the reader unfollowed or muted the topic.
  if (!followWants(follows[topicId], 'email', deps.clock.now())) return skip('muted');
  const address = who.subscriber.email;
  if (!address) return skip('no-email');
  if (who.emailHealth.disabledAt !== null) return skip('email-disabled');

  const email = renderAlertEmail({ story, topicName: deps.topicName(topicId), why: data.why, links: deps.links(subscriberId, topicId, address) });
  const outcome = await deps.mailer.send({ ...email, to: address, messageId: alertMessageId(subscriberId, storyId, deps.messageIdDomain) });
  const now = deps.clock.now();
  if (outcome.kind === 'retry') {
    // Refused when another attempt took the record over meanwhile: that one owns what happens next.
    if (!(await deps.ledger.requeue(subscriberId, storyId, 'email', { jobId, attempt: claim.attempt }, outcome.reason, now, outcome.outcomeUnknown === true))) return 'taken over by another attempt';
    throw retryError(outcome.reason, { handedBack: handedBackAtShutdown(outcome) });
  }
  if (outcome.kind === 'permanent') {
    await deps.ledger.finish(subscriberId, storyId, 'email', 'failed', now, { error: outcome.reason });
    await noteBounce(deps, subscriberId, address, outcome);
    throw new UnrecoverableError(outcome.reason);
  }
  await deps.ledger.finish(subscriberId, storyId, 'email', 'sent', now);
  await deps.subscribers.recordEmailDelivered(subscriberId);
  await deps.ledger.addToInbox(subscriberId, { storyId, title: story.title, url: story.url, topicId, why: data.why, channel: 'email', at: now, read: false });
  log.info('email alert sent');
  return 'sent';
}
