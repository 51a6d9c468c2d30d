import { randomUUID } from 'node:crypto';
import { Job, Queue } from 'bullmq';
import type { Logger } from 'pino';
import { defineScript, type RedisClient } from '../store/redis.ts';
import { whileRenewing } from './renewing.ts';
import type { GiveUpHandler, GiveUpMap, HeraldJob, JobName } from './jobs.ts';

/** What a give-up step records as the reason: how many attempts the job had and its last error. */
export function giveUpReason(attemptsMade: number, lastError: string): string {
  return `gave up after ${attemptsMade} attempt${attemptsMade === 1 ? '' : 's'}: ${lastError}`;
}

export interface SweepOptions {
  /** Real time (BullMQ stamps finishedOn with the worker's Date.now, not Herald's clock). */
  now: number;
  /** Jobs failed this recently are left to the step the failing worker runs itself. */
  graceMs: number;
  /** How far back the first sweep of a queue looks: as long as failed jobs are kept (removeOnFail). */
  lookbackMs: number;
  log: Logger;
  /** Job ids read per call. */
  pageSize?: number;
  /** Jobs looked at per sweep, about: the first sweep of a queue with many failed jobs is spread over several. */
  maxJobs?: number;
}

/** Where a queue's sweep has got to: jobs failed at or after this time (ms) are looked at next. */
export const sweepMarkKey = (queue: Queue) => queue.toKey('herald-giveup-mark');

/**
 * Runs the give-up step again for jobs BullMQ failed while no step ran: the worker's process died between BullMQ
 * moving the job to failed and the step's write, or the write itself failed (Redis away for a moment). Without
 * this, such a delivery's ledger record would wait as "queued" for ever. Every step only changes records still
 * waiting for that job, so a job looked at twice changes nothing more.
 *
 * Reads the failed jobs by the time they failed (BullMQ's failed set is scored by finishedOn), from the queue's
 * mark up to `now - graceMs`, oldest first, about `maxJobs` of them. The mark then moves past them, but never past
 * a job whose step threw: that one is tried again at the next sweep.
 */
export async function sweepGivenUp(redis: RedisClient, queue: Queue, giveUp: GiveUpMap, opts: SweepOptions): Promise<{ recorded: number; errors: number }> {
  const markKey = sweepMarkKey(queue);
  const stored = await redis.get(markKey);
  const from = stored !== null && Number.isFinite(Number(stored)) ? Number(stored) : opts.now - opts.lookbackMs;
  const upTo = opts.now - opts.graceMs;
  if (upTo < from) return { recorded: 0, errors: 0 };
  const page = opts.pageSize ?? 200;
  const maxJobs = opts.maxJobs ?? 2000;
  let looked = 0;
  let cutAt = Infinity;
  let recorded = 0;
  let errors = 0;
  let firstError = Infinity;
  // Pages by score, not by position: jobs failing meanwhile, or a failed job retried from the console, do not
  // shift the window over one that was never looked at. Within one score (ties in member order), the next page
  // skips the jobs looked at that are still there at that score: a count of those looked at skipped one never
  // looked at for each that left the set meanwhile (retried from the console, removed).
  let after = from;
  let seenAtScore: string[] = [];
  for (;;) {
    const skip = seenAtScore.length === 0 ? 0 : stillAt(await redis.zmscore(queue.keys.failed!, ...seenAtScore), after);
    const flat = await redis.zrangebyscore(queue.keys.failed!, after, upTo, 'WITHSCORES', 'LIMIT', skip, page);
    if (flat.length === 0) break;
    for (let i = 0; i < flat.length; i += 2) {
      const id = flat[i]!;
      const at = Number(flat[i + 1]);
      if (at === after) seenAtScore.push(id);
      else {
        after = at;
        seenAtScore = [id];
      }
      looked++;
      const job = (await Job.fromId(queue, id)) as HeraldJob<JobName> | undefined;
      const step = job ? (giveUp[job.name] as GiveUpHandler<JobName> | undefined) : undefined;
      if (!job || !step) continue;
      // Read a page ago: a job retried since (from the console) waits for a new attempt, which its record waits
      // for too; giving it up now would fail that record under it.
      if (!(await job.isFailed())) continue;
      try {
        await step(job.data, job, giveUpReason(job.attemptsMade, job.failedReason ?? 'unknown error'));
        recorded++;
      } catch (err) {
        errors++;
        firstError = Math.min(firstError, at);
        opts.log.error({ queue: queue.name, job_id: id, job_name: job.name, err: (err as Error).message }, 'recording a given-up job failed again; next sweep retries it');
      }
    }
    if (flat.length < 2 * page) break;
    // Enough for one sweep: the next starts at this score (its jobs looked at again, which changes nothing).
    // Never while still at the first score, or a crowd failed in one millisecond would stop every sweep there.
    if (looked >= maxJobs && after > from) {
      cutAt = after;
      break;
    }
  }
  await redis.set(markKey, String(Math.min(upTo + 1, cutAt, firstError)));
  return { recorded, errors };
}

/** How many of the scores ZMSCORE answered are still `score`: jobs looked at that are still in the set there. */
const stillAt = (scores: (string | null)[], score: number) => scores.filter((s) => s !== null && Number(s) === score).length;

/** KEYS[1] a sweep lock; ARGV[1] its holder, ARGV[2] ms: extended only while that holder still has it. */
const EXTEND_LOCK = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

/**
 * Sweeps the queue every `everyMs` from this process, while no other process of the deployment does (a lock as
 * long as the interval): however many dispatchers consume a queue, one sweep runs per interval. Returns the stop.
 */
export function scheduleGiveUpSweeps(redis: RedisClient, queue: Queue, giveUp: GiveUpMap, opts: { everyMs: number; graceMs: number; lookbackMs: number; log: Logger }): () => Promise<void> {
  const token = randomUUID();
  const lock = `${sweepMarkKey(queue)}:lock`;
  const extend = defineScript(redis, 'heraldExtendSweepLock', 1, EXTEND_LOCK);
  let running: Promise<unknown> | null = null;
  const tick = async () => {
    if ((await redis.set(lock, token, 'PX', opts.everyMs, 'NX')) !== 'OK') return;
    // Kept while the sweep runs: a sweep longer than the interval (a backlog, a slow Redis) lost its lock to
    // another process's next tick, which swept the same jobs beside it. At the end it is left to expire, so the
    // next sweep anywhere still waits for the interval.
    const res = await whileRenewing(Math.max(1, Math.floor(opts.everyMs / 3)), () => extend(lock, token, opts.everyMs), () =>
      sweepGivenUp(redis, queue, giveUp, { now: Date.now(), graceMs: opts.graceMs, lookbackMs: opts.lookbackMs, log: opts.log }));
    if (res.recorded > 0) opts.log.info({ queue: queue.name, ...res }, 'given-up jobs recorded by the sweep');
  };
  const timer = setInterval(() => {
    // One sweep at a time: a sweep longer than the interval outlives its lock, and a second one started beside it
    // ran the same jobs' steps again at once (and the stop awaited only the newest, leaving the first running).
    if (running) return;
    running = tick()
      .catch((err: Error) => opts.log.warn({ queue: queue.name, err: err.message }, 'give-up sweep failed; the next one retries'))
      .finally(() => {
        running = null;
      });
  }, opts.everyMs);
  // A sweep is never a reason to keep a process alive.
  timer.unref();
  return async () => {
    clearInterval(timer);
    if (running) await running;
  };
}
