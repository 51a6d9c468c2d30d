import { runCommands, type Command, type RedisClient } from './redis.ts';

/**
 * Owns Herald's event counters. They live in Redis, not in process memory, so /metrics and the console
 * show the whole deployment however many worker processes produce the events. Each event increments a
 * running total plus a per-minute and a per-hour bucket; buckets expire, so storage stays bounded.
 */
const totalsKey = (prefix: string) => `${prefix}:stats:total`;
const minuteKey = (prefix: string, minute: number) => `${prefix}:stats:m:${minute}`;
const hourKey = (prefix: string, hour: number) => `${prefix}:stats:h:${hour}`;

export const MINUTE_RETENTION_SECONDS = 2 * 24 * 60 * 60;
export const HOUR_RETENTION_SECONDS = 8 * 24 * 60 * 60;

export type Labels = Readonly<Record<string, string | number>>;

/** `name{a="x",b="y"}` with labels sorted: one hash field per series. */
export function seriesField(name: string, labels: Labels = {}): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return name;
  return `${name}{${keys.map((k) => `${k}="${String(labels[k]).replace(/["\\\n]/g, '_')}"`).join(',')}}`;
}

export function parseSeriesField(field: string): { name: string; labels: Record<string, string> } {
  const brace = field.indexOf('{');
  if (brace < 0) return { name: field, labels: {} };
  const labels: Record<string, string> = {};
  for (const m of field.slice(brace + 1, -1).matchAll(/(\w+)="([^"]*)"/g)) labels[m[1]!] = m[2]!;
  return { name: field.slice(0, brace), labels };
}

/** Upper bounds (seconds) of the latency histograms: from sub-second pushes to day-late digests. */
export const LATENCY_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400];

export function createStats(redis: RedisClient, prefix: string) {
  const write = (fields: Record<string, number>, at: number) => {
    const minute = Math.floor(at / 60_000);
    const hour = Math.floor(at / 3_600_000);
    // Three keys in three slots: one pipeline on a single Redis, per-node batches on a cluster.
    const cmds: Command[] = [];
    for (const [field, by] of Object.entries(fields)) {
      cmds.push(['hincrbyfloat', totalsKey(prefix), field, by]);
      cmds.push(['hincrbyfloat', minuteKey(prefix, minute), field, by]);
      cmds.push(['hincrbyfloat', hourKey(prefix, hour), field, by]);
    }
    cmds.push(['expire', minuteKey(prefix, minute), MINUTE_RETENTION_SECONDS]);
    cmds.push(['expire', hourKey(prefix, hour), HOUR_RETENTION_SECONDS]);
    return runCommands(redis, cmds);
  };

  return {
    async incr(name: string, labels: Labels, at: number, by = 1) {
      await write({ [seriesField(name, labels)]: by }, at);
    },

    /** A histogram observation, stored Prometheus-style as cumulative `_bucket`, `_sum` and `_count` series. */
    async observe(name: string, labels: Labels, seconds: number, at: number, buckets: readonly number[] = LATENCY_BUCKETS) {
      const fields: Record<string, number> = {
        [seriesField(`${name}_sum`, labels)]: seconds,
        [seriesField(`${name}_count`, labels)]: 1,
      };
      for (const le of [...buckets.filter((b) => seconds <= b), '+Inf']) fields[seriesField(`${name}_bucket`, { ...labels, le })] = 1;
      await write(fields, at);
    },

    async totals(): Promise<Record<string, number>> {
      const raw = await redis.hgetall(totalsKey(prefix));
      return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
    },

    /** Buckets from `from` to `to` (inclusive), oldest first, each with its series values. */
    async series(resolution: 'minute' | 'hour', from: number, to: number): Promise<{ at: number; values: Record<string, number> }[]> {
      const step = resolution === 'minute' ? 60_000 : 3_600_000;
      const first = Math.floor(from / step);
      const last = Math.floor(to / step);
      const cmds: Command[] = [];
      for (let b = first; b <= last; b++) cmds.push(['hgetall', resolution === 'minute' ? minuteKey(prefix, b) : hourKey(prefix, b)]);
      const res = await runCommands(redis, cmds);
      return res.map((h, i) => ({
        at: (first + i) * step,
        values: Object.fromEntries(Object.entries((h ?? {}) as Record<string, string>).map(([k, v]) => [k, Number(v)])),
      }));
    },
  };
}
export type Stats = ReturnType<typeof createStats>;
