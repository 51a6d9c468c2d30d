import { createHash } from 'node:crypto';
import { jobIds, type JobCatalog, type PushBatchAlert } from './jobs.ts';

/**
 * Instant push sending can be spread over several BullMQ queues. Each shard's name carries its own hash
 * tag ({push}, {push-1}, ...), so on a Redis Cluster the shards land in different slots and usually on
 * different masters, and their queue scripts run there in parallel.
 */
export const MAX_PUSH_SHARDS = 64;

/** Shard 0 keeps the historical name `push`: a deployment that never sharded keeps its queue. */
export const pushShardName = (shard: number) => (shard === 0 ? 'push' : `push-${shard}`);

/**
 * The shard of a subscriber's push jobs: a stable hash of the id, so all of one subscriber's alerts and
 * bundles go through one queue (FIFO among themselves) and a re-added job meets its deterministic job id
 * in the same queue (deduplicated there).
 */
export function pushShardOf(subscriberId: string, shards: number): number {
  if (shards <= 1) return 0;
  return createHash('sha1').update(subscriberId).digest().readUInt32BE(0) % shards;
}

/**
 * Which shards a push dispatcher consumes: every one by default, or the listed ones (`0,2`) to pin
 * dispatchers to shards. Throws a message an operator can act on when a listed shard does not exist.
 */
export function consumedShards(shards: number, only: readonly number[] | undefined): number[] {
  const all = Array.from({ length: shards }, (_, i) => i);
  if (!only || only.length === 0) return all;
  const bad = only.filter((s) => !Number.isInteger(s) || s < 0 || s >= shards);
  if (bad.length > 0) throw new Error(`HERALD_PUSH_SHARDS_CONSUMED lists shard ${bad.join(', ')}, but HERALD_PUSH_SHARDS=${shards} gives shards 0-${shards - 1}`);
  return [...new Set(only)].sort((a, b) => a - b);
}

/**
 * The fan-out jobs for one story's push alerts: grouped by their subscribers' shard, in batches of at most
 * `size`, each with a deterministic id (the story, the shard, the batch's place and a tag of its subscribers), so
 * classifying the story again with the same followers adds nothing while the first jobs are kept. The tag is
 * there for a run with other followers (a classification retried after its enqueues, a reader following in
 * between): named by place alone, a batch that now held a new reader met the first run's job, without them, and
 * was not added, so their record, opened under it, stayed queued with no job to send it. A reader planned in
 * two batches is sent once: the ledger's claim lets one of them through.
 */
export function planPushBatches(
  storyId: string,
  alerts: readonly PushBatchAlert[],
  opts: { shards: number; size: number },
): { jobId: string; data: JobCatalog['AlertSendPushBatch'] }[] {
  const byShard = new Map<number, PushBatchAlert[]>();
  for (const a of alerts) {
    const shard = pushShardOf(a.subscriberId, opts.shards);
    const list = byShard.get(shard);
    if (list) list.push(a);
    else byShard.set(shard, [a]);
  }
  const size = Math.max(1, opts.size);
  return [...byShard].flatMap(([shard, list]) =>
    Array.from({ length: Math.ceil(list.length / size) }, (_, n) => {
      const alertsOf = list.slice(n * size, (n + 1) * size);
      return { jobId: `${jobIds.pushBatch(storyId, shard, n)}-${membersTag(alertsOf)}`, data: { storyId, alerts: alertsOf } };
    }),
  );
}

/** 8 hex characters naming a batch's set of subscribers (in any order). */
const membersTag = (alerts: readonly PushBatchAlert[]) =>
  createHash('sha1').update(alerts.map((a) => a.subscriberId).sort().join('\n')).digest('hex').slice(0, 8);
