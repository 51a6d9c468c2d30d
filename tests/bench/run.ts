// `npm run bench [-- --quick] [-- name...]`: runs every tests/bench/*.bench.ts in one process, prints a table
// and writes bench-results.json. Ratios compare numbers measured side by side in this same run.
import { readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { Benchmark, BenchResult } from './types.ts';

const args = process.argv.slice(2).filter((a) => a !== '--');
const quick = args.includes('--quick');
const only = args.filter((a) => !a.startsWith('--'));
const dir = new URL('./', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort();

const results: BenchResult[] = [];
const started = Date.now();
for (const file of files) {
  const bench = (await import(new URL(file, dir).href)).default as Benchmark;
  if (only.length > 0 && !only.some((o) => bench.name.includes(o) || file.includes(o))) continue;
  process.stderr.write(`\n▶ ${bench.name}${quick ? ' (quick)' : ''}\n`);
  const t0 = Date.now();
  const out = await bench.run({ quick, log: (m) => process.stderr.write(`  ${m}\n`) });
  results.push(...out);
  process.stderr.write(`  done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(3));
const rows = results.map((r) => [r.name, `${fmt(r.value)} ${r.unit}`, r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.value)}` : '', r.ratio === null ? '' : `${r.ratio}×`]);
const header = ['benchmark', 'value', 'baseline (same run)', 'ratio'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
process.stdout.write(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${rows.map(line).join('\n')}\n`);
process.stdout.write(`\n${results.length} results in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

writeFileSync(
  'bench-results.json',
  `${JSON.stringify({ runAt: new Date().toISOString(), machine: { cpus: cpus().length, node: process.version }, quick, results }, null, 2)}\n`,
);
process.exit(0);
