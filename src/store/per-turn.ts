/**
 * Writes gathered over one event-loop turn go to Redis together. A batch of alerts comes back from Redis in
 * one pipelined reply, so its alerts reach the same bookkeeping write in the same turn: summed or merged,
 * that write costs one command per key instead of one (or two) per alert, on the client and on Redis.
 * Every caller still waits until the write holding its part has succeeded, and sees its error if it failed,
 * so a caller's next step never runs ahead of its bookkeeping.
 */
export function perTurn<T>(write: (items: T[]) => Promise<unknown>): (item: T) => Promise<void> {
  let pending: { items: T[]; written: Promise<void> } | null = null;
  return (item) => {
    if (!pending) {
      const items: T[] = [];
      const written = new Promise<void>((resolve, reject) => setImmediate(() => {
        pending = null;
        // A write that throws before its promise exists rejects its callers too, not the process.
        Promise.resolve().then(() => write(items)).then(() => resolve(), reject);
      }));
      pending = { items, written };
    }
    pending.items.push(item);
    return pending.written;
  };
}
