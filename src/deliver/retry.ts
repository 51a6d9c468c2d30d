import { NotAttempted } from '../queue/queues.ts';

/**
 * A transient delivery failure: the job is retried by BullMQ with `deliveryBackoff`, which honours the
 * service's Retry-After when it gave one.
 */
export class RetryLater extends Error {
  override name = 'RetryLater';
  constructor(message: string, readonly retryAfterMs: number | null = null) {
    super(message);
  }
}

/** Name of the custom BullMQ backoff type the dispatchers register. */
export const DELIVERY_BACKOFF = 'delivery';
const MAX_DELAY_MS = 60 * 60 * 1000;

/**
 * Exponential backoff with full jitter (base × 2^(attempt-1), scaled by a random factor in [0.5, 1)) so
 * many alerts failing together do not retry in lockstep; never sooner than the service's Retry-After.
 */
export function deliveryBackoffMs(attemptsMade: number, baseMs: number, err: unknown, random: () => number): number {
  const exp = Math.min(MAX_DELAY_MS, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  const jittered = Math.floor(exp * (0.5 + random() * 0.5));
  const retryAfter = err instanceof RetryLater && err.retryAfterMs !== null ? Math.min(MAX_DELAY_MS, err.retryAfterMs) : 0;
  return Math.max(jittered, retryAfter);
}

/**
 * How long a send handed back at shutdown (unsent, or abandoned with no answer) waits before another dispatcher takes
 * it up; the attempt does not count (NotAttempted). Short: nothing was wrong with the service.
 */
export const HANDED_BACK_DELAY_MS = 5000;

/**
 * What a send that must be tried again throws: NotAttempted when this process handed it back unsent (shutting down,
 * or abandoning a send with no answer), which BullMQ does not count as an attempt, after the service's pause if it
 * named one; else RetryLater, a counted attempt retried with the delivery backoff.
 */
export function retryError(reason: string, opts: { retryAfterMs?: number | null; handedBack?: boolean } = {}): Error {
  const retryAfterMs = opts.retryAfterMs ?? null;
  return opts.handedBack ? new NotAttempted(reason, retryAfterMs ?? HANDED_BACK_DELAY_MS) : new RetryLater(reason, retryAfterMs);
}
