import { ConfigError, loadConfig, publicBaseUrl } from '../config/load.ts';
import { CatalogError } from '../config/catalog.ts';
import { checkRedisServer, createRedis } from '../store/redis.ts';
import { createHerald, ROLES, type Role } from './herald.ts';
import { createLogger } from './logger.ts';
import { ensureRedis, RedisUnavailableError } from './redis-launcher.ts';
import { resolveSecrets } from './secrets.ts';

/** Errors an operator can fix: print the message alone, no stack trace. */
function isOperatorError(err: unknown): err is Error {
  return err instanceof ConfigError || err instanceof CatalogError || err instanceof RedisUnavailableError;
}

/**
 * Runs the given roles in this process until SIGTERM/SIGINT: `npm start` runs them all, each file in
 * workers/ runs one. Shutdown lets in-flight jobs finish, within HERALD_SHUTDOWN_TIMEOUT_SECONDS.
 */
export async function runRoles(roles: readonly Role[]): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (isOperatorError(err)) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let redisEndpoint;
  let herald;
  try {
    redisEndpoint = await ensureRedis({ redisUrl: config.redisClusterNodes ?? config.redisUrl, dataDir: config.dataDir, log });
    const probe = createRedis(redisEndpoint.url, { name: 'herald-check' });
    try {
      await checkRedisServer(probe, log);
    } finally {
      probe.disconnect();
    }
    herald = createHerald({ config, redisUrl: redisEndpoint.url, secrets: resolveSecrets(config), log });
    await herald.start(roles);
    if (roles.includes('web')) {
      await herald.web.listen({ host: config.host, port: config.port });
      const url = publicBaseUrl(config);
      log.info({ url, roles }, 'Herald is running');
      process.stdout.write(`\nHerald is running. Settings page: ${url}/\n\n`);
    } else {
      log.info({ roles }, 'Herald worker is running');
    }
  } catch (err) {
    await redisEndpoint?.stop();
    if (isOperatorError(err)) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight jobs');
    const deadline = setTimeout(() => {
      log.error({ timeout_s: config.shutdownTimeoutSeconds }, 'shutdown deadline passed: exiting; unfinished jobs return to the queue');
      process.exit(1);
    }, config.shutdownTimeoutSeconds * 1000);
    deadline.unref();
    await herald.close();
    await redisEndpoint.stop();
    log.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

export function parseRole(name: string | undefined): Role | null {
  return (ROLES as readonly string[]).includes(name ?? '') ? (name as Role) : null;
}
