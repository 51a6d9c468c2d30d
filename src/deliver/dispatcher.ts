import { Worker, type ConnectionOptions } from 'bullmq';
import type { Logger } from 'pino';
import { bullQueueName } from '../queue/queues.ts';
import { QUEUE_OF, type HandlerMap, type HeraldJob, type JobName, type QueueName } from '../queue/jobs.ts';
import { DELIVERY_BACKOFF, deliveryBackoffMs } from './retry.ts';

/**
 * A delivery dispatcher (push, email or digest queue): a BullMQ worker with its own concurrency, the
 * Retry-After-aware backoff, and a lock short enough that a dead process's jobs are taken over soon.
 * `close()` (BullMQ's) waits for in-flight sends to finish before it resolves: graceful shutdown.
 */
export function startDispatcher(
  queue: Extract<QueueName, 'push' | 'email' | 'digest'>,
  handlers: HandlerMap,
  opts: { connection: ConnectionOptions; prefix: string; concurrency: number; lockSeconds: number; log: Logger; random?: () => number },
): Worker {
  const random = opts.random ?? Math.random;
  const worker = new Worker(
    bullQueueName(queue),
    async (job) => {
      const name = job.name as JobName;
      const handler = handlers[name] as (data: unknown, job: HeraldJob<JobName>) => Promise<unknown>;
      if (!handler || QUEUE_OF[name] !== queue) throw new Error(`No handler for job "${job.name}" on queue ${queue}`);
      return handler(job.data, job as HeraldJob<JobName>);
    },
    {
      connection: opts.connection,
      prefix: opts.prefix,
      concurrency: opts.concurrency,
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
  );
  worker.on('failed', (job, err) => {
    opts.log.warn({ queue, job_id: job?.id, job_name: job?.name, attempts: job?.attemptsMade, err: err.message }, 'job failed');
  });
  worker.on('error', (err) => opts.log.error({ queue, err: err.message }, 'worker error'));
  return worker;
}
