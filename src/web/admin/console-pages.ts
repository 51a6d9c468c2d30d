import { escapeHtml as esc } from '../../deliver/email/render.ts';
import type { PreviewResult } from '../../classify/preview.ts';
import type { FeedHealth } from '../../ingest/health.ts';
import type { ProbeResult } from '../../ingest/probe.ts';
import type { Trace } from '../../ops/trace.ts';
import { renderSparkline } from './charts.ts';
import { adminShell } from './pages.ts';

/** The console's feeds, topics, trace and ledger pages: server-rendered, pure functions of their data. */

const when = (iso: string | null) => (iso ? `<time datetime="${esc(iso)}">${esc(iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</time>` : '—');
const notice = (n: { kind: 'ok' | 'error'; text: string } | null) => (n ? `<p class="notice ${n.kind}" role="${n.kind === 'error' ? 'alert' : 'status'}">${esc(n.text)}</p>` : '');

export interface FeedRow {
  health: FeedHealth;
  paused: boolean;
  itemsPerDay: number[];
}

const postButton = (action: string, label: string, cls = '') =>
  `<form method="post" action="${esc(action)}" class="inline"><button type="submit"${cls ? ` class="${cls}"` : ''}>${esc(label)}</button></form>`;

export function renderProbe(p: ProbeResult): string {
  if (!p.ok) return `<section class="probe bad" aria-label="What the poller saw"><h2>What the poller saw</h2><p>${esc(p.url)}: <strong>${esc(p.error.code)}</strong>: ${esc(p.error.message)}</p></section>`;
  const items = p.sample.map((i) => `<li>${i.link ? `<a href="${esc(i.link)}" rel="noreferrer">${esc(i.title || i.link)}</a>` : esc(i.title)}${i.published ? ` · ${when(i.published)}` : ''}</li>`).join('');
  return `<section class="probe" aria-label="What the poller saw"><h2>What the poller saw</h2>
<p>HTTP ${p.status} from ${esc(p.finalUrl)} (${esc(p.contentType ?? 'no content type')}): a ${esc(p.format)} feed “${esc(p.title)}” with ${p.items} item${p.items === 1 ? '' : 's'}.</p>
${items ? `<ol class="sample">${items}</ol>` : '<p>The feed has no items yet.</p>'}</section>`;
}

export function renderFeeds(input: {
  rows: FeedRow[];
  notice?: { kind: 'ok' | 'error'; text: string } | null;
  probe?: ProbeResult | null;
  form?: { url: string; id: string; title: string };
}): string {
  const form = input.form ?? { url: '', id: '', title: '' };
  const rows = input.rows.map(({ health: h, paused, itemsPerDay }) => {
    const status = paused ? 'paused' : h.status;
    const bad = status === 'failing' || status === 'disabled';
    const error = h.lastError ? `<span class="err">${esc(h.lastError.code ?? 'error')}: ${esc(h.lastError.message)}</span><br><span class="hint">${when(h.lastError.at)}</span>` : '—';
    const week = itemsPerDay.reduce((a, b) => a + b, 0);
    const actions = [
      postButton(`/admin/feeds/${encodeURIComponent(h.id)}/check`, 'Check now'),
      paused || status === 'disabled' ? postButton(`/admin/feeds/${encodeURIComponent(h.id)}/resume`, 'Resume') : postButton(`/admin/feeds/${encodeURIComponent(h.id)}/pause`, 'Pause'),
      postButton(`/admin/feeds/${encodeURIComponent(h.id)}/remove`, 'Remove', 'danger'),
    ].join('');
    return `<tr data-feed="${esc(h.id)}" data-status="${status}"${bad ? ' class="bad"' : ''}>
<th scope="row"><strong>${esc(h.title ?? h.id)}</strong><br><span class="hint">${esc(h.id)} · <a href="${esc(h.url)}" rel="noreferrer">${esc(h.url)}</a></span></th>
<td><span class="badge ${status}">${status}</span>${h.disabledReason && !paused ? `<br><span class="hint">${esc(h.disabledReason)}</span>` : ''}</td>
<td>${when(h.lastSuccessAt)}</td><td class="left">${error}</td><td>${h.consecutiveFailures}</td><td>${when(h.nextCheckAt)}</td>
<td>${renderSparkline(itemsPerDay, { label: `new stories per day, last ${itemsPerDay.length} days: ${itemsPerDay.join(', ')}` })}<br><span class="hint">${week} in 7 days</span></td>
<td class="actions">${actions}</td></tr>`;
  });
  const body = `<h1>Feeds</h1>${notice(input.notice ?? null)}${input.probe ? renderProbe(input.probe) : ''}
<form method="post" action="/admin/feeds" class="add" aria-label="Add a feed"><h2>Add a feed</h2>
<p class="hint">Herald fetches it once, as the poller would, and adds it only if it is a feed.</p>
<label>URL <input name="url" type="url" required value="${esc(form.url)}" size="48"></label>
<label>Id (optional) <input name="id" value="${esc(form.id)}" pattern="[a-z0-9][a-z0-9\\-]{0,62}"></label>
<label>Title (optional) <input name="title" value="${esc(form.title)}" maxlength="200"></label>
<button type="submit">Fetch and add</button></form>
<table class="feeds"><caption>${input.rows.length} feed${input.rows.length === 1 ? '' : 's'}</caption><thead><tr><th scope="col">Feed</th><th scope="col">Health</th><th scope="col">Last success</th><th scope="col">Last error</th><th scope="col">Failures in a row</th><th scope="col">Next check</th><th scope="col">New stories per day</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows.join('') || '<tr><td colspan="8">No feeds yet: add one above or list them in the feeds file.</td></tr>'}</tbody></table>`;
  return adminShell({ title: 'Feeds', active: '/admin/feeds', body });
}

