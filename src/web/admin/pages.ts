import { escapeHtml as esc } from '../../deliver/email/render.ts';

/** Server-rendered console pages: plain HTML, styles and script from /admin/assets, nothing inline. */

export const ADMIN_NAV = [
  ['/admin', 'Overview'],
  ['/admin/feeds', 'Feeds'],
  ['/admin/topics', 'Topics'],
  ['/admin/trace', 'Trace'],
  ['/admin/ledger', 'Ledger'],
  ['/admin/queues', 'Queues'],
] as const;

export function adminShell(input: { title: string; active: string; body: string }): string {
  const nav = ADMIN_NAV.map(([href, label]) => `<a href="${href}"${href === input.active ? ' aria-current="page"' : ''}>${label}</a>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(input.title)} · Herald admin</title><link rel="stylesheet" href="/admin/assets/admin.css"><script type="module" src="/admin/assets/admin.js"></script></head>
<body><header class="bar"><strong>Herald admin</strong><nav aria-label="Console">${nav}</nav></header><main>${input.body}</main></body></html>`;
}

export interface QueueRow {
  queue: string;
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
}

export function renderQueueTable(rows: QueueRow[]): string {
  return `<table class="queues"><caption>Queues</caption><thead><tr><th scope="col">Queue</th><th scope="col">Waiting</th><th scope="col">Active</th><th scope="col">Delayed</th><th scope="col">Failed</th></tr></thead><tbody>${rows
    .map((r) => `<tr data-queue="${esc(r.queue)}"><th scope="row">${esc(r.queue)}</th><td data-k="waiting">${r.waiting}</td><td data-k="active">${r.active}</td><td data-k="delayed">${r.delayed}</td><td data-k="failed" class="${r.failed > 0 ? 'bad' : ''}">${r.failed}</td></tr>`)
    .join('')}</tbody></table>`;
}

export function renderOverview(input: {
  range: '24h' | '7d';
  rangeLabel: string;
  totals: { label: string; value: number }[];
  charts: { id: string; svg: string }[];
  queues: QueueRow[];
}): string {
  const other = input.range === '24h' ? '7d' : '24h';
  const body = `<h1>Overview</h1>
<p class="range">Showing the ${esc(input.rangeLabel)} (UTC). <a href="/admin?range=${other}">Show ${other === '7d' ? 'the last 7 days' : 'the last 24 hours'}</a></p>
<section aria-label="Totals" class="totals">${input.totals.map((t) => `<div class="stat"><span class="v">${t.value}</span><span class="k">${esc(t.label)}</span></div>`).join('')}</section>
<section aria-label="Live queues" id="live" data-events="/admin/events">${renderQueueTable(input.queues)}<p class="hint" id="live-status">Live: updates every few seconds.</p></section>
<section aria-label="Charts" class="charts">${input.charts.map((c) => `<figure class="chart" data-chart="${esc(c.id)}" data-range="${input.range}">${c.svg}</figure>`).join('')}</section>`;
  return adminShell({ title: 'Overview', active: '/admin', body });
}
