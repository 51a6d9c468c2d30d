import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './herald.ts';

/** A redis-server of the test's own on a free loopback port, with AOF on and its data in a temp dir. */
export interface LocalRedis {
  port: number;
  dir: string;
  url: string;
  running(): boolean;
  /** SIGKILL: no chance to flush (AOF everysec may lose the last second). */
  kill(): Promise<void>;
  /** SHUTDOWN-like stop: SIGTERM makes Redis flush its AOF before exiting. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
}

export async function pingPort(port: number): Promise<boolean> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startLocalRedis(opts: { extraArgs?: string[]; dir?: string; port?: number } = {}): Promise<LocalRedis> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'herald-redis-'));
  let proc: ChildProcess | null = null;
  const exitOf = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null ? r() : p.once('exit', () => r())));
  const node: LocalRedis = {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    running: () => proc !== null,
    async start() {
      proc = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
          '--maxmemory-policy', 'noeviction', '--logfile', join(dir, 'redis.log'), ...(opts.extraArgs ?? [])],
        { stdio: 'ignore' },
      );
      await waitUntil(() => pingPort(port), 10_000, `redis-server on ${port}`);
    },
    async kill() {
      if (!proc) return;
      const p = proc;
      p.kill('SIGKILL');
      await exitOf(p);
      proc = null;
    },
    async stop() {
      if (!proc) return;
      const p = proc;
      p.kill('SIGTERM');
      await exitOf(p);
      proc = null;
    },
  };
  await node.start();
  return node;
}
