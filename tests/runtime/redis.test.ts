import { mkdtempSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { assessServer, checkRedisServer, createRedis } from '../../src/store/redis.ts';
import { ensureRedis, RedisUnavailableError } from '../../src/runtime/redis-launcher.ts';
import { freePort } from '../helpers/herald.ts';
import { TEST_REDIS_URL } from '../helpers/redis.ts';

const silent = pino({ level: 'silent' });
const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

describe('Redis server check', () => {
  it.each([
    [{ version: '6.0.16', maxmemoryPolicy: 'noeviction' }, 'error', /Redis 6\.0\.16 is too old: Herald needs Redis >= 6\.2\.0/],
    [{ version: '7.2.4', maxmemoryPolicy: 'allkeys-lru' }, 'warning', /maxmemory-policy is "allkeys-lru".*Set "maxmemory-policy noeviction"/],
    [{ version: '6.2.0', maxmemoryPolicy: 'noeviction' }, null, null],
    [{ version: '7.0.15', maxmemoryPolicy: undefined }, null, null],
  ] as const)('%o', (info, kind, message) => {
    const out = assessServer(info);
    if (kind === null) expect(out).toEqual({});
    else expect(out[kind]).toMatch(message!);
  });

  it('reads the real server and warns when eviction could drop alerts', async () => {
    const redis = createRedis(TEST_REDIS_URL);
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const info = await checkRedisServer(redis, log);
    expect(info.version).toMatch(/^\d+\.\d+\.\d+$/);
    if (info.maxmemoryPolicy === 'noeviction') expect(lines).toHaveLength(0);
    else expect(lines.join('')).toContain('noeviction');
    await redis.quit();
  });
});

describe('finding or starting Redis', () => {
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const s of stops) await s();
  });

  it('uses REDIS_URL as given', async () => {
    const r = await ensureRedis({ redisUrl: 'redis://example.test:6390', dataDir: '/nonexistent', log: silent });
    expect(r).toMatchObject({ url: 'redis://example.test:6390', started: false });
  });

  it('uses a Redis that already answers', async () => {
    const r = await ensureRedis({ dataDir: '/nonexistent', log: silent, defaultUrl: TEST_REDIS_URL });
    expect(r).toMatchObject({ url: TEST_REDIS_URL, started: false });
  });

  it.skipIf(!hasRedisServer)('starts redis-server with AOF on, data in the data directory, and stops it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-launch-'));
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const r = await ensureRedis({ dataDir, log: silent, defaultUrl: closed });
    stops.push(r.stop);
    expect(r.started).toBe(true);
    expect(r.url).not.toBe(closed);
    const client = new Redis(r.url);
    expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    expect(await client.config('GET', 'dir')).toEqual(['dir', join(dataDir, 'redis')]);
    await client.set('k', 'v');
    client.disconnect();
    await r.stop();
    expect(readdirSync(join(dataDir, 'redis'))).toContain('appendonlydir');
    const again = new Redis(r.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    again.on('error', () => undefined);
    await expect(again.connect()).rejects.toThrow();
  });

  it('says how to get Redis when none answers and redis-server is not installed', async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const err = await ensureRedis({ dataDir: tmpdir(), log: silent, defaultUrl: closed, binary: 'redis-server-not-installed' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toContain('apt-get install redis-server');
    expect((err as Error).message).toContain('docker compose up -d redis');
    expect((err as Error).message).toContain('REDIS_URL=');
  });
});
