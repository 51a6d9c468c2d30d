import { hostname } from 'node:os';
import { DelayedError, ErrorCode, Queue, Worker, type ConnectionOptions, type JobState, type JobsOptions, type WorkerOptions } from 'bullmq';
import type { Logger } from 'pino';
import type { RedisClient } from '../store/redis.ts';
import type { Stats } from '../store/stats.ts';
import { giveUpReason, scheduleGiveUpSweeps } from './give-up-sweep.ts';
import { pushShardName, pushShardOf } from './shards.ts';
import { DEFAULT_JOB_OPTIONS, FAILED_DELIVERY_KEPT_SECONDS, QUEUE_NAMES, QUEUE_OF, type GiveUpHandler, type GiveUpMap, type HandlerMap, type HeraldJob, type JobCatalog, type JobName, type QueueName } from './jobs.ts';

/**
 * Each queue's name carries its own hash tag ({push}, {email}, ...): all of one queue's keys share a
 * Cluster slot, as BullMQ requires, while different queues can live on different nodes.
 */
export const bullQueueName = (name: string) => `{${name}}`;

export type Queues = Readonly<Record<QueueName, Queue>>;

export function createQueues(connection: ConnectionOptions, prefix: string): Queues {
  return Object.freeze(
    Object.fromEntries(QUEUE_NAMES.map((n) => [n, new Queue(bullQueueName(n), { connection, prefix })])) as Record<QueueName, Queue>,
  );
}

/** The push queue and its shards, in shard order: [0] is `queues.push` itself. */
export function createPushShards(queues: Queues, connection: ConnectionOptions, prefix: string, shards: number): readonly Queue[] {
  return Object.freeze([queues.push, ...Array.from({ length: Math.max(0, shards - 1) }, (_, i) => new Queue(bullQueueName(pushShardName(i + 1)), { connection, prefix }))]);
}

/** Every queue by its name (`push-1`... included): what /metrics, /readyz and the console look at. */
export function allQueues(queues: Queues, pushShards: readonly Queue[] = [queues.push]): Readonly<Record<string, Queue>> {
  return Object.freeze({ ...queues, ...Object.fromEntries(pushShards.slice(1).map((q, i) => [pushShardName(i + 1), q])) });
}

export async function closeQueues(queues: Queues, pushShards: readonly Queue[] = []) {
  await Promise.all([...Object.values(queues), ...pushShards.slice(1)].map((q) => q.close()));
}

export interface Enqueue {
  <N extends JobName>(name: N, data: JobCatalog[N], opts?: JobsOptions): Promise<void>;
  bulk<N extends JobName>(name: N, items: { data: JobCatalog[N]; opts?: JobsOptions }[]): Promise<void>;
}

/**
 * Makes the delayed job `jobId` (of `name`, with `data` for its queue) due in `delayMs`: BullMQ's changeDelay, one
 * script that moves the job only while it is still delayed, so never one that is running. False when it is not
 * delayed (gone, waiting, running or done).
 */
export type Redelay = <N extends JobName>(name: N, data: JobCatalog[N], jobId: string, delayMs: number) => Promise<boolean>;

/**
 * The state of job `jobId` (of `name`, with `data` for its queue): BullMQ's getJobState, one script. 'unknown' when
 * there is no such job (never added, or removed once its keep time passed): the only state in which an add under
 * that id adds anything.
 */
export type JobStateOf = <N extends JobName>(name: N, data: JobCatalog[N], jobId: string) => Promise<JobState | 'unknown'>;

const BULK_SLICE = 1000;

/** The subscriber a push job is routed by: its own, or a batch's first (a batch holds one shard's alerts). */
const pushSubscriberOf = (data: unknown): string => {
  const d = data as { subscriberId?: string; alerts?: { subscriberId: string }[] };
  return d.subscriberId ?? d.alerts?.[0]?.subscriberId ?? '';
};

/**
 * Items grouped by key, each group in input order. Linear: a topic with 100,000 email followers is one
 * call with 100,000 jobs (copying a group per item took 15 s for 40,000, long enough to lose the job lock).
 */
