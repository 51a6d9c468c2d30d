import { z } from 'zod';

/**
 * The one declaration of every setting Herald reads from the environment.
 * README's configuration table is generated from this list (`herald config table`).
 */
export interface OptionSpec {
  /** Environment variable name. */
  env: string;
  /** Key in the parsed Config object. */
  key: string;
  schema: z.ZodType;
  /** Default as the operator would write it in the environment; undefined = no default. */
  default?: string;
  /** Secrets may also come from `<ENV>_FILE` and are never logged. */
  secret?: boolean;
  description: string;
  /** What to do when the value is wrong: shown with the validation error. */
  fix: string;
}

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));
/** One Redis URL, or several (comma-separated) naming the seed nodes of a Redis Cluster. */
const redisTarget = z.string().refine(
  (v) =>
    v.split(',').map((s) => s.trim()).filter(Boolean).length > 0 &&
    v.split(',').map((s) => s.trim()).filter(Boolean).every((entry) => {
      try {
        return ['redis:', 'rediss:'].includes(new URL(entry).protocol);
      } catch {
        return false;
      }
    }),
  { message: 'must be a URL starting with redis:// or rediss://, or several separated by commas (cluster nodes)' },
);
const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );

export const OPTIONS = [
  {
    env: 'REDIS_URL',
    key: 'redisUrl',
    schema: redisTarget.optional(),
    description:
      'Redis to use. Several URLs separated by commas: the seed nodes of a Redis Cluster. Unset: use 127.0.0.1:6379 if it answers, else start `redis-server` from PATH with its data in HERALD_DATA_DIR.',
    fix: 'set it to a URL such as redis://127.0.0.1:6379/0, or to cluster nodes such as redis://10.0.0.1:6379,redis://10.0.0.2:6379, or unset it',
  },
  {
    env: 'REDIS_CLUSTER_NODES',
    key: 'redisClusterNodes',
    schema: z
      .string()
      .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^(rediss?:\/\/([^@/]*@)?)?[A-Za-z0-9.-]+:\d{1,5}\/?$/, 'each node must look like host:port or redis://[user:password@]host:port')).min(1))
      // Kept as the comma-separated target createRedis takes; a lone seed gets a trailing comma so it still means a cluster.
      .transform((nodes) => (nodes.length === 1 ? `${nodes[0]},` : nodes.join(',')))
      .optional(),
    description: 'Redis Cluster seed nodes (host:port, comma-separated; the others are discovered). Overrides REDIS_URL; Herald then uses ioredis Cluster for state and queues.',
    fix: 'list nodes such as 10.0.0.1:6379,10.0.0.2:6379 (list two or more, so Herald starts while one is down)',
  },
  {
    env: 'HERALD_REDIS_PREFIX',
    key: 'redisPrefix',
    schema: z.string().regex(/^[A-Za-z0-9_.-]{1,40}$/, 'letters, digits, _ . - only (1-40 chars)'),
    default: 'herald',
    description: 'Prefix of every Redis key and BullMQ queue Herald owns, so several instances can share one Redis.',
    fix: 'use letters, digits, "_", "." or "-", for example herald or herald-staging',
  },
  {
    env: 'HERALD_HOST',
    key: 'host',
    schema: z.string().min(1),
    default: '127.0.0.1',
    description: 'Address the web server listens on (0.0.0.0 in containers).',
    fix: 'set an IP address or host name such as 127.0.0.1 or 0.0.0.0',
  },
  {
    env: 'HERALD_PORT',
    key: 'port',
    schema: port,
    default: '8080',
    description: 'Port of the web server (settings page, API, health).',
    fix: 'set a port number between 0 and 65535',
  },
  {
    env: 'HERALD_PUBLIC_URL',
    key: 'publicUrl',
    schema: url(['http:', 'https:']).optional(),
    description: 'Base URL readers reach Herald at; used in email links. Default: http://localhost:<HERALD_PORT>.',
    fix: 'set the externally visible URL, for example https://alerts.example.org',
  },
  {
    env: 'HERALD_DATA_DIR',
    key: 'dataDir',
    schema: z.string().min(1),
    default: '.herald',
    description: 'Directory for generated keys and the self-started Redis (git-ignored).',
    fix: 'set a writable directory path',
  },
  {
    env: 'HERALD_FEEDS_FILE',
    key: 'feedsFile',
    schema: z.string().min(1),
    default: 'config/feeds.json',
    description: 'JSON list of feeds to poll.',
    fix: 'point it at a JSON file like config/feeds.json',
  },
  {
    env: 'HERALD_TOPICS_FILE',
    key: 'topicsFile',
    schema: z.string().min(1),
    default: 'config/topics.json',
    description: 'JSON topic catalog readers pick from.',
    fix: 'point it at a JSON file like config/topics.json',
  },
  {
    env: 'HERALD_POLL_INTERVAL_SECONDS',
    key: 'pollIntervalSeconds',
    schema: positiveInt.min(10),
    default: '300',
    description: 'Longest time between two poll ticks, which enqueue the feeds that are due (ticks run every 10 s at most); how often one feed is fetched is set by HERALD_FEED_MIN_INTERVAL_SECONDS, HERALD_FEED_MAX_INTERVAL_SECONDS and the feed itself.',
    fix: 'set a whole number of seconds, at least 10',
  },
  {
    env: 'HERALD_FETCH_TIMEOUT_MS',
    key: 'fetchTimeoutMs',
    schema: positiveInt,
    default: '15000',
    description: 'Time limit for fetching one feed, headers and body.',
    fix: 'set a whole number of milliseconds',
  },
  {
    env: 'HERALD_FETCH_MAX_BYTES',
    key: 'fetchMaxBytes',
    schema: positiveInt,
    default: String(5 * 1024 * 1024),
    description: 'Largest feed body accepted; the download is aborted past it.',
    fix: 'set a whole number of bytes',
  },
  {
    env: 'HERALD_FETCH_CONNECT_TIMEOUT_MS',
    key: 'fetchConnectTimeoutMs',
    schema: positiveInt,
    default: '5000',
    description: 'Time limit for connecting to a feed server (each redirect hop).',
    fix: 'set a whole number of milliseconds',
  },
  {
    env: 'HERALD_ALLOW_PRIVATE_FEEDS',
    key: 'allowPrivateFeeds',
    schema: bool,
    default: 'false',
    description: 'Allow feeds (and WebSub hubs) on loopback, private, link-local or metadata addresses. Off: such URLs are refused (SSRF guard), on every redirect hop and every resolved address.',
    fix: 'set true only for feeds on your own network, else false',
  },
  {
    env: 'HERALD_FEED_MIN_INTERVAL_SECONDS',
    key: 'feedMinIntervalSeconds',
    schema: positiveInt.min(10),
    default: '300',
    description: "Shortest time between two checks of one feed, whatever its own hints say.",
    fix: 'set a whole number of seconds, at least 10',
  },
  {
    env: 'HERALD_FEED_MAX_INTERVAL_SECONDS',
    key: 'feedMaxIntervalSeconds',
    schema: positiveInt.min(60),
    default: '21600',
    description: "Longest time between two checks of one feed (caps <ttl>, sy:updatePeriod, Cache-Control, Retry-After and failure backoff).",
    fix: 'set a whole number of seconds, at least 60',
  },
  {
    env: 'HERALD_POLL_CONCURRENCY',
    key: 'pollConcurrency',
    schema: positiveInt.max(256),
    default: '16',
    description: 'Feeds fetched and ingested at once per poller process (fetches mostly wait on publishers; HERALD_FEED_HOST_CONCURRENCY still limits each host).',
    fix: 'set a whole number between 1 and 256',
  },
  {
    env: 'HERALD_FEED_HOST_CONCURRENCY',
    key: 'feedHostConcurrency',
    schema: positiveInt.max(100),
    default: '2',
    description: 'Feed fetches in flight at once to one host, across all poller processes.',
    fix: 'set a whole number between 1 and 100',
  },
  {
    env: 'HERALD_FEED_DISABLE_AFTER_DAYS',
    key: 'feedDisableAfterDays',
    schema: positiveInt,
    default: '7',
    description: 'A feed failing on every check for this many days is disabled (410 Gone disables at once).',
    fix: 'set a whole number of days',
  },
  {
    env: 'HERALD_WEBSUB',
    key: 'websub',
    schema: bool,
    default: 'true',
    description: 'Subscribe to the WebSub hub a feed advertises (callback at HERALD_PUBLIC_URL/websub/<feed>); polling stays as fallback.',
    fix: 'set true or false',
  },
  {
    env: 'HERALD_WEBSUB_LEASE_SECONDS',
    key: 'websubLeaseSeconds',
    schema: positiveInt.min(3600),
    default: '864000',
    description: 'Lease asked of WebSub hubs; the subscription is renewed before it ends.',
    fix: 'set a whole number of seconds, at least 3600',
  },
  {
    env: 'HERALD_WEBSUB_FALLBACK_POLL_SECONDS',
    key: 'websubFallbackPollSeconds',
    schema: positiveInt.min(60),
    default: '21600',
    description: 'Poll interval of a feed with an active WebSub subscription (bounded by HERALD_FEED_MAX_INTERVAL_SECONDS).',
    fix: 'set a whole number of seconds, at least 60',
  },
  {
    env: 'VAPID_PUBLIC_KEY',
    key: 'vapidPublicKey',
    schema: z.string().regex(/^[A-Za-z0-9_-]{80,100}$/, 'must be a URL-safe base64 P-256 public key').optional(),
    description: 'VAPID public key for web push. Unset: generated on first start into HERALD_DATA_DIR.',
    fix: 'run `npx web-push generate-vapid-keys` and set both VAPID keys, or unset both',
  },
  {
    env: 'VAPID_PRIVATE_KEY',
    key: 'vapidPrivateKey',
    schema: z.string().regex(/^[A-Za-z0-9_-]{40,50}$/, 'must be a URL-safe base64 P-256 private key').optional(),
    secret: true,
    description: 'VAPID private key (secret). Unset: generated on first start into HERALD_DATA_DIR.',
    fix: 'run `npx web-push generate-vapid-keys` and set both VAPID keys, or unset both',
  },
  {
    env: 'VAPID_PREVIOUS_KEYS',
    key: 'vapidPreviousKeys',
    schema: z
      .string()
      .regex(
        /^[A-Za-z0-9_-]{80,100}:[A-Za-z0-9_-]{40,50}(,[A-Za-z0-9_-]{80,100}:[A-Za-z0-9_-]{40,50})*$/,
        'must be comma-separated <public key>:<private key> pairs',
      )
      .transform((v) => v.split(',').map((pair) => {
        const [publicKey = '', privateKey = ''] = pair.split(':');
        return { publicKey, privateKey };
      }))
      .optional(),
    secret: true,
    description:
      'VAPID key pairs used before a rotation, as `<public>:<private>` separated by commas, newest first (secret). Devices subscribed with one keep getting pushes signed with it; devices stored before Herald recorded their key use the last pair.',
    fix: 'list the old pairs as PUBLIC:PRIVATE,PUBLIC:PRIVATE (the values VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY had), or unset it',
  },
  {
    env: 'VAPID_SUBJECT',
    key: 'vapidSubject',
    schema: url(['mailto:', 'https:']),
    default: 'mailto:herald@localhost',
    description: 'Contact push services can reach the operator at (mailto: or https: URL).',
    fix: 'set a mailto: address or an https: URL of the operator',
  },
  {
    env: 'SMTP_URL',
    key: 'smtpUrl',
    schema: url(['smtp:', 'smtps:']),
    default: 'smtp://127.0.0.1:1025',
    description: 'SMTP server for alert and digest emails (smtps: for implicit TLS).',
    fix: 'set a URL such as smtp://mail.example.org:587',
  },
  {
    env: 'SMTP_USER',
    key: 'smtpUser',
    schema: z.string().min(1).optional(),
    description: 'SMTP user name, when the server needs authentication.',
    fix: 'set the SMTP user name or unset it',
  },
  {
    env: 'SMTP_PASSWORD',
    key: 'smtpPassword',
    schema: z.string().min(1).optional(),
    secret: true,
    description: 'SMTP password (secret).',
    fix: 'set the password, or SMTP_PASSWORD_FILE to a file holding it',
  },
  {
    env: 'MAIL_FROM',
    key: 'mailFrom',
    schema: z.string().min(3),
    default: 'Herald <herald@localhost>',
    description: 'From address of every email.',
    fix: 'set an address such as "Herald <alerts@example.org>"',
  },
  {
    env: 'HERALD_SIGNING_KEY',
    key: 'signingKey',
    schema: z.string().min(32, 'must be at least 32 characters').optional(),
    secret: true,
    description: 'Key that signs unsubscribe links (secret). Unset: generated on first start into HERALD_DATA_DIR.',
    fix: 'set at least 32 random characters, for example from `openssl rand -hex 32`',
  },
  {
    env: 'HERALD_ADMIN_TOKEN',
    key: 'adminToken',
    schema: z.string().min(24, 'must be at least 24 characters').optional(),
    secret: true,
    description: 'Token for the operator routes (/admin/queues). Unset: generated on first start into HERALD_DATA_DIR/admin-token.',
    fix: 'set at least 24 random characters, for example from `openssl rand -hex 24`',
  },
  {
    env: 'HERALD_PUSH_SERVICES',
    key: 'pushServices',
    schema: z
      .string()
      .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^https:\/\/(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$/, 'each entry must look like https://host, https://*.host or https://host:port')).min(1)),
    default: 'https://fcm.googleapis.com,https://updates.push.services.mozilla.com,https://*.push.services.mozilla.com,https://*.notify.windows.com,https://web.push.apple.com,https://*.push.apple.com',
    description: 'Push services whose endpoints the settings page accepts (comma-separated https origins; "*." allows subdomains). Any other endpoint is refused.',
    fix: 'list https origins separated by commas, for example https://fcm.googleapis.com,https://*.notify.windows.com',
  },
  {
    env: 'HERALD_TRUST_PROXY',
    key: 'trustProxy',
    schema: bool,
    default: 'false',
    description: 'Behind a reverse proxy: take the client address from X-Forwarded-For (rate limits are per client address).',
    fix: 'set true when a reverse proxy you run sits in front of Herald, else false',
  },
  {
    env: 'HERALD_RATE_LIMIT_WRITES_PER_MINUTE',
    key: 'rateLimitWritesPerMinute',
    schema: positiveInt.max(100000),
    default: '60',
    description: 'Changes (POST, PUT, PATCH, DELETE) the API accepts per minute from one IP address, and separately from one subscriber. One-click unsubscribe POSTs (RFC 8058, sent by mail providers from shared addresses) are not counted.',
    fix: 'set a whole number of requests, for example 60',
  },
  {
    env: 'HERALD_RATE_LIMIT_EMAILS_PER_HOUR',
    key: 'rateLimitEmailsPerHour',
    schema: positiveInt.max(10000),
    default: '5',
    description: 'Emails the web app sends per hour (confirmation and "manage your alerts" links) for one IP, one subscriber and one address.',
    fix: 'set a whole number of emails, for example 5',
  },
  {
    env: 'HERALD_RATE_LIMIT_PREVIEWS_PER_MINUTE',
    key: 'rateLimitPreviewsPerMinute',
    schema: positiveInt.max(10000),
    default: '10',
    description: 'Alert previews one subscriber may ask for per minute; creating an alert or changing its query counts as one too, since each replays the recent stories.',
    fix: 'set a whole number of previews, for example 10',
  },
  {
    env: 'HERALD_PUSH_CONCURRENCY',
    key: 'pushConcurrency',
    schema: positiveInt.max(1000),
    default: '4',
    description: 'Push jobs in flight per dispatcher process. A fan-out batch job counts once and sends its alerts side by side, so up to this many times HERALD_PUSH_BATCH_SIZE requests are open (at most 64 connections per push service); more in flight mostly adds memory and garbage collection (see the delivery benchmark).',
    fix: 'set a whole number between 1 and 1000',
  },
  {
    env: 'HERALD_PUSH_BATCH_SIZE',
    key: 'pushBatchSize',
    schema: positiveInt.max(500),
    default: '50',
    description: "Alerts of one story per push fan-out job. Larger batches cost less queue and Redis work per alert; each alert keeps its own ledger record, and one that must be retried leaves its batch as a job of its own.",
    fix: 'set a whole number between 1 and 500, for example 50',
  },
  {
    env: 'HERALD_PUSH_SHARDS',
    key: 'pushShards',
    schema: positiveInt.max(64),
    default: '1',
    description:
      'Queues instant push sending is spread over ({push}, {push-1}, ...), each with its own Redis Cluster hash tag; a subscriber always uses the same one. Change it only while the push queues are empty.',
    fix: 'set a whole number between 1 and 64 (about one per cluster master is a good start)',
  },
  {
    env: 'HERALD_PUSH_SHARDS_CONSUMED',
    key: 'pushShardsConsumed',
    schema: z
      .string()
      .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^\d{1,2}$/, 'each entry must be a shard number such as 0 or 3').transform(Number)).min(1))
      .optional(),
    description: 'Push shards this process consumes (comma-separated numbers from 0). Unset: all of them.',
    fix: 'list shard numbers below HERALD_PUSH_SHARDS, such as 0,2, or unset it',
  },
  {
    env: 'HERALD_EMAIL_CONCURRENCY',
    key: 'emailConcurrency',
    schema: positiveInt.max(100),
    default: '5',
    description: 'Emails in flight per dispatcher process (also the SMTP pool size).',
    fix: 'set a whole number between 1 and 100',
  },
  {
    env: 'HERALD_PUSH_RATE_PER_SECOND',
    key: 'pushRatePerSecond',
    schema: positiveInt.max(100000),
    default: '500',
    description: 'Most push requests per second to one push service (origin) from one dispatcher process; a 429 pauses that service for its Retry-After.',
    fix: 'set a whole number of requests per second, for example 500',
  },
  {
    env: 'HERALD_PUSH_NATIVE_ECDH',
    key: 'pushNativeEcdh',
    schema: bool,
    default: 'true',
    description: "Encrypt pushes with the native P-256 key agreement that npm install builds (about half the cost of Node's ECDH, the largest part of a push); without it, or where it was not built, Node's ECDH. The dispatcher logs which at start.",
    fix: 'set true or false',
  },
  {
    env: 'HERALD_PUSH_CA_FILE',
    key: 'pushCaFile',
    schema: z.string().min(1).optional(),
    description: 'PEM file of an extra CA trusted for push endpoints, for a private push service or tests. Public push services need none.',
    fix: 'point it at a readable PEM certificate file, or unset it',
  },
  {
    env: 'HERALD_PUSH_BURST_WINDOW_SECONDS',
    key: 'pushBurstWindowSeconds',
    schema: z.coerce.number().int().min(0).max(3600),
    default: '120',
    description: 'After a push, further non-breaking matches for the same reader within this window are bundled into one notification at its end (0: never bundle).',
    fix: 'set a whole number of seconds between 0 and 3600',
  },
  {
    env: 'HERALD_SMTP_RATE_PER_SECOND',
    key: 'smtpRatePerSecond',
    schema: positiveInt.max(100000),
    default: '100',
    description: 'Most emails per second handed to the SMTP server by one dispatcher process.',
    fix: 'set a whole number of messages per second, for example 100',
  },
  {
    env: 'HERALD_EMAIL_HARD_BOUNCE_LIMIT',
    key: 'emailHardBounceLimit',
    schema: positiveInt.max(100),
    default: '3',
    description: 'Hard bounces (SMTP 5xx refusals of the recipient) in a row after which an address is disabled and the reader is told on the settings page.',
    fix: 'set a whole number between 1 and 100',
  },
  {
    env: 'HERALD_DIGEST_STORIES_PER_TOPIC',
    key: 'digestStoriesPerTopic',
    schema: positiveInt.max(1000),
    default: '10',
    description:
      'Stories of one topic a digest email lists (those carried by the most outlets); the rest are counted, with a link to a page showing the whole digest, kept 8 days.',
    fix: 'set a whole number between 1 and 1000, for example 10',
  },
  {
    env: 'HERALD_DIGEST_SETTLE_SECONDS',
    key: 'digestSettleSeconds',
    schema: z.coerce.number().int().min(0).max(3600),
    default: '60',
    description:
      'A digest covers the topic logs up to this long before it reads them; stories logged later go out with the next digest. Covers a classifier that stamped a story just before the read but wrote it just after (a round trip, or its clock a little behind).',
    fix: 'set a whole number of seconds between 0 and 3600, for example 60',
  },
  {
    env: 'HERALD_DKIM_DOMAIN',
    key: 'dkimDomain',
    schema: z.string().min(1).optional(),
    description: 'Domain to DKIM-sign outgoing email for (with HERALD_DKIM_SELECTOR and HERALD_DKIM_PRIVATE_KEY). Unset: no DKIM signature.',
    fix: 'set the signing domain such as example.org, or unset all three DKIM variables',
  },
  {
    env: 'HERALD_DKIM_SELECTOR',
    key: 'dkimSelector',
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,63}$/, 'letters, digits, . _ - only').optional(),
    description: 'DKIM selector: the DNS record <selector>._domainkey.<domain> holds the public key.',
    fix: 'set the selector of your DKIM DNS record, such as herald',
  },
  {
    env: 'HERALD_DKIM_PRIVATE_KEY',
    key: 'dkimPrivateKey',
    schema: z.string().refine((v) => v.includes('PRIVATE KEY'), 'must be a PEM private key').optional(),
    secret: true,
    description: 'DKIM private key, PEM (secret; HERALD_DKIM_PRIVATE_KEY_FILE to read it from a file).',
    fix: 'set HERALD_DKIM_PRIVATE_KEY_FILE to the PEM file of the key whose public half is in DNS',
  },
  {
    env: 'HERALD_JOB_LOCK_SECONDS',
    key: 'jobLockSeconds',
    schema: positiveInt.min(2).max(600),
    default: '30',
    description: 'Lock of a running job (fetch, classification, push, email, digest): a worker process that dies has its jobs taken over after about this long.',
    fix: 'set a whole number of seconds between 2 and 600',
  },
  {
    env: 'HERALD_GIVE_UP_SWEEP_SECONDS',
    key: 'giveUpSweepSeconds',
    schema: positiveInt.min(1).max(3600),
    default: '60',
    description: 'How often a dispatcher looks for deliveries BullMQ gave up on whose failure was never written to the ledger (the process died at that moment): they end as failed, not "queued" for ever.',
    fix: 'set a whole number of seconds between 1 and 3600',
  },
  {
    env: 'HERALD_SHUTDOWN_TIMEOUT_SECONDS',
    key: 'shutdownTimeoutSeconds',
    schema: positiveInt,
    default: '20',
    description: 'On SIGTERM/SIGINT, how long in-flight jobs may take before the process exits anyway.',
    fix: 'set a whole number of seconds',
  },
  {
    env: 'HERALD_SCHEDULERS',
    key: 'schedulers',
    schema: bool,
    default: 'true',
    description: 'Register the poll and digest ticks (BullMQ job schedulers, one per Redis whatever the process count).',
    fix: 'set true or false',
  },
  {
    env: 'HERALD_QUERY_MAX_CHARS',
    key: 'queryMaxChars',
    schema: positiveInt.max(10_000),
    default: '500',
    description: "Longest query a reader may write for an own alert (the catalog's queries may be longer).",
    fix: 'set a whole number of characters between 1 and 10000',
  },
  {
    env: 'HERALD_QUERY_MAX_TERMS',
    key: 'queryMaxTerms',
    schema: positiveInt.max(500),
    default: '32',
    description: 'Most terms (words, phrases, prefixes) in a reader\'s own alert query.',
    fix: 'set a whole number between 1 and 500',
  },
  {
    env: 'HERALD_STORY_MAX_CHARS',
    key: 'storyMaxChars',
    schema: positiveInt.min(100).max(100_000),
    default: '4000',
    description: 'Characters of each story field (title, summary, categories) the classifier reads; the rest is ignored.',
    fix: 'set a whole number of characters between 100 and 100000',
  },
  {
    env: 'HERALD_BEST_MIN_SCORE',
    key: 'bestMinScore',
    schema: z.coerce.number().positive().max(100),
    default: '3',
    description: 'Score a match needs to reach readers who chose "only the best" (a title hit scores 3, a category hit 2, a summary hit 1).',
    fix: 'set a positive number such as 3',
  },
  {
    env: 'HERALD_MAX_ALERTS_PER_SUBSCRIBER',
    key: 'maxAlertsPerSubscriber',
    schema: positiveInt.max(1000),
    default: '20',
    description: 'Most own alerts (custom queries) one reader may keep.',
    fix: 'set a whole number between 1 and 1000',
  },
  {
    env: 'HERALD_MAX_PUSH_DEVICES_PER_SUBSCRIBER',
    key: 'maxPushDevicesPerSubscriber',
    schema: positiveInt.max(1000),
    default: '20',
    description: 'Most devices (browsers) one reader may register for push; every alert goes to each of them. Registering a known device again always succeeds.',
    fix: 'set a whole number between 1 and 1000',
  },
  {
    env: 'HERALD_PREVIEW_MAX_DAYS',
    key: 'previewMaxDays',
    schema: positiveInt.max(8),
    default: '7',
    description: 'How many past days an alert preview may replay (stories are kept for 8 days).',
    fix: 'set a whole number of days between 1 and 8',
  },
  {
    env: 'HERALD_PREVIEW_MAX_STORIES',
    key: 'previewMaxStories',
    schema: positiveInt.max(50_000),
    default: '5000',
    description: 'Most recent stories one alert preview replays, newest first.',
    fix: 'set a whole number between 1 and 50000',
  },
  {
    env: 'HERALD_QUERY_MAX_MATCH_RATIO',
    key: 'queryMaxMatchRatio',
    schema: z.coerce.number().gt(0).max(1),
    default: '0.5',
    description: "An own alert matching more than this share of the recent stories (of at least 20) is refused as too broad.",
    fix: 'set a number above 0 and at most 1, such as 0.5',
  },
  {
    env: 'LOG_LEVEL',
    key: 'logLevel',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    default: 'info',
    description: 'pino log level.',
    fix: 'use one of fatal, error, warn, info, debug, trace, silent',
  },
] as const satisfies readonly OptionSpec[];

type Options = (typeof OPTIONS)[number];
export type Config = Readonly<{
  [O in Options as O['key']]: z.output<O['schema']>;
}>;
