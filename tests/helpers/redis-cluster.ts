import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './herald.ts';
import { startLocalRedis, waitUntil, type LocalRedis } from './redis-server.ts';

export interface LocalCluster {
  nodes: LocalRedis[];
  /** Comma-separated seed list, as REDIS_URL takes it. */
  url: string;
  node(port: number): LocalRedis;
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Whether this redis-server can run in cluster mode and redis-cli can create one. */
export function clusterSupported(): { ok: boolean; why?: string } {
  if (spawnSync('redis-server', ['--version']).status !== 0) return { ok: false, why: 'redis-server is not installed' };
  const help = spawnSync('redis-cli', ['--cluster', 'help'], { encoding: 'utf8' });
  if (!`${help.stdout}${help.stderr}`.includes('create')) return { ok: false, why: 'redis-cli lacks --cluster support' };
  return { ok: true };
}

async function clusterOk(port: number): Promise<boolean> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.cluster('INFO')).includes('cluster_state:ok');
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

/** A Redis Cluster on loopback: `masters` masters, each with `replicas` replicas, on free ports, AOF on. */
export async function startLocalCluster(opts: { masters?: number; replicas?: number } = {}): Promise<LocalCluster> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 0;
  const root = mkdtempSync(join(tmpdir(), 'herald-cluster-'));
  const nodes: LocalRedis[] = [];
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const dir = join(root, `node-${i}`);
      mkdirSync(dir);
      // The bus port is picked free too: by default it is port + 10000, which another process may hold (or be above 65535).
      const busPort = await freePort();
      nodes.push(await startLocalRedis({ dir, extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--cluster-port', String(busPort)] }));
    }
  } catch (err) {
    // A node that failed to start must not leave the others running.
    await Promise.all(nodes.map((n) => n.kill()));
    throw err;
  }
  const create = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
    { encoding: 'utf8' },
  );
  if (create.status !== 0) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  }
  const cluster: LocalCluster = {
    nodes,
    url: nodes.map((n) => n.url).join(','),
    node: (port) => nodes.find((n) => n.port === port)!,
    waitHealthy: (timeoutMs = 20_000) =>
      waitUntil(async () => (await Promise.all(nodes.filter((n) => n.running()).map((n) => clusterOk(n.port)))).every(Boolean), timeoutMs, 'cluster_state:ok'),
    stop: async () => void (await Promise.all(nodes.map((n) => n.kill()))),
  };
  await cluster.waitHealthy();
  return cluster;
}
