/**
 * Runs `fn`, calling `renew` every `everyMs` until it ends: what a ledger claim, a bundle lease or the give-up
 * sweep's lock needs while the work holding it is alive, as BullMQ renews a running job's lock. Both are left to their holder only for a
 * job lock's time, and a send can take longer (a push service's 429 pauses its origin for up to a minute; a slow
 * one can use its timeouts): another job of the same alert or reader then took over and sent it again. A renewal
 * that fails is left to the next one, not to the attempt: missing them all only lets another job take over, as
 * when the holder has died.
 */
export async function whileRenewing<T>(everyMs: number, renew: () => Promise<unknown>, fn: () => Promise<T>): Promise<T> {
  let renewing: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    renewing = renew().catch(() => undefined);
  }, everyMs);
  // A send in flight keeps the process alive; its renewals must not once it has ended.
  timer.unref();
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    // One in flight ends first: landing after what follows (a lease given up), it would take the lease again.
    await renewing;
  }
}