export interface TopicRow {
  id: string;
  name: string;
  group: string;
  followers: { instant: number; daily: number };
  matchesPerDay: number[];
}

export function renderTopics(input: { rows: TopicRow[]; chart: string }): string {
  const rows = input.rows.map((t) => `<tr data-topic="${esc(t.id)}"><th scope="row"><a href="/admin/topics/${encodeURIComponent(t.id)}">${esc(t.name)}</a><br><span class="hint">${esc(t.id)} · ${esc(t.group)}</span></th>
<td data-k="instant">${t.followers.instant}</td><td data-k="daily">${t.followers.daily}</td>
<td>${renderSparkline(t.matchesPerDay, { label: `matches per day, last ${t.matchesPerDay.length} days: ${t.matchesPerDay.join(', ')}` })}</td><td data-k="week">${t.matchesPerDay.reduce((a, b) => a + b, 0)}</td></tr>`);
  const body = `<h1>Topics</h1>
<figure class="chart" aria-label="Matches per day">${input.chart}</figure>
<table class="topics"><caption>Catalog topics</caption><thead><tr><th scope="col">Topic</th><th scope="col">Instant followers</th><th scope="col">Daily followers</th><th scope="col">Matches per day</th><th scope="col">Matches in 7 days</th></tr></thead>
<tbody>${rows.join('')}</tbody></table>`;
  return adminShell({ title: 'Topics', active: '/admin/topics', body });
}

export function renderBacktest(input: {
  topic: { id: string; name: string; query: string };
  edited: string;
  days: number;
  current: PreviewResult | null;
  result: PreviewResult | null;
  error: string | null;
}): string {
  const { topic } = input;
  const list = (r: PreviewResult) =>
    r.stories.length === 0
      ? '<p>No story of the period matches.</p>'
      : `<ol class="matches">${r.stories.slice(0, 50).map((s) => `<li><a href="${esc(s.url)}" rel="noreferrer">${esc(s.title)}</a> <span class="hint">score ${s.score}${s.alert ? '' : ' (below the “best only” threshold)'} · ${esc(s.why)}</span></li>`).join('')}</ol>`;
  const summary = (label: string, r: PreviewResult) => `<p class="summary" data-k="${label === 'Edited query' ? 'edited' : 'current'}">${esc(label)}: <strong>${r.matched}</strong> of ${r.scanned} recent stories matched ; ${r.alerts} strong enough for readers who take only the best.</p>`;
  const body = `<h1>${esc(topic.name)}</h1><p class="hint">${esc(topic.id)} · the catalog is the operator's file: edit the query here to see what it would match over the last ${input.days} days, then save it in the topics file.</p>
<form method="post" action="/admin/topics/${encodeURIComponent(topic.id)}/backtest" aria-label="Backtest a query"><label for="query">Query</label><br>
<textarea id="query" name="query" rows="6" cols="90" required>${esc(input.edited)}</textarea><br><button type="submit">Backtest</button></form>
${notice(input.error ? { kind: 'error', text: input.error } : null)}
${input.current ? summary('Current query', input.current) : ''}
${input.result ? `${summary('Edited query', input.result)}${list(input.result)}` : ''}`;
  return adminShell({ title: topic.name, active: '/admin/topics', body });
}

