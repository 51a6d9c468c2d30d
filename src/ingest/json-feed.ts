import { ParseError } from './parse-error.ts';
import type { ParsedFeed, ParsedItem } from './parse-feed.ts';

/** JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), to the same shape the XML formats produce. */

type Json = Record<string, unknown>;
const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v : null);
const obj = (v: unknown): Json | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null);

function lineColumn(text: string, position: number): { line: number; column: number } {
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  return { line, column: position - before.lastIndexOf('\n') };
}

/**
 * Offset of the first syntax error in a JSON text (Node 20's JSON.parse messages do not always carry one):
 * a small recursive-descent scan, run only after JSON.parse has failed.
 */
export function jsonErrorOffset(text: string): number | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail();
      }
    }
    if (c === '"') return str();
    const lit = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!lit) fail();
    i += lit![0].length;
  };
  const str = () => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') i++;
      else if (text.charCodeAt(i) < 0x20) fail();
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  try {
    value();
    ws();
    return i < text.length ? i : null;
  } catch (at) {
    return typeof at === 'number' ? at : null;
  }
}

/** Relative URLs are resolved against feed_url, else home_page_url, as the spec's publishers expect. */
function resolve(url: string | null, base: string | null): string | null {
  if (!url) return null;
  try {
    return new URL(url, base ?? undefined).toString();
  } catch {
    return url;
  }
}

export function parseJsonFeed(text: string, baseUrl?: string): ParsedFeed {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const pos = /position (\d+)/.exec(message);
    const offset = pos ? Number(pos[1]) : jsonErrorOffset(text);
    const at = offset === null ? undefined : lineColumn(text, offset);
    throw new ParseError('malformed-json', `not valid JSON: ${message}`, at);
  }
  const root = obj(data);
  const version = str(root?.version);
  if (!root || !version || !/^https?:\/\/jsonfeed\.org\/version\/1(\.1)?$/.test(version)) {
    throw new ParseError('not-a-feed', 'JSON document is not a JSON Feed: "version" must be https://jsonfeed.org/version/1 or /1.1');
  }
  if (!Array.isArray(root.items)) throw new ParseError('not-a-feed', 'JSON Feed has no "items" array');
  const base = resolve(str(root.feed_url), baseUrl ?? null) ?? resolve(str(root.home_page_url), baseUrl ?? null) ?? baseUrl ?? null;
  const language = str(root.language);
  const authorName = (o: Json | null) => {
    const authors = Array.isArray(o?.authors) ? (o.authors as unknown[]) : [];
    const first = obj(authors[0]) ?? obj(o?.author);
    return str(first?.name);
  };
  const feedAuthor = authorName(root);
  const hubs = Array.isArray(root.hubs) ? (root.hubs as unknown[]).map(obj) : [];
  const websub = hubs.find((h) => h && /websub|pubsubhubbub/i.test(String(h.type ?? '')));
  const items: ParsedItem[] = [];
  for (const raw of root.items as unknown[]) {
    const it = obj(raw);
    if (!it) continue;
    // A string (numbers are common in 1.0 feeds); anything else is no id: String({}) gave every such item
    // the guid "[object Object]", so they all shared one story id and all but one were lost.
    const id = typeof it.id === 'string' || typeof it.id === 'number' ? String(it.id) : null;
    items.push({
      guid: id && id.trim() ? id : null,
      link: resolve(str(it.url) ?? str(it.external_url), base),
      title: plainMarkup(str(it.title) ?? ''),
      summaryHtml: ((t) => (t === null ? null : plainMarkup(t)))(str(it.summary)) ?? str(it.content_html) ?? escapeText(str(it.content_text) ?? ''),
      categories: Array.isArray(it.tags) ? (it.tags as unknown[]).filter((t): t is string => typeof t === 'string') : [],
      published: str(it.date_published),
      updated: str(it.date_modified),
      author: authorName(it) ?? feedAuthor,
      language: str(it.language) ?? language,
      image: resolve(str(it.image) ?? str(it.banner_image), base),
    });
  }
  return {
    format: version.endsWith('1.1') ? 'json1.1' : 'json1.0',
    title: str(root.title) ?? '',
    link: resolve(str(root.home_page_url), baseUrl ?? null),
    language,
    hub: websub ? str(websub.url) : null,
    self: resolve(str(root.feed_url), baseUrl ?? null),
    hints: { ttlMinutes: null, updatePeriod: null, updateFrequency: null, skipHours: [], skipDays: [] },
    items,
  };
}

/** content_text is plain text; the normalizer treats summaries as HTML, so markup characters are escaped. */
const escapeText = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/**
 * An item's title and summary are plain text in JSON Feed, but the normalizer reads them as HTML, so
 * "The <video> element" lost its tag name and "x<y" everything after the x. Their "<" are escaped; their
 * "&" are not, as publishers do put entities there ("Blackletter &amp; thick", a real feed) and a feed
 * reader shows them decoded.
 */
const plainMarkup = (t: string) => t.replace(/</g, '&lt;');
