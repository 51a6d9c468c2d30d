import { describe, expect, it } from 'vitest';
import { perTurn } from '../../src/store/per-turn.ts';

/** The per-turn write behind the ledger's topic counters and day index: what its callers may rely on. */
describe('perTurn', () => {
  it('gathers the calls of one turn into one write, and a later turn into the next', async () => {
    const writes: number[][] = [];
    const add = perTurn<number>(async (items) => void writes.push([...items]));
    await Promise.all([add(1), add(2), add(3)]);
    await add(4);
    expect(writes).toEqual([[1, 2, 3], [4]]);
  });

  it('resolves each caller only after the write holding its item has finished', async () => {
    let finished = false;
    const add = perTurn<string>(async () => {
      await new Promise((r) => setTimeout(r, 20));
      finished = true;
    });
    await add('a');
    expect(finished).toBe(true);
  });

  it('a failed write rejects every caller of its turn, whether it rejects or throws at once, and the next turn writes again', async () => {
    let calls = 0;
    const rejecting = perTurn<number>(async () => {
      calls++;
      if (calls === 1) throw new Error('Redis down');
    });
    const results = await Promise.allSettled([rejecting(1), rejecting(2)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await expect(rejecting(3)).resolves.toBeUndefined();

    const throwing = perTurn<number>(() => {
      throw new Error('not connected');
    });
    await expect(throwing(1)).rejects.toThrow('not connected');
  });
});
