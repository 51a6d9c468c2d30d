import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allQueues, closeQueues, createEnqueue, createPushShards, createQueues, type Queues } from '../../src/queue/queues.ts';
import { pushShardName } from '../../src/queue/shards.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis, type RedisClient } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { startPushSink } from '../deliver/support/push-sink.ts';
import { freePort } from '../helpers/herald.ts';
import { spawnHerald, waitFor, type HeraldProcess } from '../helpers/processes.ts';
import { clusterSupported, startLocalCluster, type LocalCluster } from '../helpers/redis-cluster.ts';
import { deletePrefix, uniquePrefix } from '../helpers/redis.ts';
import { workerEnv } from '../helpers/worker-env.ts';
import { deliveriesOf, fsyncAlways, waitReplicasSynced, ledgerRecords, masterPortOfSlot, runTestFileOn, seedPushAlerts, slotOfQueue, type SeededAlert } from './support.ts';

const support = clusterSupported();
if (!support.ok) process.stderr.write(`Redis Cluster tests skipped: ${support.why} (they need redis-server and redis-cli with --cluster support)\n`);

type Sink = Awaited<ReturnType<typeof startPushSink>>;

/** Stores and queues of one test's Herald data on a cluster, as the test itself uses them. */
function clusterWorld(url: string, prefix: string, shards: number) {
  const redis: RedisClient = createRedis(url, { name: 'cluster-test' });
  const queueConnection = createRedis(url, { forQueue: true, name: 'cluster-test-q' });
  const queues: Queues = createQueues(queueConnection, prefix);
  const pushShards = createPushShards(queues, queueConnection, prefix, shards);
  // The kill and failover tests make these connections fail for a while: that is the scenario, not a test error.
  for (const q of Object.values(allQueues(queues, pushShards))) q.on('error', () => undefined);
  return {
    redis, queues, pushShards,
    every: allQueues(queues, pushShards),
    enqueue: createEnqueue(queues, pushShards),
    subscribers: createSubscriberStore(redis, prefix),
    stories: createStoryStore(redis, prefix),
    ledger: createLedger(redis, prefix),
    async close() {
      await closeQueues(queues, pushShards);
      // After a failover the dead master may still be listed: its keys are gone with it, the others are deleted.
      await deletePrefix(redis, prefix).catch((err: Error) => process.stderr.write(`cluster test cleanup: ${err.message}\n`));
      await Promise.allSettled([redis.quit(), queueConnection.quit()]);
    },
  };
}

function pushWorker(url: string, prefix: string, sink: Sink, extra: Record<string, string> = {}): HeraldProcess {
  return spawnHerald(['worker', 'push'], workerEnv(prefix, {
    REDIS_URL: url,
    SMTP_URL: 'smtp://127.0.0.1:1',
    HERALD_PUSH_CA_FILE: sink.caFile,
    HERALD_PUSH_BURST_WINDOW_SECONDS: '0',
    HERALD_PUSH_CONCURRENCY: '16',
    HERALD_JOB_LOCK_SECONDS: '3',
    LOG_LEVEL: 'info',
    ...extra,
  }));
}
const started = (p: HeraldProcess) => waitFor(() => p.out.stdout.includes('Herald worker is running') || p.child.exitCode !== null, 30_000, 'a worker to start');

/** Every alert ended "sent" in the ledger, after one attempt unless the test allows reclaims. */
/** Reads that may meet a slot move right after a failover: a few tries before giving up. */
async function settledRecords(world: ReturnType<typeof clusterWorld>, alerts: SeededAlert[]) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ledgerRecords(world.ledger, alerts);
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

