import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { jobIds } from '../../src/queue/jobs.ts';
import type { Enqueue } from '../../src/queue/queues.ts';
import type { Ledger } from '../../src/store/ledger.ts';
import type { StoryStore } from '../../src/store/stories.ts';
import type { SubscriberStore } from '../../src/store/subscribers.ts';
import { makeStory } from '../deliver/support/world.ts';
import type { startPushSink } from '../deliver/support/push-sink.ts';
import { createReader } from '../helpers/readers.ts';
import type { LocalCluster } from '../helpers/redis-cluster.ts';
import type { SlotAudit } from '../helpers/slot-audit.ts';

type PushSink = Awaited<ReturnType<typeof startPushSink>>;

/** Runs one vitest file in a child process against the given Redis (a cluster's seed list), with the slot audit on. */
export async function runTestFileOn(file: string, redisUrl: string): Promise<{ code: number | null; output: string; audits: SlotAudit[] }> {
  const auditDir = mkdtempSync(join(tmpdir(), 'herald-slot-audit-'));
  const child = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', file], {
    env: { ...process.env, HERALD_TEST_REDIS_URL: redisUrl, HERALD_TEST_SLOT_AUDIT: auditDir, VITEST: undefined, VITEST_POOL_ID: undefined, VITEST_WORKER_ID: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  const audits = readdirSync(auditDir).map((f) => JSON.parse(readFileSync(join(auditDir, f), 'utf8')) as SlotAudit);
  return { code, output, audits };
}

/** The master port serving a slot, as CLUSTER SLOTS reports it. */
export async function masterPortOfSlot(cluster: LocalCluster, slot: number): Promise<number> {
  const seed = cluster.nodes.find((n) => n.running())!;
  const c = new Redis({ port: seed.port, host: '127.0.0.1' });
  try {
    const ranges = (await c.cluster('SLOTS')) as unknown as [number, number, [string, number, ...unknown[]], ...unknown[]][];
    const hit = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!hit) throw new Error(`no master serves slot ${slot}`);
    return hit[2][1];
  } finally {
    c.disconnect();
  }
}

export const slotOfQueue = (name: string) => calculateSlot(`{${name}}`);

/** Every node writes each command to its AOF before answering: a master killed with SIGKILL loses nothing it acknowledged. */
export function fsyncAlways(cluster: LocalCluster) {
  for (const n of cluster.nodes) spawnSync('redis-cli', ['-p', String(n.port), 'CONFIG', 'SET', 'appendfsync', 'always']);
}

export interface SeededAlert {
  subscriberId: string;
  storyId: string;
  deviceId: string;
}

/** `readers` readers, each with one push device following "japan", and `perReader` stories: one AlertSendPush per pair. */
export async function seedPushAlerts(
  deps: { subscribers: SubscriberStore; stories: StoryStore; enqueue: Enqueue; sink: PushSink },
  readers: number,
  perReader: number,
  label: string,
): Promise<SeededAlert[]> {
  const now = Date.now();
  const storyList = [];
  for (let i = 0; i < perReader; i++) {
    const s = makeStory(now, { title: `${label} story ${i}` });
    await deps.stories.put(s);
    storyList.push(s);
  }
  const alerts: SeededAlert[] = [];
  for (let r = 0; r < readers; r += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, readers - r) }, async () => {
        const { id } = await createReader(deps.subscribers, { email: null, timeZone: 'UTC', digestTime: '08:00' }, now);
        await deps.subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
        const d = deps.sink.newDevice();
        await deps.subscribers.addPushSubscription(id, d.subscription, now);
        return { id, deviceId: d.id };
      }),
    );
    for (const { id, deviceId } of batch) for (const s of storyList) alerts.push({ subscriberId: id, storyId: s.id, deviceId });
  }
  for (let i = 0; i < alerts.length; i += 1000) {
    await deps.enqueue.bulk('AlertSendPush', alerts.slice(i, i + 1000).map((a) => ({
      data: { subscriberId: a.subscriberId, storyId: a.storyId, topicId: 'japan', why: 'Matched: Japan' },
      opts: { jobId: jobIds.alert(a.subscriberId, a.storyId, 'push'), backoff: { type: 'delivery', delay: 300 } },
    })));
  }
  return alerts;
}

/** Ledger records of every alert, read in parallel batches. */
export async function ledgerRecords(ledger: Ledger, alerts: SeededAlert[]) {
  const out = [];
  for (let i = 0; i < alerts.length; i += 2000) {
    out.push(...(await Promise.all(alerts.slice(i, i + 2000).map((a) => ledger.get(a.subscriberId, a.storyId, 'push')))));
  }
  return out;
}

/** How many times the push service accepted each (device, story): the Topic header carries the story id. */
export function deliveriesOf(sink: PushSink): Map<string, number> {
  const shown = new Map<string, number>();
  for (const p of sink.received) {
    const k = `${p.deviceId}/${String(p.headers.topic)}`;
    shown.set(k, (shown.get(k) ?? 0) + 1);
  }
  return shown;
}

/** Waits until every replica reports its link to its master up (a fresh cluster's first sync takes a moment). */
export async function waitReplicasSynced(cluster: LocalCluster, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = cluster.nodes.map((n) => spawnSync('redis-cli', ['-p', String(n.port), 'INFO', 'replication'], { encoding: 'utf8' }).stdout);
    const replicas = states.filter((s) => s.includes('role:slave'));
    if (replicas.length > 0 && replicas.every((s) => s.includes('master_link_status:up'))) return;
    if (Date.now() > deadline) throw new Error(`replicas not in sync after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
