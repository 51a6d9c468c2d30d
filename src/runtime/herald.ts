import { readFileSync } from 'node:fs';
import type { Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { loadFeeds, loadTopics, type FeedConfig, type Topic } from '../config/catalog.ts';
import { publicBaseUrl } from '../config/load.ts';
import type { Config } from '../config/options.ts';
import { classifyStory, giveUpClassification } from '../classify/classify-story.ts';
import { createAnalysisCache } from '../classify/analysis-cache.ts';
import { createTopicRegistry } from '../classify/registry.ts';
import { createMailer } from '../deliver/email/mailer.ts';
import { sendEmailAlert } from '../deliver/email/send-alert.ts';
import { createUnsubscribeLinks, digestViewUrl } from '../deliver/email/signed-links.ts';
import { startDispatcher } from '../deliver/dispatcher.ts';
import { cachedStories } from '../deliver/story-cache.ts';
import { sendPushAlert, sendPushBatch } from '../deliver/push/send-alert.ts';
import { giveUpBundle, sendPushBundle } from '../deliver/push/send-bundle.ts';
import { giveUpAlert, giveUpBatch } from '../deliver/give-up.ts';
import { createWebPushSender } from '../deliver/push/web-push-sender.ts';
import { chooseKeyAgreement } from '../deliver/push/key-agreement.ts';
import { giveUpDigest, runDigestTick, sendDigest } from '../digest/send-digest.ts';
import { ingestFeed, ingestPushed, runPollTick } from '../ingest/poll.ts';
import { ingestRoutes } from '../ingest/routes.ts';
import { ingestSettingsFrom } from '../ingest/settings.ts';
import { systemClock, type Clock } from '../model.ts';
import type { GiveUpMap, HandlerMap, QueueName } from '../queue/jobs.ts';
import { allQueues, closeQueues, createEnqueue, createPushShards, createJobStateOf, createQueues, createRedelay, startQueueWorker } from '../queue/queues.ts';
import { consumedShards } from '../queue/shards.ts';
import { createCustomTopicStore, isCustomTopicId } from '../store/custom-topics.ts';
import { createDigestStore } from '../store/digests.ts';
import { createFeedStore } from '../store/feeds.ts';
import { createLedger } from '../store/ledger.ts';
import { createRecentStories } from '../store/recent-stories.ts';
import { createRedis, logClusterEvents } from '../store/redis.ts';
import { createStoryStore } from '../store/stories.ts';
import { createSubscriberStore } from '../store/subscribers.ts';
import { createStats } from '../store/stats.ts';
import { createMetrics } from '../ops/metrics.ts';
import { countDigest, countFeedFetch, createEvents, withLedgerEvents, withMailEvents, withPushEvents } from '../ops/events.ts';
import { buildWebApp } from '../web/server.ts';
import { opsRoutes } from '../web/routes/ops.ts';
import { adminRoutes } from '../web/admin/routes.ts';
import type { Secrets } from './secrets.ts';

export const ROLES = ['web', 'poller', 'classifier', 'push', 'email', 'digest'] as const;
export type Role = (typeof ROLES)[number];
type WorkerRole = Exclude<Role, 'web'>;

const QUEUE_OF_ROLE: Record<WorkerRole, QueueName> = { poller: 'feeds', classifier: 'classify', push: 'push', email: 'email', digest: 'digest' };
export const USER_AGENT = 'Herald/0.1 (+https://github.com/herald-alerts/herald; news alert feed poller)';
const DIGEST_TICK_MS = 60_000;
const POLL_SCHEDULER = 'feed-poll-tick';
const DIGEST_SCHEDULER = 'digest-tick';

export interface HeraldOptions {
  config: Config;
  redisUrl: string;
  secrets: Secrets;
  log: Logger;
  clock?: Clock;
  /** Defaults to the files named by the config. */
  topics?: readonly Topic[];
  feeds?: readonly FeedConfig[];
  /** A CA certificate push services' TLS certificates may chain to (tests pass their local one's). */
  pushCa?: string | Buffer;
}

/** Builds every dependency once and binds the job handlers; roles decide which workers run here. */
export function createHerald(opts: HeraldOptions) {
  const { config, log } = opts;
  const clock = opts.clock ?? systemClock;
  const prefix = config.redisPrefix;
  const topics = opts.topics ?? loadTopics(config.topicsFile);
  const feeds = opts.feeds ?? loadFeeds(config.feedsFile);
  const base = publicBaseUrl(config);
  const messageIdDomain = new URL(base).hostname;
  const links = createUnsubscribeLinks(base, opts.secrets.signingKey);

  const redis = createRedis(opts.redisUrl, { name: `${prefix}-state`, autoPipelining: true });
  const queueConnection = createRedis(opts.redisUrl, { forQueue: true, name: `${prefix}-queue` });
  logClusterEvents(redis, log, 'state');
  logClusterEvents(queueConnection, log, 'queue');
  const queues = createQueues(queueConnection, prefix);
  const pushShards = createPushShards(queues, queueConnection, prefix, config.pushShards);
  const everyQueue = allQueues(queues, pushShards);
  const enqueue = createEnqueue(queues, pushShards);
  // A Queue re-emits its connection's errors (a cluster failover, a master down): unlistened, one would end the process.
  for (const [name, q] of Object.entries(everyQueue)) q.on('error', (err) => log.error({ queue: name, err: err.message }, 'queue connection error'));

  const subscribers = createSubscriberStore(redis, prefix);
  const stories = createStoryStore(redis, prefix);
  const digests = createDigestStore(redis, prefix);
  const feedStore = createFeedStore(redis, prefix);
  const stats = createStats(redis, prefix, { onError: (err) => log.warn({ err: err.message }, 'stats write failed: these counts are lost') });
  const events = createEvents(stats, clock);
  const customs = createCustomTopicStore(redis, prefix);
  const recent = createRecentStories(redis, prefix);
  const queryLimits = { maxChars: config.queryMaxChars, maxTerms: config.queryMaxTerms };
  const storyLimits = { maxFieldChars: config.storyMaxChars };
  // Compiles the catalog now, so a bad catalog query stops the process at start with the topic named.
  const registry = createTopicRegistry({ catalog: topics, customs, limits: queryLimits, log: log.child({ role: 'classifier' }) });
  const topicName = (id: string) => registry.topicName(id) ?? (isCustomTopicId(id) ? 'Your alert' : id);
  /** Own alerts are named by readers in any process: refresh the names before a send that shows one. */
  const withTopicNames = async <T>(topicIds: string[], send: () => Promise<T>) => {
    if (topicIds.some(isCustomTopicId)) await registry.current();
    return send();
  };
  const dkim = config.dkimDomain && config.dkimSelector && config.dkimPrivateKey
    ? { domainName: config.dkimDomain, keySelector: config.dkimSelector, privateKey: config.dkimPrivateKey }
    : undefined;
  const mailer = withMailEvents(createMailer({
    url: config.smtpUrl, user: config.smtpUser, password: config.smtpPassword, from: config.mailFrom,
    poolSize: config.emailConcurrency, ratePerSecond: config.smtpRatePerSecond, dkim, clock,
  }), events);
  const pushCa = opts.pushCa ?? (config.pushCaFile ? readFileSync(config.pushCaFile) : undefined);
  const keyAgreement = chooseKeyAgreement(config.pushNativeEcdh);
  const sender = withPushEvents(createWebPushSender(opts.secrets.vapid, {
    ratePerSecondPerOrigin: config.pushRatePerSecond,
    keyAgreement: keyAgreement.agreement,
    ...(pushCa ? { ca: pushCa } : {}),
  }), events);

  // Fan-out reads one story once per subscriber: a short per-process cache turns that into once per story.
  const deliveryStories = cachedStories(stories, clock);
  // Every alert's end is counted (and a sent one's latency observed) on the ledger's own transition.
  const ledger = withLedgerEvents(createLedger(redis, prefix), events, async (id) => (await deliveryStories.get(id))?.firstSeenAt ?? null, clock);
  const pollDeps = {
    feeds: feedStore, stories, enqueue, clock, log: log.child({ role: 'poller' }),
    settings: ingestSettingsFrom(config, base, USER_AGENT),
  };
  const classifyDeps = {
    stories, subscribers, recent, enqueue, ledger, clock, log: log.child({ role: 'classifier' }),
    index: () => registry.current(), bestMinScore: config.bestMinScore, storyLimits,
    pushBatches: { shards: config.pushShards, size: config.pushBatchSize },
  };
  const jobState = createJobStateOf(queues, pushShards);
  const pushDeps = {
    subscribers, stories: deliveryStories, ledger, sender, enqueue, jobState, topicName, clock, log: log.child({ role: 'push' }),
    burstWindowMs: config.pushBurstWindowSeconds * 1000, inboxUrl: `${base}/`, jobLockMs: config.jobLockSeconds * 1000,
  };
  const hardBounceLimit = config.emailHardBounceLimit;
  const emailDeps = {
    subscribers, stories, ledger, mailer, topicName, links, messageIdDomain, hardBounceLimit, clock, log: log.child({ role: 'email' }),
    jobLockMs: config.jobLockSeconds * 1000,
  };
  const digestDeps = {
    subscribers, stories: deliveryStories, digests, ledger, mailer, enqueue, topicName, links, messageIdDomain, hardBounceLimit, clock, log: log.child({ role: 'digest' }),
    viewUrl: (subscriberId: string, localDate: string) => digestViewUrl(base, opts.secrets.signingKey, subscriberId, localDate),
    storiesPerTopic: config.digestStoriesPerTopic, logSettleMs: config.digestSettleSeconds * 1000,
  };

  const fetchFeedCounted = (feedId: string) => countFeedFetch(events, () => ingestFeed(pollDeps, feedId));

  const handlers: HandlerMap = {
    FeedPollTick: () => runPollTick(pollDeps),
    FeedFetch: (d) => fetchFeedCounted(d.feedId),
    StoryClassify: (d) => classifyStory(classifyDeps, d.storyId),
    AlertSendPush: (d, job) => withTopicNames([d.topicId], () => sendPushAlert(pushDeps, d, job.id ?? '')),
    AlertSendPushBatch: (d, job) => withTopicNames(d.alerts.map((a) => a.topicId), () => sendPushBatch(pushDeps, d, job.id ?? '')),
    AlertSendEmail: (d, job) => withTopicNames([d.topicId], () => sendEmailAlert(emailDeps, d, job.id ?? '')),
    PushBundleSend: (d, job) => sendPushBundle(pushDeps, d, job.id ?? ''),
    DigestTick: () => runDigestTick(digestDeps),
    // A digest may list own alerts: names must be current (one GET when nothing changed).
    DigestSend: async (d, job) => {
      await registry.current();
      return countDigest(events, d.dueAt, clock, () => sendDigest(digestDeps, d, job.id ?? ''));
    },
  };

  // Readers' previews and the console's backtests replay the same recent stories: analyzed once per process.
  const previewAnalyses = createAnalysisCache({ maxStories: config.previewMaxStories, storyLimits });

  /** Whether a delivery job of that id waits or runs (a push one in any shard: its record does not say which). */
  const jobExists = async (channel: 'push' | 'email', jobId: string) =>
    (await Promise.all((channel === 'push' ? pushShards : [queues.email]).map((q) => q.getJob(jobId)))).some((j) => j !== undefined);
  // A delivery BullMQ gives up on ends as failed in the ledger, with the attempts and the last error.
  const giveUp: GiveUpMap = {
    AlertSendPush: (d, job, reason) => giveUpAlert(pushDeps, d, 'push', job.id ?? '', reason),
    AlertSendEmail: (d, job, reason) => giveUpAlert(emailDeps, d, 'email', job.id ?? '', reason),
    PushBundleSend: (d, _job, reason) => giveUpBundle(pushDeps, d, reason),
    AlertSendPushBatch: (d, job, reason) => giveUpBatch(pushDeps, d, job.id ?? '', reason),
    StoryClassify: (d, _job, reason) => giveUpClassification({ ledger, jobExists, clock }, d.storyId, reason),
    DigestSend: (d, job, reason) => giveUpDigest(digestDeps, d, job.id ?? '', reason),
  };
  // For the give-ups no process recorded (it died at that moment): one sweep per queue per interval, any dispatcher.
  const giveUpSweep = (queue: Queue) => ({ redis: queueConnection, queue, everyMs: config.giveUpSweepSeconds * 1000 });

  const web = buildWebApp({
    redis, subscribers, digests, ledger, topics, clock, log, stories, enqueue, jobState, redelay: createRedelay(queues, pushShards),
    vapidPublicKey: opts.secrets.vapid.publicKey,
    signingKey: opts.secrets.signingKey,
    secureCookies: base.startsWith('https:'),
    mailer, pushSender: sender, baseUrl: base, prefix, pushServices: config.pushServices, maxPushDevices: config.maxPushDevicesPerSubscriber, trustProxy: config.trustProxy,
    limits: { writesPerMinute: config.rateLimitWritesPerMinute, emailsPerHour: config.rateLimitEmailsPerHour, previewsPerMinute: config.rateLimitPreviewsPerMinute },
    alerts: {
      customs, subscribers, stories, recent, ledger, clock, queryLimits, analyses: previewAnalyses,
      bestMinScore: config.bestMinScore,
      maxAlertsPerSubscriber: config.maxAlertsPerSubscriber,
      previewMaxDays: config.previewMaxDays,
      previewMaxStories: config.previewMaxStories,
      queryMaxMatchRatio: config.queryMaxMatchRatio,
    },
  });
  const metrics = createMetrics({ queues: everyQueue, stats, now: () => clock.now() });
  web.register(
    opsRoutes({
      redis, queues: everyQueue, metrics,
      schedulers: config.schedulers ? [{ queue: 'feeds', id: POLL_SCHEDULER }, { queue: 'digest', id: DIGEST_SCHEDULER }] : [],
    }),
  );
  web.register(
    adminRoutes({
      redis, prefix, queues: everyQueue, stats, adminToken: opts.secrets.adminToken, clock,
      console: {
        feeds: feedStore, stories, subscribers, ledger, recent, topics, poll: pollDeps, checkFeed: fetchFeedCounted,
        index: () => registry.current(), topicName, bestMinScore: config.bestMinScore, storyLimits, analyses: previewAnalyses,
        previewMaxDays: config.previewMaxDays, previewMaxStories: config.previewMaxStories,
        queues: { push: queues.push, email: queues.email },
      },
    }),
  );

  web.register(ingestRoutes, {
    feeds: feedStore, clock, maxBytes: config.fetchMaxBytes,
    pushFallbackMs: Math.min(config.websubFallbackPollSeconds, config.feedMaxIntervalSeconds) * 1000,
    minIntervalMs: config.feedMinIntervalSeconds * 1000,
    leaseSeconds: config.websubLeaseSeconds,
    ingest: (feedId: string, body: Buffer, contentType: string | null, baseUrl: string) => ingestPushed(pollDeps, feedId, body, contentType, baseUrl),
  });

  const workers: Worker[] = [];
  const concurrency: Record<WorkerRole, number> = {
    poller: config.pollConcurrency, classifier: 4, push: config.pushConcurrency, email: config.emailConcurrency, digest: config.emailConcurrency,
  };

  return {
    config, clock, redis, queueConnection, queues, pushShards, everyQueue, enqueue, handlers, web,
    stores: { subscribers, stories, ledger, digests, feeds: feedStore, stats, customs, recent },
    metrics,
    registry,
    previewAnalyses,

    /** Starts the workers of the given roles (web is served by the caller, which owns the port). */
    async start(roles: readonly Role[]) {
      if (roles.includes('push')) {
        log.info({ native: keyAgreement.native, ...(keyAgreement.reason ? { reason: keyAgreement.reason } : {}) },
          keyAgreement.native ? 'push encryption: native P-256 key agreement' : "push encryption: Node's ECDH");
      }
      for (const role of roles) {
        if (role === 'web') continue;
        const queue = QUEUE_OF_ROLE[role];
        const common = { connection: queueConnection, prefix, concurrency: concurrency[role], log: log.child({ role }), stats, now: () => clock.now() };
        if (queue === 'push') {
          // Each consumed shard gets its own worker with the configured concurrency: shards are independent queues.
          for (const shard of consumedShards(config.pushShards, config.pushShardsConsumed)) {
            workers.push(startDispatcher(queue, handlers, { ...common, lockSeconds: config.jobLockSeconds, shard, giveUp, giveUpSweep: giveUpSweep(pushShards[shard]!) }));
          }
        } else {
          workers.push(
            queue === 'email' || queue === 'digest'
              ? startDispatcher(queue, handlers, { ...common, lockSeconds: config.jobLockSeconds, giveUp, giveUpSweep: giveUpSweep(queues[queue]) })
              : startQueueWorker(queue, handlers, {
                  ...common,
                  // A classification given up on ends the records it opened without their jobs (giveUpClassification).
                  ...(queue === 'classify' ? { giveUp, giveUpSweep: giveUpSweep(queues.classify) } : {}),
                  // A killed poller or classifier has its fetch or fan-out taken over as soon as a dispatcher's would be.
                  workerOptions: { lockDuration: config.jobLockSeconds * 1000, stalledInterval: Math.max(1000, Math.floor((config.jobLockSeconds * 1000) / 2)) },
                }),
          );
        }
      }
      if (roles.includes('poller')) await feedStore.sync(feeds, clock.now());
      if (config.schedulers) {
        // Job schedulers live in Redis: however many processes run these roles, each tick fires once.
        if (roles.includes('poller')) {
          // Frequent ticks are cheap (only due feeds are touched) and let a host's next feed start soon after a slot frees.
          await queues.feeds.upsertJobScheduler(POLL_SCHEDULER, { every: Math.min(config.pollIntervalSeconds * 1000, 10_000) }, { name: 'FeedPollTick', data: {} });
        }
        if (roles.includes('digest')) {
          await queues.digest.upsertJobScheduler(DIGEST_SCHEDULER, { every: DIGEST_TICK_MS }, { name: 'DigestTick', data: {} });
        }
      }
    },

    /** Finishes in-flight jobs (or hands them back), then closes every connection. */
    async close() {
      // First, so jobs waiting out a push service's 429 pause (up to a minute) or the SMTP rate limit hand their
      // alerts back rather than send after SIGTERM, or keep the workers from closing until the shutdown deadline
      // kills the process with their records "sending".
      sender.stopWaiting?.();
      mailer.stopWaiting?.();
      // An SMTP server that took a message and never answers holds its send for nodemailer's 10-minute socket
      // timeout: the workers never closed, and the deadline killed the process (exit 1) with the record "sending".
      // Given up a little before that deadline, with time left for the rest of the close, the send hands its alert
      // back to its job's retry.
      const abandonAt = setTimeout(() => mailer.abandon?.(), abandonSendsAfterMs(config.shutdownTimeoutSeconds * 1000));
      try {
        await Promise.all(workers.map((w) => w.close()));
      } finally {
        clearTimeout(abandonAt);
      }
      await web.close();
      await closeQueues(queues, pushShards);
      mailer.close();
      sender.close();
      await stats.flush().catch((err: Error) => log.warn({ err: err.message }, 'stats flush at close failed'));
      await Promise.allSettled([redis.quit(), queueConnection.quit()]);
    },
  };
}
export type Herald = ReturnType<typeof createHerald>;

/** When, after SIGTERM, sends still in flight are given up: before the shutdown deadline, by a quarter of it up to 2 s. */
export function abandonSendsAfterMs(shutdownTimeoutMs: number): number {
  return shutdownTimeoutMs - Math.min(2000, shutdownTimeoutMs / 4);
}
