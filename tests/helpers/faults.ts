import type { Enqueue } from '../../src/queue/queues.ts';
import type { Ledger } from '../../src/store/ledger.ts';

/** An Enqueue for handlers whose paths under test never enqueue: a call is a mistake, and fails the test. */
export const noEnqueue = Object.assign(
  async () => {
    throw new Error('unexpected enqueue');
  },
  {
    bulk: async () => {
      throw new Error('unexpected enqueue');
    },
  },
) as Enqueue;

/** The ledger, but its first `release` fails as a lost Redis connection would: an attempt dying half-way. */
export function releaseFailingOnce(ledger: Ledger): Ledger {
  let fail = true;
  return {
    ...ledger,
    async release(...args) {
      if (fail) {
        fail = false;
        throw new Error('Connection is closed.');
      }
      return ledger.release(...args);
    },
  };
}
