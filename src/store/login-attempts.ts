import type { RedisClient } from './redis.ts';

/** Owns the failed-admin-login counters: a fixed window per client address, so guessing the token is slow. */
const key = (prefix: string, ip: string) => `${prefix}:admin-fail:${ip}`;

export const ADMIN_FAILURE_WINDOW_SECONDS = 60;
export const ADMIN_FAILURE_LIMIT = 10;

export function createLoginAttempts(redis: RedisClient, prefix: string) {
  return {
    async blocked(ip: string): Promise<boolean> {
      return Number((await redis.get(key(prefix, ip))) ?? 0) >= ADMIN_FAILURE_LIMIT;
    },
    async fail(ip: string): Promise<void> {
      const k = key(prefix, ip);
      const n = await redis.incr(k);
      if (n === 1) await redis.expire(k, ADMIN_FAILURE_WINDOW_SECONDS);
    },
  };
}
