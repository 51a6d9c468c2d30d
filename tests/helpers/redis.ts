import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRedis, isCluster, isClusterTarget, scanKeys, type RedisClient } from '../../src/store/redis.ts';

/**
 * Tests use HERALD_TEST_REDIS_URL, else REDIS_URL when set (CI points it at the Redis it started), else the
 * local default. The cluster tests run whole test files again with HERALD_TEST_REDIS_URL naming a local cluster.
 */
export const TEST_REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A unique key prefix per test file run: tests never see or delete each other's data. */
export function uniquePrefix(name: string): string {
  return `test-${name}-${randomBytes(4).toString('hex')}`;
}

/** Deletes only the keys under the given prefix (SCAN on every master, never FLUSH). */
export async function deletePrefix(redis: RedisClient, prefix: string): Promise<number> {
  let deleted = 0;
  await scanKeys(redis, `${prefix}:*`, async (keys, node) => {
    // A multi-key UNLINK must stay in one slot on a cluster: one key per command there.
    if (isCluster(redis)) deleted += (await Promise.all(keys.map((k) => node.unlink(k)))).reduce((a, b) => a + b, 0);
    else deleted += await node.unlink(...keys);
  });
  return deleted;
}

export function testRedis(): RedisClient {
  return isClusterTarget(TEST_REDIS_URL) ? createRedis(TEST_REDIS_URL, { name: 'herald-test' }) : new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 3 });
}
