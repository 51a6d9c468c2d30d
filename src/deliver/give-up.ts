import type { Channel, Clock } from '../model.ts';
import type { JobCatalog } from '../queue/jobs.ts';
import type { Enqueue, JobStateOf } from '../queue/queues.ts';
import type { Ledger } from '../store/ledger.ts';
import { queueAlone } from './push/send-alert.ts';

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

/**
 * BullMQ gave up on a push batch (an error escaped it on every attempt). Its alerts that still wait for it are
 * not failed with it: each goes on as its own AlertSendPush, with its own attempts and its own give-up, as an
 * alert a batch sends back for a retry does. A record the batch left claimed ("sending" under its id) is put back
 * first, counted as a reclaim (the attempt broke off where it may have reached the device); a record another job
 * holds, or that ended, is left alone. An alert whose single job waits already is left to it (`queueAlone`).
 */
export async function giveUpBatch(
  deps: { ledger: Ledger; enqueue: Enqueue; jobState: JobStateOf; clock: Clock },
  data: JobCatalog['AlertSendPushBatch'],
  batchJobId: string,
  reason: string,
): Promise<number> {
  const { storyId } = data;
  const waiting = await Promise.all(
    data.alerts.map(async (a) => {
      const rec = await deps.ledger.get(a.subscriberId, storyId, 'push');
      if (rec?.status === 'queued') return true;
      if (rec?.status !== 'sending' || rec.jobId !== batchJobId) return false;
      return deps.ledger.requeue(a.subscriberId, storyId, 'push', { jobId: batchJobId, attempt: rec.attempts }, reason, deps.clock.now(), true);
    }),
  );
  const alone = data.alerts.filter((_, i) => waiting[i]);
  await queueAlone(deps, alone.map((a) => ({ data: { ...a, storyId } })));
  return alone.length;
}
