/** One measured number; `baseline` is what it was measured beside, in the same run. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline: { name: string; value: number } | null;
  /** value / baseline.value (or the inverse for lower-is-better units, as the benchmark states in its name). */
  ratio: number | null;
}

export interface BenchContext {
  /** `npm run bench -- --quick`: smaller sizes, the whole suite under a minute. */
  quick: boolean;
  log(message: string): void;
}

/** Every file tests/bench/*.bench.ts default-exports one of these. */
export interface Benchmark {
  name: string;
  run(ctx: BenchContext): Promise<BenchResult[]>;
}

export const ratio = (value: number, baseline: number) => (baseline === 0 ? null : Math.round((value / baseline) * 1000) / 1000);
