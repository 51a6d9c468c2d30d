import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Queue } from 'bullmq';
import { parseSeriesField, type Stats } from '../store/stats.ts';

/**
 * Every Redis-backed series Herald records, with its Prometheus type and help. A name recorded but not
 * declared here is not exported: the declaration is the contract with dashboards.
 */
export const SERIES = {
  herald_stories_ingested_total: { type: 'counter', help: 'New stories created from feed items.' },
  herald_feed_fetches_total: { type: 'counter', help: 'Feed fetches by result (ok, not_modified, error) and error code.' },
  herald_jobs_total: { type: 'counter', help: 'BullMQ jobs finished, by queue, job name and outcome (completed, retried, failed).' },
  herald_alerts_total: { type: 'counter', help: 'Alert deliveries ended, by channel and outcome (sent, failed, skipped).' },
  herald_push_responses_total: { type: 'counter', help: 'Push service answers by HTTP status.' },
  herald_smtp_errors_total: { type: 'counter', help: 'SMTP errors by kind (transient, permanent).' },
  herald_digests_total: { type: 'counter', help: 'Digests ended, by outcome (sent, skipped).' },
  herald_story_to_delivery_seconds: { type: 'histogram', help: 'Time from a story first seen to its alert accepted by the push service or SMTP server.' },
  herald_digest_lateness_seconds: { type: 'histogram', help: 'Time from a digest falling due to it being sent.' },
} as const satisfies Record<string, { type: 'counter' | 'histogram'; help: string }>;
export type SeriesName = keyof typeof SERIES;

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** Prometheus text exposition of the Redis-backed totals. */
export function renderSeries(totals: Readonly<Record<string, number>>): string {
  const byMetric = new Map<string, string[]>();
  for (const [field, value] of Object.entries(totals).sort(([a], [b]) => a.localeCompare(b))) {
    const { name, labels } = parseSeriesField(field);
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const spec = SERIES[base as SeriesName] ?? SERIES[name as SeriesName];
    if (!spec) continue;
    const metric = spec === SERIES[name as SeriesName] ? name : base;
    const labelText = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
    const lines = byMetric.get(metric) ?? [];
    lines.push(`${name}${labelText ? `{${labelText}}` : ''} ${value}`);
    byMetric.set(metric, lines);
  }
  let out = '';
  for (const [metric, lines] of byMetric) {
    const spec = SERIES[metric as SeriesName];
    out += `# HELP ${metric} ${spec.help}\n# TYPE ${metric} ${spec.type}\n${lines.join('\n')}\n`;
  }
  return out;
}

/**
 * The /metrics registry: process metrics and live queue gauges from prom-client, plus the Redis-backed
 * counters and histograms that every Herald process writes.
 */
export function createMetrics(opts: { queues: Readonly<Record<string, Queue>>; stats: Stats; now: () => number }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'herald_' });
  const states = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;
  new Gauge({
    name: 'herald_queue_jobs',
    help: 'Jobs in each BullMQ queue by state.',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [name, queue] of Object.entries(opts.queues)) {
        const counts = await queue.getJobCounts(...states);
        for (const s of states) this.set({ queue: name, state: s }, counts[s] ?? 0);
      }
    },
  });
  new Gauge({
    name: 'herald_queue_oldest_waiting_seconds',
    help: 'Age of the oldest job waiting in each queue (0 when empty).',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [name, queue] of Object.entries(opts.queues)) {
        const [oldest] = await queue.getJobs(['waiting', 'prioritized'], 0, 0, true);
        this.set({ queue: name }, oldest ? Math.max(0, (opts.now() - oldest.timestamp) / 1000) : 0);
      }
    },
  });
  return {
    contentType: registry.contentType,
    async render(): Promise<string> {
      return `${await registry.metrics()}\n${renderSeries(await opts.stats.totals())}`;
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
