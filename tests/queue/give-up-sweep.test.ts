import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job, UnrecoverableError, Worker } from 'bullmq';
import pino from 'pino';
import { scheduleGiveUpSweeps, sweepGivenUp, sweepMarkKey } from '../../src/queue/give-up-sweep.ts';
import type { GiveUpMap } from '../../src/queue/jobs.ts';
import { bullQueueName, closeQueues, createQueues, type Queues } from '../../src/queue/queues.ts';
import { createRedis, type RedisClient } from '../../src/store/redis.ts';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../helpers/redis.ts';

/**
 * The sweep behind the give-up steps, on a real BullMQ queue: jobs are failed by a worker that records nothing
 * (as a dispatcher does when its process dies between BullMQ failing the job and the step's write).
 */
describe('give-up sweep (real BullMQ and Redis)', () => {
  const prefix = uniquePrefix('giveup-sweep');
  const log = pino({ level: 'silent' });
  let connection: RedisClient;
  let queues: Queues;
  let redis: RedisClient;
  let worker: Worker;

  beforeAll(async () => {
    connection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'giveup-sweep-test' });
    redis = testRedis();
    queues = createQueues(connection, prefix);
    // Fails every job at once, for good, and records nothing.
    worker = new Worker(bullQueueName('email'), async (job) => {
      throw new UnrecoverableError(`SMTP answered 554 for ${job.id}`);
    }, { connection, prefix, concurrency: 4 });
  });
  afterAll(async () => {
    await worker.close();
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([connection.quit(), redis.quit()]);
  });

  const failJobs = async (ids: string[]) => {
    await queues.email.addBulk(ids.map((id) => ({ name: 'AlertSendEmail', data: { subscriberId: `s-${id}`, storyId: 'st', topicId: 'japan', why: 'x' }, opts: { jobId: id } })));
    const deadline = Date.now() + 10_000;
    while ((await queues.email.getFailedCount()) < ids.length + failedBefore) {
      if (Date.now() > deadline) throw new Error('jobs were not failed');
      await new Promise((r) => setTimeout(r, 20));
    }
    failedBefore += ids.length;
  };
  let failedBefore = 0;
  /** A give-up map that records each call, and throws for the ids in `broken` (once each). */
  const recorder = (broken: Set<string> = new Set()) => {
    const calls: { id: string; reason: string }[] = [];
    const map: GiveUpMap = {
      AlertSendEmail: async (_d, job, reason) => {
        if (broken.delete(job.id!)) throw new Error('Redis went away');
        calls.push({ id: job.id!, reason });
      },
    };
    return { calls, map };
  };

  /**
   * A give-up step that takes `ms` (for job `only`, else every job), counting the steps run and the most running at
   * once; `started()` resolves once one has begun (within 5 s).
   */
  const slowStep = (ms: number, only?: string) => {
    const step = {
      active: 0, most: 0, steps: 0,
      map: {
        AlertSendEmail: async (_d, job) => {
          if (only !== undefined && job.id !== only) return;
          step.active++;
          step.steps++;
          step.most = Math.max(step.most, step.active);
          await new Promise((r) => setTimeout(r, ms));
          step.active--;
        },
      } as GiveUpMap,
      started: async () => {
        const deadline = Date.now() + 5_000;
        while (step.steps === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      },
    };
    return step;
  };

  const sweep = (map: GiveUpMap, graceMs = 0, pageSize?: number, maxJobs?: number) =>
    sweepGivenUp(redis, queues.email, map, { now: Date.now(), graceMs, lookbackMs: 86_400_000, log, ...(pageSize ? { pageSize } : {}), ...(maxJobs ? { maxJobs } : {}) });

  it('records each job failed since the last sweep once, with its attempts and error, and leaves the newest to their own worker', async () => {
    await failJobs(['a', 'b', 'c']);
    const { calls, map } = recorder();
    // A minute's grace: they were just failed, and their own worker's step may be running.
    expect(await sweep(map, 60_000)).toEqual({ recorded: 0, errors: 0 });
    // Without it, the three are recorded, each with the reason its own step would have written.
    expect(await sweep(map)).toEqual({ recorded: 3, errors: 0 });
    expect(calls.map((c) => c.id).sort()).toEqual(['a', 'b', 'c']);
    expect(calls[0]!.reason).toMatch(/^gave up after 1 attempt: SMTP answered 554 for [abc]$/);
    // The next sweep starts where this one stopped: nothing is looked at twice.
    expect(await sweep(map)).toEqual({ recorded: 0, errors: 0 });
    expect(calls).toHaveLength(3);
  });

  it('tries a job whose step failed again at the next sweep, until it is recorded', async () => {
    await failJobs(['d', 'e']);
    const { calls, map } = recorder(new Set(['d']));
    expect(await sweep(map)).toEqual({ recorded: 1, errors: 1 });
    expect(calls.map((c) => c.id)).toEqual(['e']);
    const again = await sweep(map);
    expect(again.errors).toBe(0);
    expect(calls.map((c) => c.id)).toContain('d');
    // Then the mark is past both.
    const recorded = calls.length;
    expect(await sweep(map)).toEqual({ recorded: 0, errors: 0 });
    expect(calls).toHaveLength(recorded);
  });

  it('pages through many jobs failed in the same millisecond without missing or repeating one', async () => {
    const ids = Array.from({ length: 57 }, (_, i) => `many-${i}`);
    await failJobs(ids);
    // All of them at one score, older than the mark's grace: paging by position within one score must hold.
    const at = (await redis.zscore(queues.email.keys.failed!, 'many-0')) as string;
    await redis.zadd(queues.email.keys.failed!, ...ids.flatMap((id) => [at, id]));
    await redis.set(sweepMarkKey(queues.email), at);
    const { calls, map } = recorder();
    expect(await sweep(map, 0, 10)).toEqual({ recorded: 57, errors: 0 });
    expect(calls.map((c) => c.id).sort()).toEqual([...ids].sort());
  });

  it('spreads a long backlog over several sweeps, each taking up where the last stopped, none missed', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `backlog-${i}`);
    await failJobs(ids);
    // Three jobs per millisecond, older than the grace: cuts fall inside and between crowds of one score.
    const failed = queues.email.keys.failed!;
    const base = Number(await redis.zscore(failed, 'backlog-0'));
    await redis.zadd(failed, ...ids.flatMap((id, i) => [base + Math.floor(i / 3), id]));
    await redis.set(sweepMarkKey(queues.email), String(base));
    const { calls, map } = recorder();
    const per: number[] = [];
    for (let k = 0; k < 10 && new Set(calls.map((c) => c.id)).size < ids.length; k++) per.push((await sweep(map, 0, 4, 8)).recorded);
    expect(new Set(calls.map((c) => c.id))).toEqual(new Set(ids));
    // More than one sweep, none of them over the cap by more than a page.
    expect(per.length).toBeGreaterThan(2);
    for (const n of per) expect(n).toBeLessThanOrEqual(8 + 4);
  });

  /** Fails `ids`, then puts them all at one score older than any grace, with the mark there. */
  const failAtOneScore = async (ids: string[]) => {
    await failJobs(ids);
    const failed = queues.email.keys.failed!;
    const at = Number(await redis.zscore(failed, ids[0]!));
    await redis.zadd(failed, ...ids.flatMap((id) => [at, id]));
    await redis.set(sweepMarkKey(queues.email), String(at));
  };
  const retry = async (id: string) => (await Job.fromId(queues.email, id))!.retry();

  it('runs no step for a job retried from the console after the sweep read its page, and still misses none of the rest', async () => {
    const ids = ['pg-0', 'pg-1', 'pg-2', 'pg-3', 'pg-4', 'pg-5'];
    await failAtOneScore(ids);
    // Held in the queue once retried: its new attempt must find its record still waiting for it.
    await queues.email.pause();
    try {
      const calls: string[] = [];
      const map: GiveUpMap = {
        AlertSendEmail: async (_d, job) => {
          calls.push(job.id!);
          // An operator retries pg-0 (looked at) and pg-1 (on this page, not yet looked at) meanwhile.
          if (job.id === 'pg-0') await retry('pg-1');
          if (job.id === 'pg-0') await retry('pg-0');
        },
      };
      await sweep(map, 0, 2);
      // pg-1 waits for a new attempt: giving it up would fail the record that attempt is for. And the two that left
      // the failed set do not shift the next page over pg-2 and pg-3.
      expect(calls).toEqual(['pg-0', 'pg-2', 'pg-3', 'pg-4', 'pg-5']);
    } finally {
      await queues.email.resume();
    }
    const deadline = Date.now() + 10_000;
    while ((await queues.email.getFailedCount()) < failedBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  });

  it('never runs two sweeps of a queue at once in one process, and its stop waits for the one running', async () => {
    await failAtOneScore(['slow-0']);
    const step = slowStep(300);
    // Sweeps every 40 ms; the step takes 300 ms, so later ticks come while the first sweep is still in its step.
    const stop = scheduleGiveUpSweeps(redis, queues.email, step.map, { everyMs: 40, graceMs: 0, lookbackMs: 86_400_000, log });
    await step.started();
    await new Promise((r) => setTimeout(r, 150));
    await stop();
    expect(step.active).toBe(0);
    expect(step.most).toBe(1);
    expect(step.steps).toBe(1);
  });
  it('runs one sweep at a time across processes, even when a sweep outlasts its interval', async () => {
    await failAtOneScore(['slow-1']);
    const step = slowStep(1200, 'slow-1');
    // Two dispatcher processes: each its own connection, each its own scheduler. The step takes 1.2 s, four times
    // the 300 ms interval: the second process must not start a sweep beside the one still running in the first.
    const other = testRedis();
    const stops = [redis, other].map((conn) => scheduleGiveUpSweeps(conn, queues.email, step.map, { everyMs: 300, graceMs: 0, lookbackMs: 86_400_000, log }));
    await step.started();
    await new Promise((r) => setTimeout(r, 1300));
    await Promise.all(stops.map((stop) => stop()));
    await other.quit();
    expect(step.most).toBe(1);
    expect(step.steps).toBe(1);
  });
});
