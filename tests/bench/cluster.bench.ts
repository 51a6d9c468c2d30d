// Push fan-out on a single Redis vs a 3-master Redis Cluster, with 1, 2 and 4 dispatcher processes, all in
// one run, and the CPU each Redis node spent (INFO CPU deltas). `npx tsx tests/bench/run.ts [--quick] cluster`.
// Both sides run HERALD_PUSH_SHARDS=3, so only the Redis behind them differs. Full run about 1.5 minutes on 2 cores.
import { createEnqueue, createPushShards, createQueues, closeQueues, type Enqueue } from '../../src/queue/queues.ts';
import { createRedis, type RedisClient } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { seedPushAlerts } from '../cluster/support.ts';
import { startPushSink } from '../deliver/support/push-sink.ts';
import { spawnHerald, waitFor, type HeraldProcess } from '../helpers/processes.ts';
import { clusterSupported, startLocalCluster } from '../helpers/redis-cluster.ts';
import { startLocalRedis, type LocalRedis } from '../helpers/redis-server.ts';
import { deletePrefix, uniquePrefix } from '../helpers/redis.ts';
import { workerEnv } from '../helpers/worker-env.ts';
import { redisCpuSeconds } from './support.ts';
import { ratio, type Benchmark, type BenchResult } from './types.ts';
import type { JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { JobCatalog } from '../../src/queue/jobs.ts';

type Sink = Awaited<ReturnType<typeof startPushSink>>;

/** CPU seconds a Redis node has used so far. */
async function cpuSeconds(node: LocalRedis): Promise<number> {
  const c = new Redis({ port: node.port, host: '127.0.0.1' });
  try {
    return await redisCpuSeconds(c);
  } finally {
    c.disconnect();
  }
}

/** Seeds `readers * perReader` push alerts, runs `dispatchers` push processes on them, returns alerts/s and each node's CPU share. */
async function round(opts: { url: string; nodes: LocalRedis[]; sink: Sink; dispatchers: number; readers: number; perReader: number }) {
  const prefix = uniquePrefix('bench-cluster');
  const redis: RedisClient = createRedis(opts.url, { name: 'bench', autoPipelining: true });
  const queueConnection = createRedis(opts.url, { forQueue: true, name: 'bench-q' });
  const queues = createQueues(queueConnection, prefix);
  const pushShards = createPushShards(queues, queueConnection, prefix, 3);
  const enqueue = createEnqueue(queues, pushShards);
  // Readers and stories first, jobs held back: the jobs are added once every dispatcher is up, so the
  // measured time is fan-out (enqueue included), not process start-up.
  type PushItems = { data: JobCatalog['AlertSendPush']; opts?: JobsOptions }[];
  const held: PushItems[] = [];
  const holding = Object.assign(async () => undefined, { bulk: async (_name: string, items: PushItems) => void held.push(items) }) as unknown as Enqueue;
  const alerts = await seedPushAlerts(
    { subscribers: createSubscriberStore(redis, prefix), stories: createStoryStore(redis, prefix), enqueue: holding, sink: opts.sink },
    opts.readers, opts.perReader, prefix,
  );
  const from = opts.sink.received.length;
  const procs: HeraldProcess[] = [];
  for (let i = 0; i < opts.dispatchers; i++) {
    procs.push(spawnHerald(['worker', 'push'], workerEnv(prefix, {
      REDIS_URL: opts.url, SMTP_URL: 'smtp://127.0.0.1:1', HERALD_PUSH_CA_FILE: opts.sink.caFile, HERALD_PUSH_BURST_WINDOW_SECONDS: '0',
      HERALD_PUSH_CONCURRENCY: '32', HERALD_PUSH_SHARDS: '3', LOG_LEVEL: 'info',
    })));
  }
  await Promise.all(procs.map((p) => waitFor(() => p.out.stdout.includes('Herald worker is running'), 60_000, 'a dispatcher to start')));
  const t0 = performance.now();
  const cpu0 = await Promise.all(opts.nodes.map(cpuSeconds));
  for (const items of held) await enqueue.bulk('AlertSendPush', items);
  await waitFor(() => opts.sink.received.length - from >= alerts.length, 300_000, `${alerts.length} pushes`);
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = await Promise.all(opts.nodes.map(cpuSeconds));
  for (const p of procs) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
  await closeQueues(queues, pushShards);
  await deletePrefix(redis, prefix);
  await Promise.allSettled([redis.quit(), queueConnection.quit()]);
  return { rate: alerts.length / seconds, cpuShare: cpu1.map((c, i) => (c - cpu0[i]!) / seconds) };
}

const bench: Benchmark = {
  name: 'cluster: push fan-out on a single Redis vs a 3-master Redis Cluster',
  async run(ctx) {
    const support = clusterSupported();
    if (!support.ok) {
      ctx.log(`skipped: ${support.why}`);
      return [];
    }
    const readers = ctx.quick ? 60 : 1500;
    const perReader = ctx.quick ? 4 : 6;
    const single = await startLocalRedis();
    const cluster = await startLocalCluster({ masters: 3 });
    const sink = await startPushSink({ decrypt: false });
    const results: BenchResult[] = [];
    try {
      // Quick mode keeps the two ends: process start-up dominates small rounds.
      for (const dispatchers of ctx.quick ? [1, 4] : [1, 2, 4]) {
        const s = await round({ url: single.url, nodes: [single], sink, dispatchers, readers, perReader });
        const c = await round({ url: cluster.url, nodes: cluster.nodes, sink, dispatchers, readers, perReader });
        ctx.log(`${dispatchers} dispatcher(s): single ${s.rate.toFixed(0)}/s (Redis CPU ${s.cpuShare[0]!.toFixed(2)}), cluster ${c.rate.toFixed(0)}/s (CPU per node ${c.cpuShare.map((x) => x.toFixed(2)).join(', ')})`);
        results.push({
          name: `push fan-out, ${dispatchers} dispatcher process(es): 3-master cluster (alerts/s) vs single Redis`,
          value: c.rate, unit: 'alerts/s', baseline: { name: 'single Redis alerts/s', value: s.rate }, ratio: ratio(c.rate, s.rate),
        });
        const busiest = Math.max(...c.cpuShare);
        results.push({
          name: `Redis CPU (share of one core), ${dispatchers} dispatcher(s): busiest cluster node vs the single Redis (lower is better)`,
          value: busiest, unit: 'core', baseline: { name: 'single Redis core', value: s.cpuShare[0]! }, ratio: ratio(busiest, s.cpuShare[0]!),
        });
        c.cpuShare.forEach((share, i) => results.push({
          name: `Redis CPU (share of one core), ${dispatchers} dispatcher(s): cluster node ${i + 1} of 3`,
          value: share, unit: 'core', baseline: { name: 'single Redis core', value: s.cpuShare[0]! }, ratio: ratio(share, s.cpuShare[0]!),
        }));
      }
    } finally {
      await sink.close();
      await cluster.stop();
      await single.kill();
    }
    return results;
  },
};
export default bench;
