import type { FeedConfig } from '../config/catalog.ts';
import type { FeedState } from '../store/feeds.ts';
import { isStale } from './schedule.ts';

export type FeedHealthStatus = 'new' | 'ok' | 'stale' | 'failing' | 'disabled';

export interface FeedHealth {
  id: string;
  url: string;
  title: string | null;
  status: FeedHealthStatus;
  format: string | null;
  consecutiveFailures: number;
  lastError: { code: string | null; message: string; at: string | null } | null;
  lastSuccessAt: string | null;
  lastItemAt: string | null;
  nextCheckAt: string | null;
  disabledReason: string | null;
  websub: string | null;
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** What the operator sees about one feed (CLI and API); pure, the clock passed in. */
export function describeFeedHealth(feed: FeedConfig, s: FeedState, now: number): FeedHealth {
  let status: FeedHealthStatus = 'ok';
  if (s.disabledAt) status = 'disabled';
  else if (s.consecutiveFailures > 0) status = 'failing';
  else if (s.lastSuccessAt === null) status = 'new';
  // Items without dates: the last time a fetch brought a new one stands in for the newest item's date (their
  // cadence is null then too: it is measured from the same dates).
  else if (isStale(s.lastItemAt ?? s.lastNewItemAt, s.cadenceMs, now)) status = 'stale';
  return {
    id: feed.id,
    url: feed.url,
    title: feed.title ?? s.title,
    status,
    format: s.format,
    consecutiveFailures: s.consecutiveFailures,
    lastError: s.lastError ? { code: s.lastErrorCode, message: s.lastError, at: iso(s.lastErrorAt) } : null,
    lastSuccessAt: iso(s.lastSuccessAt),
    lastItemAt: iso(s.lastItemAt),
    nextCheckAt: s.disabledAt ? null : iso(s.nextCheckAt),
    disabledReason: s.disabledReason,
    websub: s.websub ? `${s.websub.status} via ${s.websub.hub}${s.websub.leaseUntil ? ` until ${iso(s.websub.leaseUntil)}` : ''}` : null,
  };
}
