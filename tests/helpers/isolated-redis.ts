import { afterAll } from 'vitest';
import { createRedis, type RedisClient } from '../../src/store/redis.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from './redis.ts';

/**
 * A Redis client and a key prefix of the test file's own, cleaned up after its tests: the prefix's keys
 * deleted (never anything else), the client closed. Call at the top of a file or of a describe block.
 * Apart from redis.ts because the benchmarks use that file outside vitest.
 */
export function isolatedRedis(name: string): { redis: RedisClient; prefix: string } {
  const redis = createRedis(TEST_REDIS_URL);
  const prefix = uniquePrefix(name);
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });
  return { redis, prefix };
}
