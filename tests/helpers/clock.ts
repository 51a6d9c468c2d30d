import type { Clock } from '../../src/model.ts';

/** A clock the test moves by hand: digests and schedules read it instead of Date.now(). */
export function manualClock(start: string | number): Clock & { set(t: string | number): void; advance(ms: number): void } {
  let now = typeof start === 'string' ? Date.parse(start) : start;
  return {
    now: () => now,
    set: (t) => void (now = typeof t === 'string' ? Date.parse(t) : t),
    advance: (ms) => void (now += ms),
  };
}
