import type { Config } from '../config/options.ts';
import type { IngestSettings } from './poll.ts';

/** The poller's settings from the one config table; `publicBase` is where WebSub hubs call back. */
export function ingestSettingsFrom(config: Config, publicBase: string, userAgent: string): IngestSettings {
  return {
    minIntervalSeconds: config.feedMinIntervalSeconds,
    maxIntervalSeconds: config.feedMaxIntervalSeconds,
    fetchTimeoutMs: config.fetchTimeoutMs,
    connectTimeoutMs: config.fetchConnectTimeoutMs,
    fetchMaxBytes: config.fetchMaxBytes,
    userAgent,
    allowPrivate: config.allowPrivateFeeds,
    hostConcurrency: config.feedHostConcurrency,
    disableAfterDays: config.feedDisableAfterDays,
    websub: {
      enabled: config.websub,
      callbackBase: publicBase,
      leaseSeconds: config.websubLeaseSeconds,
      fallbackSeconds: config.websubFallbackPollSeconds,
      allowPrivate: config.allowPrivateFeeds,
      userAgent,
      timeoutMs: config.fetchTimeoutMs,
    },
  };
}
