import { timingSafeEqual } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { redisHealth, type RedisClient } from '../../store/redis.ts';
import type { Metrics } from '../../ops/metrics.ts';

export interface OpsDeps {
  redis: RedisClient;
  queues: Readonly<Record<string, Queue>>;
  metrics: Metrics;
  /** Job scheduler ids that must exist in Redis for the deployment to be ready ([] when schedulers are off). */
  schedulers: readonly { queue: string; id: string }[];
}

/** Constant-time comparison, so response timing tells nothing about the token. */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The admin token as a Bearer token, or as the password of HTTP Basic auth (what a browser can send). */
export function adminTokenFrom(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Bearer ')) return header.slice(7);
  if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    return decoded.slice(decoded.indexOf(':') + 1);
  }
  return undefined;
}

/** Queue connections retry for ever while a cluster is down: a readiness probe must answer anyway. */
const CHECK_TIMEOUT_MS = 3000;

async function check(name: string, fn: () => Promise<unknown>): Promise<[string, string]> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS))),
    ]);
    return [name, 'ok'];
  } catch (err) {
    return [name, (err as Error).message];
  } finally {
    clearTimeout(timer);
  }
}

/** /readyz and /metrics (the console and Bull Board are in src/web/admin, behind the admin token). */
export function opsRoutes(deps: OpsDeps): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    app.get('/readyz', async (_req, reply) => {
      const results = await Promise.all([
        // On a cluster this names a down master and its slots, not just whichever node answered a PING.
        check('redis', () => redisHealth(deps.redis)),
        check('queues', () => Promise.all(Object.values(deps.queues).map((q) => q.getJobCounts('waiting')))),
        check('schedulers', async () => {
          for (const s of deps.schedulers) {
            const found = await deps.queues[s.queue]?.getJobScheduler(s.id);
            if (!found) throw new Error(`job scheduler "${s.id}" is not registered: is a ${s.queue === 'feeds' ? 'poller' : 'digest'} process running?`);
          }
        }),
      ]);
      const checks = Object.fromEntries(results);
      const ready = results.every(([, v]) => v === 'ok');
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
    });

    app.get('/metrics', async (_req, reply) => reply.type(deps.metrics.contentType).send(await deps.metrics.render()));

  };
}