const OUTCOME_CLASS: Record<string, string> = { sent: 'ok', failed: 'bad', skipped: 'warn', held: 'warn', pending: 'warn', none: 'warn' };

export function renderTrace(input: { subscriber: string; story: string; trace: Trace | null; error: string | null }): string {
  const t = input.trace;
  const result = t
    ? `<section aria-label="Trace" class="trace">
<h2>Story</h2><p><a href="${esc(t.story.url)}" rel="noreferrer">${esc(t.story.title)}</a><br><span class="hint">${esc(t.story.id)} from feed ${esc(t.story.feedId)}</span></p>
<ol class="timeline"><li>Published ${when(t.story.publishedAt)}</li><li>Ingested ${when(t.story.ingestedAt)}</li><li>Classified ${t.story.classifiedAt ? when(t.story.classifiedAt) : 'not yet'}</li></ol>
<h2>Subscriber</h2><p>${esc(t.subscriber.id)}${t.subscriber.email ? ` &lt;${esc(t.subscriber.email)}&gt;` : ''} · quality ${esc(t.subscriber.quality)} · ${esc(t.subscriber.timeZone)}</p>
<h2>Matched topics</h2><p class="hint">${esc(t.matchedNote)}</p>
${t.matches.length === 0 ? '<p>No topic matches this story.</p>' : `<table class="matches"><thead><tr><th scope="col">Topic</th><th scope="col">Score</th><th scope="col">Why</th><th scope="col">This reader</th></tr></thead><tbody>${t.matches.map((m) => `<tr><th scope="row">${esc(m.name)}<br><span class="hint">${esc(m.topicId)}</span></th><td>${m.score}</td><td class="left">${esc(m.why)}</td><td class="left">${esc(m.follow)}</td></tr>`).join('')}</tbody></table>`}
<h2>Channels</h2><ul class="channels">${t.channels.map((c) => `<li data-channel="${c.channel}" data-outcome="${c.outcome}" class="${OUTCOME_CLASS[c.outcome] ?? ''}"><strong>${c.channel}</strong>: ${esc(c.explanation)}${c.record?.lastError && c.outcome !== 'failed' ? `<br><span class="hint">last error: ${esc(c.record.lastError)}</span>` : ''}</li>`).join('')}</ul></section>`
    : '';
  const body = `<h1>Trace an alert</h1>
<form method="get" action="/admin/trace" class="add" aria-label="Trace"><label>Subscriber (email or id) <input name="subscriber" required value="${esc(input.subscriber)}"></label>
<label>Story (URL or id) <input name="story" required value="${esc(input.story)}" size="48"></label><button type="submit">Trace</button></form>
<p class="hint">Also on the command line: <code>herald trace --subscriber X --story Y</code>.</p>
${notice(input.error ? { kind: 'error', text: input.error } : null)}${result}`;
  return adminShell({ title: 'Trace', active: '/admin/trace', body });
}

export function renderLedgerPage(input: { from: string; to: string; error: string | null }): string {
  const body = `<h1>Delivery ledger</h1>
<p>Every alert's delivery record created in a time range (UTC), streamed as CSV or JSON.</p>
${notice(input.error ? { kind: 'error', text: input.error } : null)}
<form method="get" action="/admin/ledger/export" class="add" aria-label="Export"><label>From <input name="from" value="${esc(input.from)}" required></label>
<label>To <input name="to" value="${esc(input.to)}" required></label>
<label>Format <select name="format"><option value="csv">CSV</option><option value="json">JSON</option></select></label>
<button type="submit">Export</button></form>`;
  return adminShell({ title: 'Ledger', active: '/admin/ledger', body });
}
