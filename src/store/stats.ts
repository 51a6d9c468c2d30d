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

/**
 * How long events are summed in process memory before one pipeline adds them to Redis. A push fan-out makes
 * several events per alert (a histogram observation alone touches a dozen series); written one by one they
 * cost more Redis commands than the delivery itself. Summed, a flush costs one command per distinct series.
 * A process killed with SIGKILL loses at most this window of counts (never an alert: the ledger is separate).
 */
export const STATS_FLUSH_MS = 250;
/** A flush is started early once this many distinct series wait, so memory stays small under any load. */
const FLUSH_AT_FIELDS = 2000;

export function createStats(redis: RedisClient, prefix: string, opts: { flushMs?: number; onError?: (err: Error) => void } = {}) {
  const flushMs = opts.flushMs ?? STATS_FLUSH_MS;
  /** Pending increments per minute bucket (the hour and the running total are derived at flush). */
  let pending = new Map<number, Map<string, number>>();
  let pendingFields = 0;
  let timer: NodeJS.Timeout | null = null;
  let inFlight: Promise<unknown> = Promise.resolve();

  const flush = (): Promise<unknown> => {
    if (timer) clearTimeout(timer);
    timer = null;
    // Nothing new: wait for the write in flight; its failure was already reported (onError or its caller).
    if (pendingFields === 0) return inFlight.catch(() => undefined);
    const batch = pending;
    pending = new Map();
    pendingFields = 0;
    const totals = new Map<string, number>();
    const hours = new Map<number, Map<string, number>>();
    const cmds: Command[] = [];
    for (const [minute, fields] of batch) {
      const hour = Math.floor(minute / 60);
      const inHour = hours.get(hour) ?? new Map<string, number>();
      hours.set(hour, inHour);
      for (const [field, by] of fields) {
        cmds.push(['hincrbyfloat', minuteKey(prefix, minute), field, by]);
        inHour.set(field, (inHour.get(field) ?? 0) + by);
        totals.set(field, (totals.get(field) ?? 0) + by);
      }
      cmds.push(['expire', minuteKey(prefix, minute), MINUTE_RETENTION_SECONDS]);
    }
    for (const [hour, fields] of hours) {
      for (const [field, by] of fields) cmds.push(['hincrbyfloat', hourKey(prefix, hour), field, by]);
      cmds.push(['expire', hourKey(prefix, hour), HOUR_RETENTION_SECONDS]);
    }
    for (const [field, by] of totals) cmds.push(['hincrbyfloat', totalsKey(prefix), field, by]);
    // Flushes stay in order, so a reader that awaited flush() sees every earlier event.
    const run = inFlight.catch(() => undefined).then(() => runCommands(redis, cmds));
    inFlight = run;
    return run;
  };

  // Series names built once per name and label set (up to a thousand of each): an event per alert would
  // otherwise sort, escape and join its labels every time. The lookup key is cheaper than the name.
  const lookupKey = (name: string, labels: Labels) => {
    let key = name;
    for (const k in labels) key += `\u0000${k}\u0001${labels[k]}`;
    return key;
  };
  const counters = new Map<string, string>();
  const counterField = (name: string, labels: Labels) => {
    const key = lookupKey(name, labels);
    let field = counters.get(key);
    if (field === undefined) {
      field = seriesField(name, labels);
      if (counters.size < 1000) counters.set(key, field);
    }
    return field;
  };
  const histograms = new Map<string, { sum: string; count: string; buckets: string[]; inf: string }>();
  const histogramFields = (name: string, labels: Labels, buckets: readonly number[]) => {
    const key = `${lookupKey(name, labels)}\u0002${buckets === LATENCY_BUCKETS ? '' : buckets.join(',')}`;
    let h = histograms.get(key);
    if (!h) {
      h = {
        sum: seriesField(`${name}_sum`, labels),
        count: seriesField(`${name}_count`, labels),
        buckets: buckets.map((le) => seriesField(`${name}_bucket`, { ...labels, le })),
        inf: seriesField(`${name}_bucket`, { ...labels, le: '+Inf' }),
      };
      if (histograms.size < 1000) histograms.set(key, h);
    }
    return h;
  };

  const flushInBackground = () => void flush().catch((err: Error) => opts.onError?.(err));

  const minuteOf = (at: number) => {
    const minute = Math.floor(at / 60_000);
    let inMinute = pending.get(minute);
    if (!inMinute) pending.set(minute, (inMinute = new Map()));
    return inMinute;
  };
  const add = (inMinute: Map<string, number>, field: string, by: number) => {
    const before = inMinute.get(field);
    if (before === undefined) pendingFields++;
    inMinute.set(field, (before ?? 0) + by);
  };
  /** After adding to the pending sums: makes sure a flush will write them. */
  const scheduled = (): Promise<unknown> => {
    // Started, not awaited: the caller only queued a count, and a failed write is reported where the timer's is.
    if (pendingFields >= FLUSH_AT_FIELDS) flushInBackground();
    else if (!timer) {
      timer = setTimeout(flushInBackground, flushMs);
      // A pending flush never keeps a finished process alive; close() flushes what is left.
      timer.unref();
    }
    return Promise.resolve();
  };

  return {
    /** Adds to the counters (summed in memory, written within STATS_FLUSH_MS); resolves once queued. */
    async incr(name: string, labels: Labels, at: number, by = 1) {
      add(minuteOf(at), counterField(name, labels), by);
      await scheduled();
    },

    /** A histogram observation, stored Prometheus-style as cumulative `_bucket`, `_sum` and `_count` series. */
    async observe(name: string, labels: Labels, seconds: number, at: number, buckets: readonly number[] = LATENCY_BUCKETS) {
      const h = histogramFields(name, labels, buckets);
      const inMinute = minuteOf(at);
      add(inMinute, h.sum, seconds);
      add(inMinute, h.count, 1);
      for (let i = 0; i < buckets.length; i++) if (seconds <= buckets[i]!) add(inMinute, h.buckets[i]!, 1);
      add(inMinute, h.inf, 1);
      await scheduled();
    },

    /** Writes every pending increment now (before reading, and before the process closes its connection). */
    async flush() {
      await flush();
    },

    async totals(): Promise<Record<string, number>> {
      // This process's own recent events first: what it just did shows on its own /metrics at once.
      await flush().catch(() => undefined);
      const raw = await redis.hgetall(totalsKey(prefix));
      return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
    },

    /** Buckets from `from` to `to` (inclusive), oldest first, each with its series values. */
    async series(resolution: 'minute' | 'hour', from: number, to: number): Promise<{ at: number; values: Record<string, number> }[]> {
      await flush().catch(() => undefined);
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