async function expectAllSentOnce(world: ReturnType<typeof clusterWorld>, alerts: SeededAlert[], sink: Sink, maxResends: number) {
  const records = await settledRecords(world, alerts);
  expect(records.filter((r) => r?.status === 'sent')).toHaveLength(alerts.length);
  // The sink serves every test of the file: only this test's devices count.
  const devices = new Set(alerts.map((a) => a.deviceId));
  const shown = new Map([...deliveriesOf(sink)].filter(([k]) => devices.has(k.split('/')[0]!)));
  expect(new Set(shown.keys())).toEqual(new Set(alerts.map((a) => `${a.deviceId}/${a.storyId}`)));
  // A push on the wire when its record's master went away cannot be known to have arrived: it is sent again
  // with the same Topic (the device replaces the notification). Only reclaimed records may show one.
  const resent = [...shown.entries()].filter(([, n]) => n > 1);
  expect(resent.length).toBeLessThanOrEqual(maxResends);
  const reclaimed = new Set(alerts.filter((_, i) => (records[i]?.reclaims ?? 0) > 0).map((a) => `${a.deviceId}/${a.storyId}`));
  for (const [k] of resent) expect(reclaimed.has(k)).toBe(true);
  return { resent: resent.length, resentKeys: resent.map(([k]) => k) };
}

/**
 * How long before a master's death a write it acknowledged may still be missing on its replica (replication is
 * asynchronous): generous for a local replica, which is a few milliseconds behind at most.
 */
const REPLICATION_WINDOW_MS = 1000;

/** When each (device, story) first reached the push service, for the given devices. */
function firstDeliveries(sink: Sink, devices: Set<string>): Map<string, number> {
  const first = new Map<string, number>();
  for (const q of sink.requests) {
    const k = `${q.deviceId}/${String(q.headers.topic)}`;
    if (devices.has(q.deviceId) && !first.has(k)) first.set(k, q.at);
  }
  return first;
}

