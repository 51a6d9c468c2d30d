import type { Channel, Clock } from '../model.ts';
import type { Ledger } from '../store/ledger.ts';

/**
 * BullMQ gave up on an alert's job (AlertSendPush, AlertSendEmail): its ledger record, if it still waits for that
 * job, ends as failed with `reason`, so the counters and the API show it instead of "queued" for ever.
 */
export async function giveUpAlert(
  deps: { ledger: Ledger; clock: Clock },
  data: { subscriberId: string; storyId: string },
  channel: Channel,
  jobId: string,
  reason: string,
): Promise<void> {
  await deps.ledger.giveUp(data.subscriberId, data.storyId, channel, jobId, reason, deps.clock.now());
}
