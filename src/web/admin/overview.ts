import { parseSeriesField } from '../../store/stats.ts';
import type { Series } from './charts.ts';

/** Turns stored per-minute / per-hour buckets into chart series. Pure. */

export type Bucket = { at: number; values: Record<string, number> };
export type Range = '24h' | '7d';
export const RANGES: Record<Range, { resolution: 'minute' | 'hour'; spanMs: number; label: string }> = {
  '24h': { resolution: 'minute', spanMs: 24 * 3600_000, label: 'last 24 hours, per minute' },
  '7d': { resolution: 'hour', spanMs: 7 * 24 * 3600_000, label: 'last 7 days, per hour' },
};

const matches = (labels: Record<string, string>, filter: Record<string, string>) => Object.entries(filter).every(([k, v]) => labels[k] === v);

/** Sum of every series named `name` whose labels include `filter`, bucket by bucket. */
export function sumSeries(buckets: Bucket[], name: string, filter: Record<string, string>, label: string): Series {
  return {
    name: label,
    points: buckets.map((b) => ({
      at: b.at,
      value: Object.entries(b.values).reduce((acc, [field, v]) => {
        const s = parseSeriesField(field);
        return s.name === name && matches(s.labels, filter) ? acc + v : acc;
      }, 0),
    })),
  };
}

/** One series per distinct value of `splitBy` among the matching series. */
export function splitSeries(buckets: Bucket[], name: string, filter: Record<string, string>, splitBy: string): Series[] {
  const values = new Set<string>();
  for (const b of buckets) {
    for (const field of Object.keys(b.values)) {
      const s = parseSeriesField(field);
      if (s.name === name && matches(s.labels, filter) && s.labels[splitBy] !== undefined) values.add(s.labels[splitBy]!);
    }
  }
  return [...values].sort().map((v) => sumSeries(buckets, name, { ...filter, [splitBy]: v }, v));
}

/** Average of a histogram per bucket (sum / count), 0 where nothing was observed. */
export function averageSeries(buckets: Bucket[], histogram: string, label: string): Series {
  const sum = sumSeries(buckets, `${histogram}_sum`, {}, label);
  const count = sumSeries(buckets, `${histogram}_count`, {}, label);
  return { name: label, points: sum.points.map((p, i) => ({ at: p.at, value: count.points[i]!.value > 0 ? p.value / count.points[i]!.value : 0 })) };
}

export const total = (s: Series) => s.points.reduce((a, p) => a + p.value, 0);

export interface OverviewChart {
  id: string;
  title: string;
  unit?: string;
  series: (buckets: Bucket[]) => Series[];
}

export const OVERVIEW_CHARTS: OverviewChart[] = [
  { id: 'stories', title: 'Stories ingested', series: (b) => [sumSeries(b, 'herald_stories_ingested_total', {}, 'stories')] },
  { id: 'alerts', title: 'Alerts sent by channel', series: (b) => splitSeries(b, 'herald_alerts_total', { outcome: 'sent' }, 'channel') },
  {
    id: 'failures',
    title: 'Failures by reason',
    series: (b) => [
      ...splitSeries(b, 'herald_alerts_total', { outcome: 'failed' }, 'reason'),
      sumSeries(b, 'herald_feed_fetches_total', { result: 'error' }, 'feed fetch errors'),
    ],
  },
  { id: 'lateness', title: 'Digest lateness (average)', unit: 's', series: (b) => [averageSeries(b, 'herald_digest_lateness_seconds', 'lateness')] },
  // Every queue worker counts its jobs: the pipeline's heartbeat, stage by stage.
  { id: 'jobs', title: 'Jobs completed by queue', series: (b) => splitSeries(b, 'herald_jobs_total', { outcome: 'completed' }, 'queue') },
];