describe.skipIf(!support.ok)('Herald on a 3-master Redis Cluster (no replicas)', () => {
  let cluster: LocalCluster;
  let sink: Sink;
  const procs: HeraldProcess[] = [];

  beforeAll(async () => {
    cluster = await startLocalCluster({ masters: 3, replicas: 0 });
    fsyncAlways(cluster);
    sink = await startPushSink({ decrypt: false, delayMs: 2 });
  }, 60_000);
  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await sink?.close();
    await cluster?.stop();
  });

  it('the walking-skeleton end-to-end test passes unchanged on the cluster, and no command of that run crosses a slot', async () => {
    const run = await runTestFileOn('tests/e2e/walking-skeleton.test.ts', cluster.url);
    expect(run.code, run.output.slice(-3000)).toBe(0);
    expect(run.output).toMatch(/Tests .*6 passed/);
    expect(run.audits).toHaveLength(1);
    const audit = run.audits[0]!;
    expect(audit.violations).toEqual([]);
    // The audit saw the run's scripts (BullMQ's and Herald's) and MULTI blocks, not nothing.
    expect(audit.byKind.script ?? 0).toBeGreaterThan(50);
    expect(audit.byKind.multi ?? 0).toBeGreaterThan(0);
  }, 90_000);

  it('herald health, given REDIS_CLUSTER_NODES, answers ok for the healthy cluster', async () => {
    const seeds = cluster.nodes.slice(0, 2).map((n) => `127.0.0.1:${n.port}`).join(',');
    const p = spawnHerald(['health'], { REDIS_CLUSTER_NODES: seeds, HERALD_SIGNING_KEY: 'health-test-signing-key-0123456789abcdef' });
    expect(await p.exited, p.out.stderr).toBe(0);
    expect(p.out.stdout).toBe('ok\n');
  }, 30_000);

  it('20,000 alerts over 3 push shards and 3 dispatcher processes: each delivered exactly once, every process and shard working', async () => {
    const prefix = uniquePrefix('cluster-fanout');
    const world = clusterWorld(cluster.url, prefix, 3);
    try {
      // The three shard queues carry their own hash tags: on this cluster they are served by more than one master.
      const masters = new Set(await Promise.all([0, 1, 2].map((s) => masterPortOfSlot(cluster, slotOfQueue(pushShardName(s))))));
      expect(masters.size).toBeGreaterThan(1);

      const alerts = await seedPushAlerts({ ...world, sink }, 2000, 10, 'fanout');
      expect(alerts).toHaveLength(20_000);
      const counts = await Promise.all(world.pushShards.map((q) => q.getJobCounts('waiting')));
      for (const c of counts) expect(c.waiting).toBeGreaterThan(4000);

      const before = sink.received.length;
      const workers = [0, 1, 2].map(() => pushWorker(cluster.url, prefix, sink, { HERALD_PUSH_SHARDS: '3' }));
      procs.push(...workers);
      await Promise.all(workers.map(started));
      await waitFor(() => sink.received.length - before >= alerts.length, 150_000, '20,000 pushes');
      await waitFor(async () => (await Promise.all(world.pushShards.map((q) => q.getJobCounts('completed')))).reduce((n, c) => n + (c.completed ?? 0), 0) >= alerts.length, 30_000, 'all jobs completed');
      for (const w of workers) w.child.kill('SIGTERM');
      expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0]);

      await expectAllSentOnce(world, alerts, sink, 0);
      const records = await ledgerRecords(world.ledger, alerts);
      expect(records.every((r) => r?.attempts === 1)).toBe(true);
      // Each shard's completed jobs name the processes that ran them: all three processes worked.
      const pids = new Set<string>();
      for (const q of world.pushShards) {
        const jobs = await q.getJobs(['completed'], 0, 300);
        expect(jobs.length).toBeGreaterThan(0);
        for (const j of jobs) pids.add(j.processedBy?.split(':')[1] ?? '');
      }
      expect(pids.size).toBe(3);
    } finally {
      await world.close();
    }
  }, 240_000);

  it('a master killed mid-work: /readyz and the logs name it, and after its restart with its data the work completes, nothing doubled', async () => {
    const prefix = uniquePrefix('cluster-kill');
    const world = clusterWorld(cluster.url, prefix, 3);
    const webPort = await freePort();
    try {
      const alerts = await seedPushAlerts({ ...world, sink }, 500, 6, 'kill');
      const before = sink.received.length;
      const web = spawnHerald(['worker', 'web'], workerEnv(prefix, {
        REDIS_URL: cluster.url, SMTP_URL: 'smtp://127.0.0.1:1', HERALD_PORT: String(webPort), HERALD_PUSH_SHARDS: '3', LOG_LEVEL: 'info',
      }));
      const workers = [0, 1].map(() => pushWorker(cluster.url, prefix, sink, { HERALD_PUSH_SHARDS: '3' }));
      procs.push(web, ...workers);
      await Promise.all(workers.map(started));
      await waitFor(() => web.out.stdout.includes('Herald is running'), 30_000, 'the web process');
      const readyz = async () => {
        const res = await fetch(`http://127.0.0.1:${webPort}/readyz`);
        return { status: res.status, body: (await res.json()) as { checks: Record<string, string> } };
      };
      expect((await readyz()).status).toBe(200);

      await waitFor(() => sink.received.length - before >= 600, 60_000, 'pushes under way');
      const victimPort = await masterPortOfSlot(cluster, slotOfQueue('push'));
      const victim = cluster.node(victimPort);
      await victim.kill();
      const atKill = sink.received.length - before;
      expect(atKill).toBeLessThan(alerts.length);

      // Readiness names the master that is down, and the workers log it.
      let seen = { status: 0, body: { checks: {} as Record<string, string> } };
      await waitFor(async () => {
        seen = await readyz();
        return seen.status === 503 && String(seen.body.checks.redis).includes(`127.0.0.1:${victimPort}`);
      }, 20_000, '/readyz to report the down master');
      expect(seen.body.checks.redis).toMatch(new RegExp(`Redis Cluster state is \\w+ as seen from 127\\.0\\.0\\.1:\\d+: master down: 127\\.0\\.0\\.1:${victimPort} \\(.*slots \\d+-\\d+`));
      await waitFor(() => workers.some((w) => w.out.stdout.includes(`Redis Cluster node 127.0.0.1:${victimPort} is unreachable`)), 20_000, 'a worker to log the unreachable node');

      await victim.start();
      await cluster.waitHealthy(30_000);
      await waitFor(async () => (await readyz()).status === 200, 30_000, '/readyz ready again');
      await waitFor(async () => {
        // While slots move, this test's own reads may fail too: a failed look is just "not yet".
        const records = await ledgerRecords(world.ledger, alerts).catch(() => null);
        return records !== null && records.every((r) => r?.status === 'sent');
      }, 120_000, 'every alert sent after the restart');
      for (const p of [web, ...workers]) p.child.kill('SIGTERM');
      await Promise.all([web, ...workers].map((p) => p.exited));
      const { resent } = await expectAllSentOnce(world, alerts, sink, 2 * 16);
      if (process.env.CLUSTER_TEST_REPORT) process.stderr.write(`master kill: ${atKill} sent before the kill, ${resent} same-Topic resends\n`);
    } finally {
      await world.close();
    }
  }, 240_000);
});

