/**
 * Charts as SVG strings rendered by Herald: no charting library, no CDN, no script needed to see them.
 * Pure functions of their data, tested byte for byte.
 */

export interface Point {
  at: number;
  value: number;
}
export interface Series {
  name: string;
  points: Point[];
}

const PALETTE = ['#0b57d0', '#d93025', '#188038', '#e37400', '#9334e6', '#007b83'];
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const num = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

/** A round upper bound for the y axis: 1, 2 or 5 times a power of ten. */
export function niceMax(max: number): number {
  if (max <= 0) return 1;
  const pow = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * pow >= max) return m * pow;
  return 10 * pow;
}

function timeLabel(at: number, spanMs: number): string {
  const d = new Date(at);
  const hh = String(d.getUTCHours()).padStart(2, '0');
  const mm = String(d.getUTCMinutes()).padStart(2, '0');
  return spanMs > 2 * 24 * 3600_000 ? `${d.getUTCMonth() + 1}/${d.getUTCDate()}` : `${hh}:${mm}`;
}

export function renderLineChart(input: { title: string; series: Series[]; from: number; to: number; width?: number; height?: number; unit?: string }): string {
  const width = input.width ?? 640;
  const height = input.height ?? 220;
  const pad = { left: 48, right: 12, top: 28, bottom: 40 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...input.series.flatMap((s) => s.points.map((p) => p.value))));
  const span = Math.max(1, input.to - input.from);
  const x = (at: number) => pad.left + ((at - input.from) / span) * w;
  const y = (v: number) => pad.top + h - (v / max) * h;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(input.title)}">`);
  parts.push(`<title>${esc(input.title)}</title>`);
  parts.push(`<text x="${pad.left}" y="18" font-size="13" font-weight="600" fill="#1b1b1f">${esc(input.title)}</text>`);
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    parts.push(`<line x1="${pad.left}" x2="${pad.left + w}" y1="${num(y(v))}" y2="${num(y(v))}" stroke="#e3e3e8"/>`);
    parts.push(`<text x="${pad.left - 6}" y="${num(y(v) + 4)}" font-size="11" text-anchor="end" fill="#5b5b66">${num(v)}${input.unit ? esc(input.unit) : ''}</text>`);
  }
  for (const frac of [0, 0.25, 0.5, 0.75, 1]) {
    const at = input.from + span * frac;
    parts.push(`<text x="${num(x(at))}" y="${pad.top + h + 16}" font-size="11" text-anchor="middle" fill="#5b5b66">${timeLabel(at, span)}</text>`);
  }
  input.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = s.points.map((p) => `${num(x(p.at))},${num(y(p.value))}`).join(' ');
    if (pts) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"><title>${esc(s.name)}</title></polyline>`);
    const lx = pad.left + i * 150;
    parts.push(`<rect x="${lx}" y="${height - 14}" width="10" height="10" fill="${color}"/><text x="${lx + 14}" y="${height - 5}" font-size="11" fill="#1b1b1f">${esc(s.name)}</text>`);
  });
  if (input.series.every((s) => s.points.every((p) => p.value === 0))) {
    parts.push(`<text x="${pad.left + w / 2}" y="${pad.top + h / 2}" font-size="12" text-anchor="middle" fill="#5b5b66">no events in this period</text>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

/** A small inline trend line (e.g. items per day of a feed). */
export function renderSparkline(values: number[], opts: { width?: number; height?: number; label: string }): string {
  const width = opts.width ?? 120;
  const height = opts.height ?? 24;
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const pts = values.map((v, i) => `${num(i * step)},${num(height - 2 - (v / max) * (height - 4))}`).join(' ');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(opts.label)}"><title>${esc(opts.label)}</title><polyline fill="none" stroke="#0b57d0" stroke-width="1.5" points="${pts}"/></svg>`;
}
