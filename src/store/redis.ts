import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/**
 * The one place Herald creates Redis connections. BullMQ needs `maxRetriesPerRequest: null` on the
 * connections its workers block on; state connections keep ioredis's default so a dead Redis
 * surfaces as an error instead of a hang.
 */
export function createRedis(url: string, opts: { forQueue?: boolean; name?: string; autoPipelining?: boolean } = {}): Redis {
  const options: RedisOptions = {
    connectionName: opts.name ?? 'herald',
    lazyConnect: false,
    enableReadyCheck: true,
    ...(opts.forQueue ? { maxRetriesPerRequest: null } : {}),
    // Commands issued in the same tick by many concurrent jobs go out in one write: at fan-out volume the
    // per-command socket writes otherwise cost more CPU than the commands. Never on a blocking connection.
    ...(opts.autoPipelining && !opts.forQueue ? { enableAutoPipelining: true } : {}),
  };
  return new Redis(url, options);
}

export interface RedisServerInfo {
  version: string;
  maxmemoryPolicy: string | undefined;
}

export const MIN_REDIS_VERSION = '6.2.0';

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export async function readServerInfo(redis: Redis): Promise<RedisServerInfo> {
  const info = await redis.info('server');
  const version = /redis_version:([\d.]+)/.exec(info)?.[1] ?? '0.0.0';
  let maxmemoryPolicy: string | undefined;
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    maxmemoryPolicy = reply[1];
  } catch {
    // Managed Redis services often disable CONFIG; the warning below then cannot be checked.
    maxmemoryPolicy = undefined;
  }
  return { version, maxmemoryPolicy };
}

/** Throws when Redis is too old for BullMQ; warns when eviction could silently drop queued alerts. */
export function assessServer(info: RedisServerInfo): { error?: string; warning?: string } {
  if (compareVersions(info.version, MIN_REDIS_VERSION) < 0) {
    return { error: `Redis ${info.version} is too old: Herald needs Redis >= ${MIN_REDIS_VERSION} (BullMQ uses its commands). Upgrade Redis.` };
  }
  if (info.maxmemoryPolicy !== undefined && info.maxmemoryPolicy !== 'noeviction') {
    return {
      warning: `Redis maxmemory-policy is "${info.maxmemoryPolicy}": under memory pressure Redis may evict queued alerts and delivery records. Set "maxmemory-policy noeviction".`,
    };
  }
  return {};
}

export async function checkRedisServer(redis: Redis, log: Logger): Promise<RedisServerInfo> {
  const info = await readServerInfo(redis);
  const { error, warning } = assessServer(info);
  if (error) throw new Error(error);
  if (warning) log.warn({ redis_version: info.version, maxmemory_policy: info.maxmemoryPolicy }, warning);
  return info;
}
