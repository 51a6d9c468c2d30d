import type { Clock } from '../model.ts';

/**
 * Token bucket per destination (a push service's origin, an SMTP server), in this process: at most
 * `perSecond` sends a second after a first burst of `perSecond`, whatever connections carry them; `pause`
 * holds one destination (a push service's 429 Retry-After) for every job of this dispatcher.
 */
export function createOriginLimiter(perSecond: number, clock: Clock, sleep: (ms: number) => Promise<void>) {
  const buckets = new Map<string, { tokens: number; at: number; pausedUntil: number }>();
  return {
    async take(origin: string): Promise<void> {
      for (;;) {
        const now = clock.now();
        const b = buckets.get(origin) ?? { tokens: perSecond, at: now, pausedUntil: 0 };
        buckets.set(origin, b);
        if (b.pausedUntil > now) {
          await sleep(b.pausedUntil - now);
          continue;
        }
        b.tokens = Math.min(perSecond, b.tokens + ((now - b.at) / 1000) * perSecond);
        b.at = now;
        if (b.tokens >= 1) {
          b.tokens -= 1;
          return;
        }
        await sleep(Math.ceil(((1 - b.tokens) / perSecond) * 1000));
      }
    },
    pause(origin: string, untilMs: number) {
      const b = buckets.get(origin);
      if (b) b.pausedUntil = Math.max(b.pausedUntil, untilMs);
    },
  };
}

/** Waits in real time: pacing is about real requests, whatever clock the alerts are stamped with. */
export const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
