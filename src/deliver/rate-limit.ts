import type { Clock } from '../model.ts';

/**
 * Token bucket per destination (a push service's origin, an SMTP server), in this process: at most
 * `perSecond` sends a second after a first burst of `perSecond`, whatever connections carry them; `pause`
 * holds one destination (a push service's 429 Retry-After) for every job of this dispatcher.
 */
export function createOriginLimiter(perSecond: number, clock: Clock, sleep: (ms: number) => Promise<void>) {
  const buckets = new Map<string, { tokens: number; at: number; pausedUntil: number }>();
  let stopped = false;
  const wakers = new Set<() => void>();
  /** `sleep`, cut short by `stop`. */
  const wait = (ms: number) => new Promise<void>((resolve) => {
    const wake = () => {
      wakers.delete(wake);
      resolve();
    };
    wakers.add(wake);
    void sleep(ms).then(wake);
  });
  return {
    /**
     * Takes a send slot: 0 once taken. After `stop`, a take that would have to wait answers instead how many ms it
     * still had to wait (at least 1), and the caller sends nothing.
     */
    async take(origin: string): Promise<number> {
      for (;;) {
        const now = clock.now();
        const b = buckets.get(origin) ?? { tokens: perSecond, at: now, pausedUntil: 0 };
        buckets.set(origin, b);
        if (b.pausedUntil > now) {
          if (stopped) return b.pausedUntil - now;
          await wait(b.pausedUntil - now);
          continue;
        }
        b.tokens = Math.min(perSecond, b.tokens + ((now - b.at) / 1000) * perSecond);
        b.at = now;
        if (b.tokens >= 1) {
          b.tokens -= 1;
          return 0;
        }
        const ms = Math.ceil(((1 - b.tokens) / perSecond) * 1000);
        if (stopped) return ms;
        await wait(ms);
      }
    },
    pause(origin: string, untilMs: number) {
      const b = buckets.get(origin);
      if (b) b.pausedUntil = Math.max(b.pausedUntil, untilMs);
    },
    /**
     * Shutdown: takes waiting (a 429 pause lasts up to a minute, longer than the shutdown timeout) and later ones that
     * would wait answer at once, so their jobs hand the alert back for a later attempt instead of holding the process
     * past its deadline, killed with records left "sending". A take with a slot free still sends.
     */
    stop() {
      stopped = true;
      for (const wake of wakers) wake();
      wakers.clear();
    },
  };
}

/** Waits in real time: pacing is about real requests, whatever clock the alerts are stamped with. */
export const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
