import type { Mailer } from '../deliver/email/mailer.ts';
import { viaOfBundleLedgerId } from '../deliver/push/send-bundle.ts';
import type { PushSender } from '../deliver/push/web-push-sender.ts';
import type { IngestReport } from '../ingest/poll.ts';
import type { Channel, Clock } from '../model.ts';
import type { FinalStatus, Ledger } from '../store/ledger.ts';
import type { Labels, Stats } from '../store/stats.ts';
import type { SeriesName } from './metrics.ts';

/**
 * Records pipeline events into the Redis-backed counters behind /metrics and the admin console. The stages
 * stay unaware: the composition root (src/runtime/herald.ts) wraps their adapters with the decorators below.
 * A failed write is logged and dropped: a missing sample must never fail or retry a delivery.
 */
export interface Events {
  count(name: SeriesName, labels?: Labels, by?: number): void;
  observe(name: SeriesName, labels: Labels, seconds: number): void;
}

/** Counting only queues the event in memory; a failed write to Redis is reported by the Stats' own onError. */
export function createEvents(stats: Stats, clock: Clock): Events {
  return {
    count: (name, labels = {}, by = 1) => void stats.incr(name, labels, clock.now(), by),
    observe: (name, labels, seconds) => void stats.observe(name, labels, Math.max(0, seconds), clock.now()),
  };
}

/** Reasons become label values: keep the set small (no URLs, ids or numbers beyond the status code). */
export function reasonLabel(reason: string | undefined): string {
  if (!reason) return 'none';
  const status = /\b([1-5]\d\d)\b/.exec(reason)?.[1];
  if (/^SMTP/.test(reason)) return `smtp ${status ?? 'error'}`;
  if (/push service answered/.test(reason)) return `push ${status ?? 'error'}`;
  return reason.replace(/[^a-z-]+/gi, ' ').trim().split(' ').slice(0, 3).join(' ').toLowerCase() || 'other';
}

/**
 * Every alert that ends (sent, failed, skipped) counts once, on the ledger's own transition; a sent alert
 * also observes how long after the story was first seen it was accepted by the push service or SMTP server.
 */
export function withLedgerEvents(ledger: Ledger, events: Events, seenAt: (storyId: string) => Promise<number | null>, clock: Clock): Ledger {
  const ended = async (storyId: string, channel: Channel, status: FinalStatus, reason: string | undefined) => {
    // A bundle's own record is no alert: the held alerts it carried are counted one by one as `release` ends them
    // (as the topic counters count them). Counted too, every bundle added one more push "sent" (or "failed").
    if (viaOfBundleLedgerId(storyId) !== null) return;
    events.count('herald_alerts_total', { channel, outcome: status, ...(status === 'sent' ? {} : { reason: reasonLabel(reason) }) });
    if (status === 'sent') {
      const seen = await seenAt(storyId).catch(() => null);
      if (seen !== null) events.observe('herald_story_to_delivery_seconds', { channel }, (clock.now() - seen) / 1000);
    }
  };
  // Every method that can end a record is wrapped here: a new one that is not would go uncounted.
  return {
    ...ledger,
    async finish(subscriberId, storyId, channel, status, now, detail = {}) {
      const moved = await ledger.finish(subscriberId, storyId, channel, status, now, detail);
      if (moved) await ended(storyId, channel, status, detail.reason ?? detail.error);
      return moved;
    },
    async finishPushSent(subscriberId, storyId, now, detail) {
      const moved = await ledger.finishPushSent(subscriberId, storyId, now, detail);
      if (moved) await ended(storyId, 'push', 'sent', undefined);
      return moved;
    },
    async giveUp(subscriberId, storyId, channel, jobId, error, now) {
      const moved = await ledger.giveUp(subscriberId, storyId, channel, jobId, error, now);
      if (moved) await ended(storyId, channel, 'failed', error);
      return moved;
    },
    async release(subscriberId, bucket, items, outcome, now) {
      const released = await ledger.release(subscriberId, bucket, items, outcome, now);
      await Promise.all(released.map((h) => ended(h.storyId, 'push', outcome.status, outcome.reason ?? outcome.error)));
      return released;
    },
  };
}

/** Every answer of a push service, by HTTP status (0 for a request that got none). */
export function withPushEvents(sender: PushSender, events: Events): PushSender {
  return {
    ...sender,
    async send(sub, payload, opts) {
      const outcome = await sender.send(sub, payload, opts);
      if (!(outcome.kind === 'retry' && outcome.unsent)) events.count('herald_push_responses_total', { status: outcome.status ?? 0 });
      return outcome;
    },
    stats: () => sender.stats(),
    stopWaiting: () => sender.stopWaiting?.(),
    close: () => sender.close(),
  };
}

/** SMTP errors by kind: transient ones are retried, permanent ones recorded. */
export function withMailEvents(mailer: Mailer, events: Events): Mailer {
  return {
    async send(mail) {
      const outcome = await mailer.send(mail);
      if (outcome.kind !== 'sent' && !(outcome.kind === 'retry' && outcome.unsent)) events.count('herald_smtp_errors_total', { kind: outcome.kind === 'retry' ? 'transient' : 'permanent' });
      return outcome;
    },
    stopWaiting: () => mailer.stopWaiting?.(),
    abandon: () => mailer.abandon?.(),
    close: () => mailer.close(),
  };
}

/** A feed fetch's result and the stories it created; a failure is counted with its error code and rethrown. */
export async function countFeedFetch(events: Events, run: () => Promise<IngestReport>): Promise<IngestReport> {
  try {
    const report = await run();
    if (report.status !== 'skipped') events.count('herald_feed_fetches_total', { result: report.status === 'ok' ? 'ok' : 'not_modified' });
    if (report.created > 0) events.count('herald_stories_ingested_total', {}, report.created);
    return report;
  } catch (err) {
    events.count('herald_feed_fetches_total', { result: 'error', code: (err as { code?: string }).code ?? 'error' });
    throw err;
  }
}

/** Digests by outcome, and how late a sent one was against its due time. */
export async function countDigest(events: Events, dueAt: number, clock: Clock, run: () => Promise<string>): Promise<string> {
  const result = await run();
  if (result === 'sent') {
    events.count('herald_digests_total', { outcome: 'sent' });
    events.observe('herald_digest_lateness_seconds', {}, (clock.now() - dueAt) / 1000);
  } else if (result.startsWith('skipped')) {
    events.count('herald_digests_total', { outcome: 'skipped' });
  }
  return result;
}
