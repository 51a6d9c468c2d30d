import { compileTopic, TopicIndex } from '../../src/classify/match.ts';
import { ratio, type Benchmark } from './types.ts';

/**
 * Removing readers' alerts from the index, as a registry reload (every alert removed, then added back) or a
 * burst of deletions does: n alerts all filed under one word ("japan"), removed oldest first. The cost per
 * removal at the larger size beside the smaller one, in the same run: about 1× when removal is O(1); when it
 * searched the posting list (indexOf + splice) it grew with n (8× at 40,000 vs 5,000).
 */
function msPerRemoval(n: number): number {
  const topics = Array.from({ length: n }, (_, i) => compileTopic({ id: `alert.${i}`, name: 'x', query: `japan source:feed${i}` }));
  const index = new TopicIndex(topics);
  const start = process.cpuUsage();
  for (const t of topics) index.remove(t.id);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / n;
}

const bench: Benchmark = {
  name: 'index-churn',
  async run(ctx) {
    const [small, large] = ctx.quick ? [2_000, 16_000] : [5_000, 40_000];
    msPerRemoval(small); // warm the JIT
    // The best of three: a major garbage collection inside one run says nothing about removal.
    const best = (n: number) => Math.min(msPerRemoval(n), msPerRemoval(n), msPerRemoval(n));
    const a = best(small);
    const b = best(large);
    ctx.log(`remove ${small} alerts filed under one word: ${(a * 1000).toFixed(2)} µs each; ${large}: ${(b * 1000).toFixed(2)} µs each`);
    return [{
      name: `index: µs per alert removed, ${large.toLocaleString('en')} vs ${small.toLocaleString('en')} filed under one word (lower is better; O(1) ≈ 1×)`,
      value: b * 1000,
      unit: 'µs',
      baseline: { name: `${small.toLocaleString('en')} alerts`, value: a * 1000 },
      ratio: ratio(b, a),
    }];
  },
};
export default bench;
