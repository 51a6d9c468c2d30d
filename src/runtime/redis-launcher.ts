import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface RedisEndpoint {
  url: string;
  /** Stops the Redis that Herald started itself; a no-op for one it found. */
  stop(): Promise<void>;
  started: boolean;
}

export class RedisUnavailableError extends Error {
  override name = 'RedisUnavailableError';
}

const DEFAULT_URL = 'redis://127.0.0.1:6379';

async function answers(url: string, timeoutMs = 1000): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no free port'))));
    });
  });
}

function hasBinary(bin: string): boolean {
  return spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Finds the Redis Herald should use: REDIS_URL when set; else one answering on 127.0.0.1:6379; else a
 * redis-server from PATH started on a free port with AOF on and its data under the data directory.
 */
export async function ensureRedis(opts: {
  redisUrl?: string;
  dataDir: string;
  log: Logger;
  binary?: string;
  /** Where to look for an already running Redis (tests point it at a closed port). */
  defaultUrl?: string;
}): Promise<RedisEndpoint> {
  const noop = async () => undefined;
  if (opts.redisUrl) return { url: opts.redisUrl, stop: noop, started: false };
  const defaultUrl = opts.defaultUrl ?? DEFAULT_URL;
  if (await answers(defaultUrl)) {
    opts.log.info({ url: defaultUrl }, `using the Redis answering at ${defaultUrl}`);
    return { url: defaultUrl, stop: noop, started: false };
  }
  const binary = opts.binary ?? 'redis-server';
  if (!hasBinary(binary)) {
    throw new RedisUnavailableError(
      `Herald needs Redis, and none answers at ${defaultUrl} and no ${binary} is on PATH.\n` +
        '  Fix one of:\n' +
        '  - install it: sudo apt-get install redis-server   (Debian/Ubuntu)\n' +
        '  - run one in Docker: docker compose up -d redis\n' +
        '  - point Herald at yours: REDIS_URL=redis://host:6379 npm start',
    );
  }
  const dir = resolve(join(opts.dataDir, 'redis'));
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child: ChildProcess = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec',
      '--maxmemory-policy', 'noeviction', '--save', '', '--daemonize', 'no', '--logfile', join(dir, 'redis.log')],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 10_000;
  while (!(await answers(url, 300))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new RedisUnavailableError(`redis-server did not start on port ${port}; see ${join(dir, 'redis.log')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  opts.log.info({ url, dir }, 'started redis-server (AOF on) for Herald');
  return {
    url,
    started: true,
    stop: () =>
      new Promise<void>((res) => {
        if (exited) return res();
        child.once('exit', () => res());
        // SIGTERM makes Redis flush its AOF before exiting.
        child.kill('SIGTERM');
      }),
  };
}