export function groupBy<T, K>(items: readonly T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/**
 * Typed enqueue: the job name picks the queue and the default retry policy. Push jobs go to their
 * subscriber's shard (every push job names its subscriber), so one subscriber's jobs share one queue.
 */
export function createEnqueue(queues: Queues, pushShards: readonly Queue[] = [queues.push]): Enqueue {
  const queueFor = queueRouter(queues, pushShards);
  const fn = (async (name, data, opts) => {
    await queueFor(name, data).add(name, data, { ...DEFAULT_JOB_OPTIONS[name], ...opts });
  }) as Enqueue;
  fn.bulk = async (name, items) => {
    if (items.length === 0) return;
    const byQueue = groupBy(items, (item) => queueFor(name, item.data));
    // addBulk per queue (its MULTI touches that queue's slot only), in slices: a topic with a huge following
    // must not hold one master in a single MULTI of every job; the shards are filled in parallel.
    await Promise.all(
      [...byQueue].map(async ([q, group]) => {
        for (let i = 0; i < group.length; i += BULK_SLICE) {
          await q.addBulk(group.slice(i, i + BULK_SLICE).map((j) => ({ name, data: j.data, opts: { ...DEFAULT_JOB_OPTIONS[name], ...j.opts } })));
        }
      }),
    );
  };
  return fn;
}

/** The queue a job goes to: its name's, or for push jobs its subscriber's shard. */
const queueRouter = (queues: Queues, pushShards: readonly Queue[]) => (name: JobName, data: unknown): Queue =>
  QUEUE_OF[name] === 'push' ? pushShards[pushShardOf(pushSubscriberOf(data), pushShards.length)]! : queues[QUEUE_OF[name]];

export function createRedelay(queues: Queues, pushShards: readonly Queue[] = [queues.push]): Redelay {
  const queueFor = queueRouter(queues, pushShards);
  return async (name, data, jobId, delayMs) => {
    const job = await queueFor(name, data).getJob(jobId);
    if (!job) return false;
    try {
      await job.changeDelay(Math.max(0, delayMs));
      return true;
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === ErrorCode.JobNotInState || code === ErrorCode.JobNotExist) return false;
      throw err;
    }
  };
}

export function createJobStateOf(queues: Queues, pushShards: readonly Queue[] = [queues.push]): JobStateOf {
  const queueFor = queueRouter(queues, pushShards);
  return (name, data, jobId) => queueFor(name, data).getJobState(jobId);
}

/** BullMQ states of a job that has not started: it will read, when it runs, what is written before it does. */
const NOT_STARTED: ReadonlySet<string> = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children']);

/**
 * Adds jobs of `name`, each under the first of its ids (`at(0)`, `at(1)`, ...) that is free or whose job has not
 * started: BullMQ ignores an add under any id it still keeps, and a kept job that has started (running, done or
 * failed) will not do the work asked for now. An id whose job waits is left to that job (it reads the work when it
 * runs). Answers, per job, the n of the id it got. One state lookup per job, and one more per id already started.
 */
export async function addUnlessStarted<N extends JobName>(
  deps: { enqueue: Enqueue; jobState: JobStateOf },
  name: N,
  jobs: readonly { at: (n: number) => { data: JobCatalog[N]; jobId: string }; opts?: JobsOptions }[],
): Promise<number[]> {
  const got = jobs.map(() => 0);
  let left = jobs.map((_, i) => i);
  for (let n = 0; left.length > 0; n++) {
    const tries = left.map((i) => ({ i, ...jobs[i]!.at(n) }));
    const states = await Promise.all(tries.map((t) => deps.jobState(name, t.data, t.jobId)));
    // Added here, or by another caller between the lookup and the add (then this add is a no-op).
    await Promise.all(tries.filter((_, k) => states[k] === 'unknown').map((t) => deps.enqueue(name, t.data, { ...jobs[t.i]!.opts, jobId: t.jobId })));
    left = tries.filter((t, k) => {
      const free = states[k] === 'unknown' || NOT_STARTED.has(states[k]!);
      if (free) got[t.i] = n;
      return !free;
    }).map((t) => t.i);
  }
  return got;
}

/**
 * Thrown by a handler whose attempt was stopped before it could act, by this process shutting down (a send handed back
 * unsent, or abandoned with no answer): the job runs again after `delayMs` without that attempt counting toward its
 * attempts. Counted, a job on its last attempt was given up on (its alert recorded as failed) for the process' stop.
 */
export class NotAttempted extends Error {
  override name = 'NotAttempted';
  constructor(message: string, readonly delayMs: number) {
    super(message);
  }
}

/**
 * One BullMQ worker for one queue, dispatching each job to its handler by name. Handlers throw to
 * retry (transient) or throw UnrecoverableError to stop (permanent); nothing is swallowed here.
 */
