import type { Job, JobsOptions } from 'bullmq';

/**
 * The one job catalog. Every job Herald runs is named here with its payload; payloads carry ids,
 * never copies of records, so a retried job reads the current state.
 */
export interface JobCatalog {
  /** Scheduler tick: enqueue a FeedFetch for every feed whose next check is due. */
  FeedPollTick: Record<string, never>;
  FeedFetch: { feedId: string };
  StoryClassify: { storyId: string };
  AlertSendPush: { subscriberId: string; storyId: string; topicId: string; why: string };
  /**
   * Several push alerts of one story, all of one push shard: the classifier's fan-out unit. Each alert keeps
   * its own ledger record; an alert that must be retried leaves the batch as an AlertSendPush of its own.
   */
  AlertSendPushBatch: { storyId: string; alerts: PushBatchAlert[] };
  AlertSendEmail: { subscriberId: string; storyId: string; topicId: string; why: string };
  /** One notification for the pushes held by quiet hours or a burst, sent when the window ends. */
  PushBundleSend: { subscriberId: string; bundleId: string };
  /** Scheduler tick: enqueue a DigestSend for every subscriber whose local digest time has passed. */
  DigestTick: Record<string, never>;
  DigestSend: { subscriberId: string; localDate: string; dueAt: number };
}
export type JobName = keyof JobCatalog;
export type PushBatchAlert = { subscriberId: string; topicId: string; why: string };

export const QUEUE_NAMES = ['feeds', 'classify', 'push', 'email', 'digest'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

export const QUEUE_OF: { readonly [N in JobName]: QueueName } = {
  FeedPollTick: 'feeds',
  FeedFetch: 'feeds',
  StoryClassify: 'classify',
  AlertSendPush: 'push',
  AlertSendPushBatch: 'push',
  AlertSendEmail: 'email',
  PushBundleSend: 'push',
  DigestTick: 'digest',
  DigestSend: 'digest',
};

export type HeraldJob<N extends JobName> = Job<JobCatalog[N], unknown, N>;
export type Handler<N extends JobName> = (data: JobCatalog[N], job: HeraldJob<N>) => Promise<unknown>;
/** A missing handler is a compile error. */
export type HandlerMap = { [N in JobName]: Handler<N> };
/**
 * What to record when BullMQ gives up on a job (its attempts used up, a permanent error, stalled too often): a
 * delivery's ledger record must end as failed rather than wait as "queued" for a retry that never comes.
 * `reason` says how many attempts there were and the last error.
 */
export type GiveUpHandler<N extends JobName> = (data: JobCatalog[N], job: HeraldJob<N>, reason: string) => Promise<unknown>;
export type GiveUpMap = { [N in JobName]?: GiveUpHandler<N> };

/** BullMQ forbids ':' in custom ids; '-' is safe because every part is base64url or hex without '-'. */
const safe = (part: string) => part.replace(/[^A-Za-z0-9_]/g, '_');

const alert = (subscriberId: string, storyId: string, channel: 'push' | 'email') => `alert-${safe(subscriberId)}-${safe(storyId)}-${channel}`;

/** Deterministic job ids: adding the same logical job twice is a no-op while the first one is kept. */
export const jobIds = {
  feedFetch: (feedId: string) => `fetch-${safe(feedId)}`,
  storyClassify: (storyId: string) => `classify-${safe(storyId)}`,
  alert,
  /** A push alert's job of its own out of a batch, the n-th after earlier ones started (`queueAlone`): `alert`, then `-<n>`. */
  pushAlone: (subscriberId: string, storyId: string, n: number) => (n === 0 ? alert(subscriberId, storyId, 'push') : `${alert(subscriberId, storyId, 'push')}-${n}`),
  /** A story's n-th push batch on one shard. */
  pushBatch: (storyId: string, shard: number, n: number) => `pushbatch-${safe(storyId)}-${shard}-${n}`,
  digest: (subscriberId: string, localDate: string) => `digest-${safe(subscriberId)}-${localDate}`,
  bundle: (subscriberId: string, bundleId: string) => `bundle-${safe(subscriberId)}-${safe(bundleId)}`,
};

const DAY = 24 * 60 * 60;
/** Failed delivery jobs are kept this long (seconds): the give-up sweep's first look goes as far back. */
export const FAILED_DELIVERY_KEPT_SECONDS = 14 * DAY;
/** Retries with exponential backoff for transient failures; kept jobs let deterministic ids dedupe re-adds. */
export const DEFAULT_JOB_OPTIONS: { readonly [N in JobName]: JobsOptions } = {
  FeedPollTick: { removeOnComplete: true, removeOnFail: 100 },
  // Removed when it ends, either way, so the next poll can fetch the same feed again under the same id: a failed
  // job kept for a day made every later add a no-op, so a feed that failed once was not fetched for a day, and each
  // tick's host slot for it was held until its lease ran out. The failure itself is kept on the feed's state.
  FeedFetch: { attempts: 1, removeOnComplete: true, removeOnFail: true },
  StoryClassify: { attempts: 5, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: { age: DAY }, removeOnFail: { age: 7 * DAY } },
  // 'delivery': exponential with jitter that honours Retry-After (src/deliver/retry.ts), registered by the dispatchers.
  AlertSendPush: { attempts: 8, backoff: { type: 'delivery', delay: 5000 }, removeOnComplete: { age: 3 * DAY }, removeOnFail: { age: FAILED_DELIVERY_KEPT_SECONDS } },
  // A batch fails as a whole only when Redis does (each alert's own failures end in the ledger or leave as
  // single jobs); retried, its ledger claims make every alert already ended a no-op.
  AlertSendPushBatch: { attempts: 8, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: { age: 3 * DAY }, removeOnFail: { age: FAILED_DELIVERY_KEPT_SECONDS } },
  AlertSendEmail: { attempts: 8, backoff: { type: 'delivery', delay: 5000 }, removeOnComplete: { age: 3 * DAY }, removeOnFail: { age: FAILED_DELIVERY_KEPT_SECONDS } },
  PushBundleSend: { attempts: 8, backoff: { type: 'delivery', delay: 5000 }, removeOnComplete: { age: 3 * DAY }, removeOnFail: { age: FAILED_DELIVERY_KEPT_SECONDS } },
  DigestTick: { removeOnComplete: true, removeOnFail: 100 },
  DigestSend: { attempts: 10, backoff: { type: 'delivery', delay: 10000 }, removeOnComplete: { age: 3 * DAY }, removeOnFail: { age: FAILED_DELIVERY_KEPT_SECONDS } },
};
