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
 * `size`, each with a deterministic id (the story, the shard, the batch's place), so classifying the story
 * again adds nothing while the first jobs are kept.
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
    Array.from({ length: Math.ceil(list.length / size) }, (_, n) => ({
      jobId: jobIds.pushBatch(storyId, shard, n),
      data: { storyId, alerts: list.slice(n * size, (n + 1) * size) },
    })),
  );
}
