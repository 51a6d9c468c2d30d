import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pino from 'pino';
import { CatalogError, loadTopics } from '../config/catalog.ts';
import { createTopicRegistry } from '../classify/registry.ts';
import { ConfigError, hideUrlPasswords, loadConfig } from '../config/load.ts';
import { isCustomTopicId, createCustomTopicStore } from '../store/custom-topics.ts';
import { createLedger } from '../store/ledger.ts';
import { createRecentStories } from '../store/recent-stories.ts';
import { createStoryStore } from '../store/stories.ts';
import { createRedis, isCluster, isClusterTarget, redisHealth, type RedisClient } from '../store/redis.ts';
import { createSubscriberStore } from '../store/subscribers.ts';
import { renderTraceText, traceAlert, TraceLookupError } from './trace.ts';

export const TRACE_USAGE = `Usage: herald trace --subscriber X --story Y [--json]

  Explains the path of one story to one reader: ingested when, matched which topics and why, which
  alerts were created and what each channel answered, or the exact reason none was sent.

  --subscriber X   the reader: a confirmed email address or a subscriber id
  --story Y        the story: its URL (as the feed linked it) or its id
  --json           the trace as one JSON object

  Exit status: 0 with a trace; 1 when the reader or story is not found or Redis does not answer;
  2 on a usage or configuration error.
`;

export interface TraceIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  now: () => number;
}

export async function runTraceCommand(argv: string[], io: TraceIo): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      strict: true,
      options: { subscriber: { type: 'string' }, story: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    io.err(`herald trace: ${(err as Error).message}\n\n${TRACE_USAGE}`);
    return 2;
  }
  if (args.values.help) {
    io.out(TRACE_USAGE);
    return 0;
  }
  const { subscriber, story } = args.values;
  if (!subscriber?.trim() || !story?.trim()) {
    io.err(`herald trace: give both --subscriber and --story\n\n${TRACE_USAGE}`);
    return 2;
  }
  let config;
  let topics;
  try {
    config = loadConfig(io.env);
    topics = loadTopics(config.topicsFile);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof CatalogError) {
      io.err(`herald trace: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // The same Redis the workers use: a cluster's nodes when they are configured.
  const target = config.redisClusterNodes ?? config.redisUrl ?? 'redis://127.0.0.1:6379';
  const redis: RedisClient = isClusterTarget(target)
    ? createRedis(target, { name: 'herald-trace' })
    : new Redis(target, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 3000 });
  redis.on('error', () => undefined);
  try {
    await (isCluster(redis) ? redisHealth(redis, 3000) : redis.connect());
  } catch (err) {
    io.err(`herald trace: Redis does not answer at ${hideUrlPasswords(target)} (${(err as Error).message}). Start Herald's Redis or set REDIS_URL.\n`);
    redis.disconnect();
    return 1;
  }
  try {
    const prefix = config.redisPrefix;
    const registry = createTopicRegistry({
      catalog: topics, customs: createCustomTopicStore(redis, prefix),
      limits: { maxChars: config.queryMaxChars, maxTerms: config.queryMaxTerms }, log: pino({ level: 'silent' }),
    });
    const trace = await traceAlert(
      {
        subscribers: createSubscriberStore(redis, prefix), stories: createStoryStore(redis, prefix), ledger: createLedger(redis, prefix),
        recent: createRecentStories(redis, prefix), index: () => registry.current(),
        topicName: (id) => registry.topicName(id) ?? (isCustomTopicId(id) ? 'Own alert' : id),
        bestMinScore: config.bestMinScore, storyLimits: { maxFieldChars: config.storyMaxChars }, now: io.now(),
      },
      { subscriber, story },
    );
    io.out(args.values.json ? `${JSON.stringify(trace, null, 2)}\n` : renderTraceText(trace));
    return 0;
  } catch (err) {
    if (err instanceof TraceLookupError) {
      io.err(`herald trace: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await redis.quit();
  }
}
