import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/herald.ts';
import { spawnHerald, waitFor } from '../helpers/processes.ts';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../helpers/redis.ts';

const herald = spawnHerald;

describe('herald start, as a new user runs it', () => {
  const prefix = uniquePrefix('start');
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    const redis = testRedis();
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it('serves the settings page and /healthz, generates VAPID keys into the data dir, and stops cleanly on SIGTERM', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'herald-start-')), '.herald');
    const feedsFile = join(dataDir, '..', 'feeds.json');
    writeFileSync(feedsFile, '{"feeds":[]}');
    const port = await freePort();
    // REDIS_URL unset on purpose: Herald finds the Redis answering on 127.0.0.1:6379 (the test Redis).
    const env: Record<string, string> = { HERALD_PORT: String(port), HERALD_REDIS_PREFIX: prefix, HERALD_DATA_DIR: dataDir, HERALD_FEEDS_FILE: feedsFile, LOG_LEVEL: 'warn' };
    if (TEST_REDIS_URL !== 'redis://127.0.0.1:6379') env.REDIS_URL = TEST_REDIS_URL;
    const proc = herald(['start'], env);
    const child = proc.child;
    children.push(child);
    const { out, exited } = proc;
    await waitFor(() => out.stdout.includes('Settings page:'), 20_000, 'the settings page URL');
    expect(out.stdout).toContain(`Settings page: http://localhost:${port}/`);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    expect(page).toContain('Allow notifications');
    expect(page).toContain('Time Settings');
    const { publicKey } = (await (await fetch(`http://127.0.0.1:${port}/api/push/public-key`)).json()) as { publicKey: string };
    expect(publicKey).toMatch(/^[A-Za-z0-9_-]{87}$/);
    expect(statSync(join(dataDir, 'vapid.json')).mode & 0o777).toBe(0o600);

    // The schedulers are registered once in Redis, not as timers in the process.
    const redis = testRedis();
    const schedulers = await redis.keys(`${prefix}:{*}:repeat:*`);
    await redis.quit();
    expect(schedulers.length).toBeGreaterThanOrEqual(2);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 40_000);

  it('stops with a message naming the variable and the fix when the config is invalid', async () => {
    const { out, exited } = herald(['start'], { HERALD_PORT: 'eighty', REDIS_URL: 'http://wrong' });
    expect(await exited).toBe(1);
    expect(out.stderr).toContain('HERALD_PORT="eighty" is invalid');
    expect(out.stderr).toContain('REDIS_URL="http://wrong" is invalid');
    expect(out.stderr).toContain('Fix:');
    expect(out.stderr).not.toMatch(/at .*\.ts:\d+/);
  });

  it('herald health exits 0 when Redis answers and 1 with the reason when it does not', async () => {
    const ok = herald(['health'], { REDIS_URL: TEST_REDIS_URL });
    expect(await ok.exited).toBe(0);
    const port = await freePort();
    const down = herald(['health'], { REDIS_URL: `redis://:hunter2@127.0.0.1:${port}` });
    expect(await down.exited).toBe(1);
    // The reason names the Redis, never its password.
    expect(down.out.stderr).toContain(`Redis at redis://:***@127.0.0.1:${port} does not answer`);
    expect(down.out.stderr).not.toContain('hunter2');
    // A configuration error is a message and status 2, not a stack trace.
    const wrong = herald(['health'], { REDIS_URL: 'http://wrong' });
    expect(await wrong.exited).toBe(2);
    expect(wrong.out.stderr).toContain('REDIS_URL="http://wrong" is invalid');
    expect(wrong.out.stderr).not.toMatch(/at .*\.ts:\d+/);
  }, 20_000);

  it('answers a usage error with exit status 2', async () => {
    const { out, exited } = herald(['worker', 'juggler'], {});
    expect(await exited).toBe(2);
    expect(out.stderr).toContain('unknown role "juggler"');
  });
});