describe.skipIf(!support.ok)('Herald on a 3-master Redis Cluster with one replica each', () => {
  let cluster: LocalCluster;
  let sink: Sink;
  const procs: HeraldProcess[] = [];

  beforeAll(async () => {
    cluster = await startLocalCluster({ masters: 3, replicas: 1 });
    await waitReplicasSynced(cluster);
    sink = await startPushSink({ decrypt: false, delayMs: 2 });
  }, 60_000);
  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await sink?.close();
    await cluster?.stop();
  });

  it('a master killed mid-work fails over to its replica, and the work finishes with nothing lost', async () => {
    const prefix = uniquePrefix('cluster-failover');
    const world = clusterWorld(cluster.url, prefix, 3);
    try {
      const alerts = await seedPushAlerts({ ...world, sink }, 500, 6, 'failover');
      const before = sink.received.length;
      const workers = [0, 1].map(() => pushWorker(cluster.url, prefix, sink, { HERALD_PUSH_SHARDS: '3' }));
      procs.push(...workers);
      await Promise.all(workers.map(started));
      await waitFor(() => sink.received.length - before >= 600, 60_000, 'pushes under way');
      const victimPort = await masterPortOfSlot(cluster, slotOfQueue('push'));
      const killAt = Date.now();
      await cluster.node(victimPort).kill();
      expect(sink.received.length - before).toBeLessThan(alerts.length);
      // The replica takes over the dead master's slots (node timeout 2 s, then an election).
      await waitFor(async () => (await masterPortOfSlot(cluster, slotOfQueue('push')).catch(() => victimPort)) !== victimPort, 30_000, 'a replica to take over the slots');
      await cluster.waitHealthy(30_000);

      await waitFor(async () => {
        // While slots move, this test's own reads may fail too: a failed look is just "not yet".
        const records = await ledgerRecords(world.ledger, alerts).catch(() => null);
        return records !== null && records.every((r) => r?.status === 'sent');
      }, 120_000, 'every alert sent after the failover');
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
      // Nothing lost: every alert reached its device. What may be redone, with the same Topic: the sends in flight
      // when the master died (2 workers x 16 jobs), and, replication being asynchronous, sends whose ledger write
      // the dead master acknowledged without passing it on. Both reached the push service just before the kill
      // (or after it); nothing delivered earlier is sent again.
      const devices = new Set(alerts.map((a) => a.deviceId));
      const first = firstDeliveries(sink, devices);
      const lastWords = [...first.values()].filter((at) => at >= killAt - REPLICATION_WINDOW_MS && at < killAt).length;
      const { resent, resentKeys } = await expectAllSentOnce(world, alerts, sink, 2 * 16 + lastWords);
      for (const k of resentKeys) expect(first.get(k)!).toBeGreaterThanOrEqual(killAt - REPLICATION_WINDOW_MS);
      if (process.env.CLUSTER_TEST_REPORT) process.stderr.write(`failover: ${resent} same-Topic resends, ${lastWords} pushes in the second before the kill\n`);
    } finally {
      await world.close();
    }
  }, 200_000);
});