export function startQueueWorker(
  queue: QueueName,
  handlers: HandlerMap,
  opts: {
    connection: ConnectionOptions;
    prefix: string;
    concurrency: number;
    log: Logger;
    stats?: Stats;
    now?: () => number;
    /** Push shard this worker consumes (0, the default, is the `push` queue itself). */
    shard?: number;
    /** Queue-specific worker settings (lock duration, backoff strategy...). */
    workerOptions?: Omit<WorkerOptions, 'connection' | 'prefix' | 'concurrency' | 'name'>;
    /** What to record for a job BullMQ gives up on, by job name. */
    giveUp?: GiveUpMap;
    /** Looks for given-up jobs whose step never ran in `queue` (this worker's own), every `everyMs` (see give-up-sweep.ts). */
    giveUpSweep?: { redis: RedisClient; queue: Queue; everyMs: number };
  },
): Worker {
  const queueName = queue === 'push' ? pushShardName(opts.shard ?? 0) : queue;
  const worker = new Worker(
    bullQueueName(queueName),
    async (job, token) => {
      const name = job.name as JobName;
      const handler = handlers[name] as (data: unknown, job: HeraldJob<JobName>) => Promise<unknown>;
      if (!handler || QUEUE_OF[name] !== queue) throw new Error(`No handler for job "${job.name}" on queue ${queue}`);
      try {
        return await handler(job.data, job as HeraldJob<JobName>);
      } catch (err) {
        if (!(err instanceof NotAttempted) || token === undefined) throw err;
        // BullMQ's own way to delay a running job without spending an attempt (skipAttempt), then to let it go.
        opts.log.info({ queue, job_id: job.id, job_name: job.name, delay_ms: err.delayMs, reason: err.message }, 'job handed back, not counted as an attempt');
        await job.moveToDelayed(Date.now() + err.delayMs, token);
        throw new DelayedError();
      }
    },
    // The name is stored on every job this worker processes: which process handled a job is traceable.
    { ...opts.workerOptions, connection: opts.connection, prefix: opts.prefix, concurrency: opts.concurrency, name: `${hostname()}:${process.pid}:${queueName}` },
  );
  const now = opts.now ?? Date.now;
  const count = (name: string, outcome: 'completed' | 'retried' | 'failed') =>
    // Queued in memory, never rejected: a failed write to Redis is reported by the Stats' onError.
    void opts.stats?.incr('herald_jobs_total', { queue, name, outcome }, now());
  worker.on('completed', (job) => void count(job.name, 'completed'));
  worker.on('failed', (job, err) => {
    // A job with attempts left goes back to the queue (delayed): that is a retry, not a failure.
    const final = !job || isGivenUp(job, err);
    void count(job?.name ?? 'unknown', final ? 'failed' : 'retried');
    opts.log.warn({ queue, job_id: job?.id, job_name: job?.name, attempts: job?.attemptsMade, final, err: err.message }, final ? 'job failed' : 'job will be retried');
  });
  worker.on('error', (err) => opts.log.error({ queue, err: err.message }, 'worker error'));
  if (opts.giveUp) {
    recordGiveUps(worker, opts.giveUp, queue, opts.log);
    if (opts.giveUpSweep) {
      // The step above runs in this process; a process that dies before it ran leaves the job to the sweep.
      const { redis, queue: own, everyMs } = opts.giveUpSweep;
      const stop = scheduleGiveUpSweeps(redis, own, opts.giveUp, { everyMs, graceMs: everyMs, lookbackMs: FAILED_DELIVERY_KEPT_SECONDS * 1000, log: opts.log });
      const close = worker.close.bind(worker);
      worker.close = async (force?: boolean) => {
        await close(force);
        await stop();
      };
    }
  }
  return worker;
}

/** BullMQ will not run the job again: a permanent error, or its attempts are used up. */
const isGivenUp = (job: { attemptsMade: number; opts: { attempts?: number } }, err: Error) =>
  err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);

/**
 * Runs the give-up step of each job BullMQ gives up on. From the 'failed' event, which has no caller to throw to,
 * so a step's own error is logged; the worker's close waits for the steps still running, or a shutdown would
 * cut them off and leave their records waiting.
 */
function recordGiveUps(worker: Worker, giveUp: GiveUpMap, queue: QueueName, log: Logger) {
  const running = new Set<Promise<unknown>>();
  worker.on('failed', (job, err) => {
    if (!job || !isGivenUp(job, err)) return;
    const step = giveUp[job.name as JobName] as GiveUpHandler<JobName> | undefined;
    if (!step) return;
    const done: Promise<unknown> = step(job.data, job as HeraldJob<JobName>, giveUpReason(job.attemptsMade, err.message))
      .catch((e: Error) => log.error({ queue, job_id: job.id, job_name: job.name, err: e.message }, 'recording a given-up job failed'))
      .finally(() => running.delete(done));
    running.add(done);
  });
  const close = worker.close.bind(worker);
  worker.close = async (force?: boolean) => {
    await close(force);
    await Promise.allSettled(running);
  };
}
