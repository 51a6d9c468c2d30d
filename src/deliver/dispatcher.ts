import type { ConnectionOptions, Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { startQueueWorker } from '../queue/queues.ts';
import type { GiveUpMap, HandlerMap, QueueName } from '../queue/jobs.ts';
import type { RedisClient } from '../store/redis.ts';
import type { Stats } from '../store/stats.ts';
import { DELIVERY_BACKOFF, deliveryBackoffMs } from './retry.ts';

/**
 * A delivery dispatcher (push, email or digest queue): a queue worker with its own concurrency, the
 * Retry-After-aware backoff, and a lock short enough that a dead process's jobs are taken over soon.
 * `close()` (BullMQ's) waits for in-flight sends to finish before it resolves: graceful shutdown.
 */
export function startDispatcher(
  queue: Extract<QueueName, 'push' | 'email' | 'digest'>,
  handlers: HandlerMap,
  opts: {
    connection: ConnectionOptions; prefix: string; concurrency: number; lockSeconds: number; log: Logger; stats?: Stats; now?: () => number; random?: () => number; shard?: number;
    /** What to record for a delivery BullMQ gives up on (its ledger record ends as failed). */
    giveUp?: GiveUpMap;
    /** Looks for given-up deliveries whose failure no process wrote (src/queue/give-up-sweep.ts). */
    giveUpSweep?: { redis: RedisClient; queue: Queue; everyMs: number };
  },
): Worker {
  const random = opts.random ?? Math.random;
  return startQueueWorker(queue, handlers, {
    ...opts,
    workerOptions: {
      lockDuration: opts.lockSeconds * 1000,
      stalledInterval: Math.max(1000, Math.floor((opts.lockSeconds * 1000) / 2)),
      // A job that stalls this often is more likely crashing its worker than unlucky: fail it, recorded.
      maxStalledCount: 3,
      settings: {
        backoffStrategy: (attemptsMade, type, err, job) => {
          const base = (job?.opts.backoff && typeof job.opts.backoff === 'object' ? job.opts.backoff.delay : undefined) ?? 5000;
          if (type !== DELIVERY_BACKOFF) return Math.round(base * 2 ** Math.max(0, attemptsMade - 1));
          return deliveryBackoffMs(attemptsMade, base, err, random);
        },
      },
    },
  });
}
