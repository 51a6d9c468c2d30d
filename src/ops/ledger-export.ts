import type { LedgerEntry } from '../store/ledger.ts';

/** Streams the delivery ledger as CSV or JSON, one record at a time: memory stays bounded whatever the range. */

export type ExportFormat = 'csv' | 'json';

export const EXPORT_COLUMNS = [
  'createdAt', 'updatedAt', 'subscriberId', 'storyId', 'channel', 'topicId', 'status', 'reason', 'attempts', 'reclaims', 'lastError', 'via', 'clickedAt',
] as const;
type Column = (typeof EXPORT_COLUMNS)[number];

/** Longest range one export may ask for: the ledger's time index keeps about this much. */
export const EXPORT_MAX_DAYS = 35;

const iso = (t: number | null) => (t === null || !Number.isFinite(t) ? null : new Date(t).toISOString());

export function exportRow(e: LedgerEntry): Record<Column, string | number | null> {
  return {
    createdAt: iso(e.createdAt), updatedAt: iso(e.updatedAt), subscriberId: e.subscriberId, storyId: e.storyId, channel: e.channel,
    topicId: e.topicId || null, status: e.status, reason: e.reason, attempts: e.attempts, reclaims: e.reclaims,
    lastError: e.lastError, via: e.via, clickedAt: iso(e.clickedAt),
  };
}

/** RFC 4180 field: quoted when it holds a comma, quote or line break; a leading =+-@ is defused for spreadsheets. */
export function csvField(v: string | number | null): string {
  if (v === null) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export async function* exportLedger(entries: AsyncIterable<LedgerEntry>, format: ExportFormat): AsyncGenerator<string> {
  if (format === 'csv') {
    yield `${EXPORT_COLUMNS.join(',')}\r\n`;
    for await (const e of entries) {
      const row = exportRow(e);
      yield `${EXPORT_COLUMNS.map((c) => csvField(row[c])).join(',')}\r\n`;
    }
    return;
  }
  yield '[';
  let first = true;
  for await (const e of entries) {
    yield `${first ? '\n' : ',\n'}${JSON.stringify(exportRow(e))}`;
    first = false;
  }
  yield '\n]\n';
}

const EARLIEST = Date.UTC(2000, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59);

/** Validates an export request's range: ISO dates or times; `to` defaults to now, `from` to a day before `to`. */
export function parseExportRange(q: { from?: string; to?: string; format?: string }, now: number): { from: number; to: number; format: ExportFormat } | { error: string } {
  const format = q.format ?? 'csv';
  if (format !== 'csv' && format !== 'json') return { error: `format must be csv or json, not "${format}"` };
  // Within years 2000-9999: the extremes JavaScript dates allow made a day before `to` an invalid date (500).
  const plausible = (t: number) => Number.isFinite(t) && t >= EARLIEST && t <= LATEST;
  const to = q.to ? Date.parse(q.to) : now;
  if (!plausible(to)) return { error: `"to" is not a date or time between 2000 and 9999: ${q.to}` };
  const from = q.from ? Date.parse(q.from) : to - 86_400_000;
  if (!plausible(from)) return { error: `"from" is not a date or time between 2000 and 9999: ${q.from ?? '(a day before "to")'}` };
  if (from >= to) return { error: '"from" must be before "to"' };
  if (to - from > EXPORT_MAX_DAYS * 86_400_000) return { error: `a range of at most ${EXPORT_MAX_DAYS} days can be exported (the ledger's time index keeps that long)` };
  return { from, to, format };
}
