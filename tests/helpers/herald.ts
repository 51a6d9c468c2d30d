import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import webpush from 'web-push';
import type { FeedConfig, Topic } from '../../src/config/catalog.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Clock } from '../../src/model.ts';
import { createHerald, ROLES, type Herald } from '../../src/runtime/herald.ts';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from './redis.ts';
import { auditSlots, newSlotAudit } from './slot-audit.ts';

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

/** The signing key of every test Herald, for tests that make their own signed links. */
export const SIGNING_KEY = 'test-signing-key-0123456789abcdef0123456789';

export interface TestHerald {
  herald: Herald;
  baseUrl: string;
  prefix: string;
  /** Resolves when every queue has nothing waiting, delayed or active. */
  waitIdle(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A whole Herald in this process (every worker role plus the web server on a real port), under its own key prefix. */
export async function startTestHerald(opts: {
  name: string;
  clock: Clock;
  smtpUrl: string;
  feeds?: FeedConfig[];
  topics?: Topic[];
  /** The local push service's CA certificate. */
  pushCa?: string;
  /** Origin of the local push service (https://127.0.0.1:<port>), added to the accepted push services. */
  pushOrigin?: string;
  env?: Record<string, string>;
  /** The logger Herald writes to (tests that read its log lines pass one on an in-memory stream); else silent, or TEST_LOG_LEVEL. */
  log?: Logger;
}): Promise<TestHerald> {
  const prefix = uniquePrefix(opts.name);
  const port = await freePort();
  const vapid = webpush.generateVAPIDKeys();
  const config = loadConfig({
    REDIS_URL: TEST_REDIS_URL,
    HERALD_REDIS_PREFIX: prefix,
    HERALD_PORT: String(port),
    HERALD_PUBLIC_URL: `http://127.0.0.1:${port}`,
    HERALD_DATA_DIR: mkdtempSync(join(tmpdir(), 'herald-test-')),
    HERALD_SCHEDULERS: 'false',
    // Test feeds are served from 127.0.0.1, which the SSRF guard refuses by default.
    HERALD_ALLOW_PRIVATE_FEEDS: 'true',
    SMTP_URL: opts.smtpUrl,
    VAPID_PUBLIC_KEY: vapid.publicKey,
    VAPID_PRIVATE_KEY: vapid.privateKey,
    HERALD_SIGNING_KEY: SIGNING_KEY,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // Every test client is 127.0.0.1: the rate limits get their own tests with low values.
    HERALD_RATE_LIMIT_WRITES_PER_MINUTE: '10000',
    HERALD_RATE_LIMIT_EMAILS_PER_HOUR: '1000',
    HERALD_RATE_LIMIT_PREVIEWS_PER_MINUTE: '10000',
    ...(opts.pushOrigin ? { HERALD_PUSH_SERVICES: opts.pushOrigin } : {}),
    ...opts.env,
  });
  const herald = createHerald({
    config,
    redisUrl: TEST_REDIS_URL,
    secrets: { vapid: { publicKey: vapid.publicKey, privateKey: vapid.privateKey, subject: config.vapidSubject }, signingKey: config.signingKey!, adminToken: 'test-admin-token-0123456789abcdef' },
    log: opts.log ?? pino({ level: config.logLevel }),
    clock: opts.clock,
    feeds: opts.feeds ?? [],
    ...(opts.topics ? { topics: opts.topics } : {}),
    pushCa: opts.pushCa,
  });
  // HERALD_TEST_SLOT_AUDIT=<dir>: record every multi-key command, script and MULTI of this Herald's state and
  // queue connections, and write what was found there on close (tests/cluster/key-layout.test.ts reads it).
  const auditDir = process.env.HERALD_TEST_SLOT_AUDIT;
  const audit = newSlotAudit();
  if (auditDir) {
    auditSlots(herald.redis, audit);
    auditSlots(herald.queueConnection, audit);
  }
  await herald.start(ROLES);
  await herald.web.listen({ host: '127.0.0.1', port });

  const waitIdle = async (timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    let quietRounds = 0;
    // Two quiet looks in a row: a job finishing can enqueue the next stage's job just after a look.
    while (quietRounds < 2) {
      const queues = Object.values(herald.everyQueue);
      const counts = await Promise.all(queues.map((q) => q.getJobCounts('waiting', 'active', 'prioritized', 'waiting-children')));
      // Delayed jobs count as work, except the next tick a job scheduler always keeps waiting.
      const delayed = await Promise.all(queues.map((q) => q.getDelayed()));
      const busy =
        counts.reduce((n, c) => n + Object.values(c).reduce((a, b) => a + b, 0), 0) +
        delayed.flat().filter((j) => !j.id?.startsWith('repeat:')).length;
      quietRounds = busy === 0 ? quietRounds + 1 : 0;
      if (Date.now() > deadline) throw new Error(`queues still busy after ${timeoutMs} ms: ${JSON.stringify(counts)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  return {
    herald,
    baseUrl: `http://127.0.0.1:${port}`,
    prefix,
    waitIdle,
    async close() {
      await herald.close();
      if (auditDir) writeFileSync(join(auditDir, `${prefix}.json`), JSON.stringify(audit));
      const redis = testRedis();
      await deletePrefix(redis, prefix);
      await redis.quit();
    },
  };
}
