import type { TopicStats } from '../store/ledger.ts';

/** Prometheus text exposition of the delivery counters: one counter, labelled by topic, channel and outcome. */
export function renderDeliveryMetrics(stats: Record<string, TopicStats>): string {
  const lines = [
    '# HELP herald_delivery_total Alerts by topic, channel and outcome (sent, failed, skipped, clicked), from the delivery ledger.',
    '# TYPE herald_delivery_total counter',
  ];
  for (const [topic, byChannel] of Object.entries(stats)) {
    for (const [channel, counts] of Object.entries(byChannel)) {
      for (const [outcome, n] of Object.entries(counts)) {
        lines.push(`herald_delivery_total{topic="${topic.replace(/["\\\n]/g, '_')}",channel="${channel}",outcome="${outcome}"} ${n}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}
