import { createRequire } from 'node:module';
import { gunzipSync } from 'node:zlib';
import { Parser as HtmlParser } from 'htmlparser2';
import Parser from 'rss-parser';
import { atomTextAsHtml } from './atom-text.ts';
import { decodeBody } from './decode.ts';
import { parseFastXml, xmlLang } from './fast-xml.ts';
import { parseJsonFeed } from './json-feed.ts';
import { firstReadableDate } from './normalize.ts';
import { ParseError } from './parse-error.ts';
import { resolveXmlBase } from './xml-base.ts';
import { repairXml } from './xml-repair.ts';
import { MAX_DEPTH, nestedDeeperThan, tooDeep } from './xml-scan.ts';

export type FeedFormat = 'rss0.9x' | 'rss1.0' | 'rss2.0' | 'atom0.3' | 'atom1.0' | 'json1.0' | 'json1.1';

export interface ParsedItem {
  guid: string | null;
  link: string | null;
  title: string;
  /** Summary as the feed gave it (HTML or text); the normalizer makes it plain text. */
  summaryHtml: string;
  categories: string[];
  /** Raw date strings as published; the normalizer parses them. */
  published: string | null;
  updated: string | null;
  author: string | null;
  language: string | null;
  image: string | null;
}

/** What the feed says about how often to fetch it (RSS <ttl>, RSS 1.0 syndication module, skipHours/skipDays). */
export interface FeedHints {
  ttlMinutes: number | null;
  updatePeriod: string | null;
  updateFrequency: number | null;
  skipHours: number[];
  skipDays: string[];
}

export interface ParsedFeed {
  format: FeedFormat;
  /** As the feed gave it, read as HTML like item titles (an Atom text-typed title escaped); shown through toPlainText. */
  title: string;
  link: string | null;
  language: string | null;
  /** WebSub hub and self URL, when the feed advertises them. */
  hub: string | null;
  self: string | null;
  hints: FeedHints;
  items: ParsedItem[];
  encoding?: string;
}

export { ParseError, type ParseErrorCode } from './parse-error.ts';

type Raw = Record<string, unknown>;

const parser = new Parser<Raw, Raw>({
  // Documents without a version attribute are common in the wild and are RSS 2.0 in practice.
  defaultRSS: 2,
  customFields: {
    feed: ['sy:updatePeriod', 'sy:updateFrequency', ['atom:link', 'atomLinks', { keepArray: true }], ['link', 'rawLinks', { keepArray: true }], ['dc:language', 'dcLanguage'],
      // The root's attributes (an RSS channel's): an Atom feed's language is its xml:lang.
      ['$', 'rootAttrs', { keepArray: true }],
      // rss-parser keeps an Atom feed title's text only; its type attribute says whether that text is HTML.
      ['title', 'titleElements', { keepArray: true }]] as never,
    item: [
      'published', 'updated', 'issued', 'modified', 'created', 'dc:date', 'id', 'pubdate',
      ['media:content', 'mediaContent', { keepArray: true }],
      ['media:thumbnail', 'mediaThumbnail', { keepArray: true }],
      ['media:group', 'mediaGroup'],
      ['category', 'atomCategories', { keepArray: true }],
    ] as never,
  },
});
type FieldSpec = string | [string, string] | [string, string, { keepArray?: boolean; includeSnippet?: boolean }];
const rssUtils = createRequire(import.meta.url)('rss-parser/lib/utils.js') as {
  copyFromXML(xml: Raw, dest: Raw, fields: FieldSpec[]): void;
  getContent(content: unknown): string;
  getLink(links: unknown, rel: string, fallbackIdx: number): string | undefined;
};
/*
 * rss-parser's getLink reads links[i].$.rel, but xml2js gives an Atom <link/> without attributes as an empty
 * string: the TypeError made a feed holding one fail as malformed XML (it is, for the fast path, a link
 * without an href). The same lookup, skipping links without attributes.
 */
rssUtils.getLink = (links, rel, fallbackIdx) => {
  if (!Array.isArray(links)) return undefined;
  const attrs = (l: unknown) => (l && typeof l === 'object' ? ((l as Raw).$ as Record<string, string> | undefined) : undefined);
  // A link without rel is an alternate link (RFC 4287 §4.2.7.2): only an explicit rel="alternate" counted, so an
  // entry whose article link has none took its first link instead (a comments feed, an edit URL).
  for (const l of links) {
    const a = attrs(l);
    if (a && (a.rel ?? 'alternate') === rel) return a.href;
  }
  return attrs(links[fallbackIdx])?.href;
};
const proto = parser as unknown as {
  options: { customFields: { item: FieldSpec[] } };
  parseItemRss(xmlItem: Raw, itemFields: FieldSpec[]): Raw;
  parseItemAtom(entry: Raw): Raw;
};
const noSnippet = (fields: FieldSpec[]) => fields.map((f): FieldSpec => (Array.isArray(f) && f[2]?.includeSnippet ? [f[0], f[1]] : f));

/*
 * rss-parser's item builders, minus two things Herald does itself: the "contentSnippet" plain text (an entity
 * decode and regex strip of every description and content, which the normalizer does better with a real HTML
 * parser and only on what it keeps) and date conversion (`new Date(x).toISOString()` throws on a bad Atom date
 * and loses the whole feed; the normalizer parses dates with fallbacks). The element mapping is rss-parser's.
 */
proto.parseItemRss = (xmlItem, itemFields) => {
  const item: Raw = {};
  rssUtils.copyFromXML(xmlItem, item, noSnippet(itemFields));
  const x = xmlItem as Record<string, Raw[] | undefined> & { $?: Raw };
  if (x.enclosure?.[0]) item.enclosure = x.enclosure[0].$;
  if (x.description?.[0] !== undefined) item.content = rssUtils.getContent(x.description[0]);
  if (x.guid?.[0] !== undefined) item.guid = x.guid[0];
  if (x.$ && x.$['rdf:about']) item['rdf:about'] = x.$['rdf:about'];
  if (x.category) item.categories = x.category;
  return item;
};
proto.parseItemAtom = (entry) => {
  const item: Raw = {};
  rssUtils.copyFromXML(entry, item, noSnippet(proto.options.customFields.item));
  const e = entry as Record<string, Raw[] | undefined>;
  if (e.title?.[0] !== undefined) item.title = atomText(e.title[0]);
  if (e.link?.length) item.link = rssUtils.getLink(e.link, 'alternate', 0);
  const author = e.author?.[0] as Record<string, unknown[]> | undefined;
  if (author?.name?.length) item.author = author.name[0];
  if (e.content?.[0] !== undefined) item.content = atomText(e.content[0], rssUtils.getContent(e.content[0]));
  if (e.summary?.[0] !== undefined) item.summary = atomText(e.summary[0], rssUtils.getContent(e.summary[0]));
  if (e.id?.[0] !== undefined) item.id = e.id[0];
  item.xmlLang = xmlLang(attr(entry, 'xml:lang') ?? undefined);
  item.xmlBase = attr(entry, 'xml:base');
  return item;
};

/**
 * An Atom text construct as xml2js gives it (a string, or `{ _: text, $: attrs }`), escaped when text-typed
 * (atom-text.ts). `read` is the value otherwise taken from it; an element holding child elements (no `_`)
 * is left as read.
 */
function atomText(element: unknown, read: unknown = element): unknown {
  if (typeof element === 'string') return atomTextAsHtml(element, null);
  const text = element && typeof element === 'object' ? (element as Raw)._ : undefined;
  return typeof text === 'string' ? atomTextAsHtml(text, attr(element, 'type')) : read;
}

/**
 * xml2js keeps sax state after an error ("errThrown"), so the next document parsed by the same instance can
 * come out half-parsed; each parse starts from a fresh sax parser.
 */
const xmlParser = (parser as unknown as { xmlParser: { reset(): void } }).xmlParser;
async function parseXml(doc: string) {
  xmlParser.reset();
  return parser.parseString(doc);
}

/** Text of an xml2js value: a string, `{ _: text }`, or the first of an array of those. */
function text(v: unknown): string | null {
  if (Array.isArray(v)) return text(v[0]);
  if (typeof v === 'string') return v.trim() === '' ? null : v;
  if (v && typeof v === 'object') {
    const o = v as Raw;
    if (typeof o._ === 'string') return o._;
    const attrs = o.$ as Raw | undefined;
    if (attrs && typeof attrs.href === 'string') return attrs.href;
  }
  return null;
}
const attr = (v: unknown, name: string): string | null => {
  const attrs = v && typeof v === 'object' ? ((v as Raw).$ as Raw | undefined) : undefined;
  return attrs && typeof attrs[name] === 'string' ? (attrs[name] as string) : null;
};

/**
 * Position of the root element, skipping the prolog, comments, processing instructions and DOCTYPE (with
 * its internal subset). Skipped by their own syntax, not by looking for the first "<" and a letter: a
 * comment before the root that mentions markup ("<!-- made by <a href=...>Feedgen</a> -->") made that
 * "<a" the root, and a feed was refused as "root element <a>".
 */
function rootStart(xml: string): number {
  let at = 0;
  for (;;) {
    const lt = xml.indexOf('<', at);
    if (lt < 0) return -1;
    let end: number;
    if (xml.startsWith('<!--', lt)) end = xml.indexOf('-->', lt + 4) + 3;
    else if (xml.startsWith('<?', lt)) end = xml.indexOf('?>', lt + 2) + 2;
    else if (xml[lt + 1] === '!') {
      const gt = xml.indexOf('>', lt);
      if (gt < 0) return -1;
      // "[" looked for between its own "<!" and ">" only: a search to the end would make many declarations quadratic.
      const subset = xml.slice(lt, gt).indexOf('[');
      if (subset < 0) end = gt + 1;
      else {
        const subsetEnd = xml.indexOf(']', lt + subset);
        if (subsetEnd < 0) return -1;
        end = xml.indexOf('>', subsetEnd) + 1;
      }
    } else if (/[A-Za-z_]/.test(xml[lt + 1] ?? '')) return lt;
    else end = lt + 1;
    // An unterminated comment, instruction or declaration: no root element follows.
    if (end <= lt) return -1;
    at = end;
  }
}

/**
 * Refuses DTD entity declarations before any parser sees the document: this stops billion-laughs and
 * quadratic-blowup expansion and external entities (XXE) in time linear in the (size-capped) body.
 */
function refuseEntityDeclarations(prolog: string) {
  if (/<!ENTITY/i.test(prolog)) {
    throw new ParseError('xml-entities', 'the document declares XML entities in its DOCTYPE; Herald refuses DTD entities (expansion and external-entity attacks)');
  }
}

/**
 * How good a feed an alternate link's type promises: RSS and Atom first, then JSON Feed (application/json
 * only as JSON Feed 1.0 advised it); null for any other type. Compared exactly, parameters aside: a match
 * anywhere in the type took WordPress's oEmbed link (application/json+oembed), which comes first in many of
 * its pages, for the feed.
 */
function feedLinkRank(type: string): number | null {
  const t = type.split(';')[0]!.trim().toLowerCase();
  if (t === 'application/rss+xml' || t === 'application/atom+xml') return 0;
  if (t === 'application/feed+json') return 1;
  if (t === 'application/json') return 2;
  return null;
}

/** `<link rel="alternate" type="application/rss+xml" href>` of an HTML page, resolved against the page URL. */
export function findAdvertisedFeed(html: string, baseUrl?: string): string | null {
  // Typed by assertion: TypeScript does not see the parser's callback assign it, and would narrow it to null.
  let found = null as { href: string; rank: number } | null;
  const p = new HtmlParser({
    onopentag(name, attrs) {
      if (name !== 'link' || !attrs.href) return;
      const rel = (attrs.rel ?? '').toLowerCase().split(/\s+/);
      const rank = feedLinkRank(attrs.type ?? '');
      if (!rel.includes('alternate') || rank === null || (found && found.rank <= rank)) return;
      found = { href: attrs.href, rank };
    },
  });
  p.write(html.slice(0, 256 * 1024));
  p.end();
  const href = found?.href;
  if (href === undefined) return null;
  try {
    return new URL(href, baseUrl).toString();
  } catch {
    return href;
  }
}

function detectFormat(root: string): FeedFormat | 'html' | null {
  const tag = /^<([A-Za-z_][\w.:-]*)([^>]*)>?/.exec(root);
  if (!tag) return null;
  // XML names are case-sensitive, and both parsers read them so: <RSS> or <rdf:rdf> is no feed root (see misnamedRoot).
  const name = tag[1]!;
  const attrs = tag[2] ?? '';
  if (name === 'rss') {
    const version = /version\s*=\s*["']([^"']*)["']/.exec(attrs)?.[1] ?? '';
    return /^0\.9/.test(version) ? 'rss0.9x' : 'rss2.0';
  }
  if (name === 'RDF' || name.endsWith(':RDF')) {
    return /my\.netscape\.com\/rdf\/simple\/0\.9/.test(root.slice(0, 4096)) ? 'rss0.9x' : 'rss1.0';
  }
  if (name === 'feed') return /version\s*=\s*["']0\.3["']|purl\.org\/atom\/ns#/.test(attrs) ? 'atom0.3' : 'atom1.0';
  if (['html', 'head', 'body'].includes(name.toLowerCase())) return 'html';
  return null;
}

/** For a root that would be a feed's in other letter case (<RSS>, <Feed>, <rdf:rdf>): the name it should have. */
function misnamedRoot(name: string): string | null {
  const lower = name.toLowerCase();
  if (lower === 'rss' || lower === 'feed') return lower;
  if (lower === 'rdf' || lower.endsWith(':rdf')) return `${name.slice(0, -3)}RDF`;
  return null;
}

function xmlErrorPosition(err: Error): { line: number; column: number } | undefined {
  const m = /Line:\s*(\d+)\s*Column:\s*(\d+)/.exec(err.message);
  // sax counts lines from 0.
  return m ? { line: Number(m[1]) + 1, column: Number(m[2]) } : undefined;
}

/**
 * The bytes of a fetched (or pushed, or checked) body to a ParsedFeed, or a ParseError with a specific code.
 * The same function serves the poller, WebSub deliveries and `herald feeds check`.
 */
export async function parseFeedBody(
  raw: Uint8Array,
  opts: { contentType?: string | null; baseUrl?: string; maxBytes?: number; /** Tests: skip the fast path. */ rssParserOnly?: boolean } = {},
): Promise<ParsedFeed> {
  if (raw.byteLength === 0) throw new ParseError('empty-body', 'the body is empty');
  const body = gunzipIfCompressed(raw, opts.maxBytes ?? DEFAULT_MAX_BYTES);
  const decoded = decodeBody(body, opts.contentType);
  // Whitespace (or a stray BOM) before "<?xml" makes a document ill-formed, and is everywhere.
  const doc = decoded.text.replace(/^[\s\uFEFF]+/, '');
  if (doc === '') throw new ParseError('empty-body', 'the body holds only whitespace');
  if (doc[0] === '{' || doc[0] === '[') return { ...parseJsonFeed(doc, opts.baseUrl), encoding: decoded.encoding };

  if (doc[0] !== '<') throw new ParseError('not-a-feed', 'the body is neither XML nor JSON (it does not start with "<" or "{")');
  const start = rootStart(doc);
  const prolog = start < 0 ? doc : doc.slice(0, start);
  if (/<!DOCTYPE\s+html/i.test(prolog)) throwHtml(doc, opts.baseUrl);
  refuseEntityDeclarations(prolog);
  if (start < 0) throw new ParseError('not-a-feed', 'no XML element found: the body is neither XML nor JSON');
  const format = detectFormat(doc.slice(start, start + 4096));
  if (format === 'html') throwHtml(doc, opts.baseUrl);
  if (format === null) {
    const name = /^<([^\s>/]+)/.exec(doc.slice(start))?.[1] ?? '?';
    const meant = misnamedRoot(name);
    throw new ParseError('not-a-feed', `root element <${name}> is not RSS, RDF or Atom${meant ? ` (XML names are case-sensitive: a feed's root is <${meant}>)` : ''}`);
  }

  const xml = format === 'atom1.0' ? xhtmlAsHtml(doc) : doc;
  const fast = opts.rssParserOnly ? null : parseFastXml(xml, format, opts.baseUrl);
  if (fast) return { ...ownStrings(fast), encoding: decoded.encoding };
  // The fast path refuses deep nesting as it reads; a document it gave up on is checked before rss-parser.
  if (nestedDeeperThan(xml, MAX_DEPTH)) throw tooDeep();
  let feed: Raw & { items: Raw[] };
  try {
    feed = await parseXml(xml);
  } catch (err) {
    try {
      feed = await parseXml(repairXml(xml));
    } catch {
      // Report the first error, in the document as served (a rewritten XHTML construct moves columns).
      const e = (xml === doc ? err : await parseXml(doc).then(() => err, (first: unknown) => first)) as Error;
      const at = xmlErrorPosition(e);
      const what = e.message.split('\n')[0] ?? 'parse error';
      throw new ParseError('malformed-xml', `malformed XML${at ? ` at line ${at.line}, column ${at.column}` : ''}: ${what}`, at);
    }
  }
  return { ...ownStrings(toParsedFeed(feed, format, opts.baseUrl)), encoding: decoded.encoding };
}

/**
 * The parsed feed with every string copied out of the document, in place. In V8 a substring of 13 characters
 * or more shares its parent's memory and keeps all of it alive: one item title kept a whole fetched document
 * (about 120 KB for 50 items) alive while the story store's round trips were under way, and with every feed in
 * flight the young-generation collector copied and then promoted those documents (a sampling profile of what
 * survived young collections on the ingest benchmark's path: the document's 2.4 KB per new item gone, 0.9 KB
 * of copies in its place). The copies cost about 1 µs per item.
 */
function ownStrings<T>(value: T): T {
  // Shorter strings are copies already (V8 shares memory only from SlicedString's and ConsString's 13 characters).
  if (typeof value === 'string') return (value.length < 13 ? value : (' ' + value).slice(1)) as T;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = ownStrings(value[i]);
  } else if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    for (const k in o) o[k] = ownStrings(o[k]);
  }
  return value;
}

const DEFAULT_MAX_BYTES = 5 * 1024 * 1024;

/**
 * Atom's XHTML text constructs (type="xhtml", the markup inside the element) rewritten as the equivalent
 * escaped HTML (type="html"). xml2js keeps an element's text apart from its child elements, so rss-parser
 * read '<title type="xhtml"><div>The <em>new</em> bridge opens</div></title>' as no title at all (an entry
 * without a summary was then dropped) and an XHTML summary with its words out of order; rewritten, both
 * parsers read each construct as the text of one element, in order. Linear: each construct is scanned
 * once, and one that is never closed ends the rewriting (the parser reports it).
 */
export function xhtmlAsHtml(doc: string): string {
  if (!doc.includes('xhtml')) return doc;
  const open = /<([A-Za-z_][\w.:-]*)(\s[^<>]*?\btype\s*=\s*)(["'])xhtml\3([^<>]*)>/g;
  let out = '';
  let from = 0;
  for (let m = open.exec(doc); m; m = open.exec(doc)) {
    if (m[4]!.endsWith('/')) continue;
    const innerStart = m.index + m[0].length;
    const innerEnd = closingTagAt(doc, m[1]!, innerStart);
    if (innerEnd < 0) break;
    out += `${doc.slice(from, m.index)}<${m[1]}${m[2]}${m[3]}html${m[3]}${m[4]}>${escapeXhtml(doc.slice(innerStart, innerEnd))}`;
    from = innerEnd;
    open.lastIndex = innerEnd;
  }
  return from === 0 ? doc : out + doc.slice(from);
}

/** Index of the "</name>" that closes an element whose content starts at `from`, or -1. */
function closingTagAt(doc: string, name: string, from: number): number {
  const tag = new RegExp(`<(/?)${name.replace(/[.]/g, '\\.')}(?=[\\s/>])`, 'g');
  tag.lastIndex = from;
  let depth = 1;
  for (let m = tag.exec(doc); m; m = tag.exec(doc)) {
    const gt = doc.indexOf('>', m.index);
    if (gt < 0) return -1;
    if (m[1]) depth--;
    else if (doc[gt - 1] !== '/') depth++;
    if (depth === 0) return m.index;
    tag.lastIndex = gt + 1;
  }
  return -1;
}

/** XHTML markup as the text of an XML element; a CDATA section's text is escaped once more, as HTML text. */
function escapeXhtml(markup: string): string {
  const xmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return markup
    .split(/(<!\[CDATA\[[\s\S]*?\]\]>)/)
    .map((part, i) => (i % 2 === 1 ? xmlText(xmlText(part.slice(9, -3))) : xmlText(part)))
    .join('');
}

/**
 * Some servers send a .gz file as the body without Content-Encoding; feed readers sniff the gzip magic.
 * The output is capped like a download so a small gzip bomb cannot grow past the size limit.
 */
function gunzipIfCompressed(body: Uint8Array, maxBytes: number): Uint8Array {
  if (body[0] !== 0x1f || body[1] !== 0x8b) return body;
  try {
    return gunzipSync(body, { maxOutputLength: maxBytes });
  } catch (err) {
    const tooBig = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw new ParseError(tooBig ? 'too-large' : 'not-a-feed', tooBig ? `gzip body expands past the ${maxBytes}-byte limit` : `gzip body cannot be decompressed: ${(err as Error).message}`);
  }
}

function throwHtml(doc: string, baseUrl?: string): never {
  const advertised = findAdvertisedFeed(doc, baseUrl);
  throw new ParseError(
    'html-not-feed',
    advertised ? `got an HTML page, not a feed; the page advertises a feed at ${advertised}` : 'got an HTML page, not a feed, and it advertises no feed',
    undefined,
    advertised,
  );
}

function linksOf(feed: Raw): { rel: string; href: string }[] {
  const out: { rel: string; href: string }[] = [];
  for (const list of [feed.atomLinks, feed.rawLinks]) {
    if (!Array.isArray(list)) continue;
    for (const l of list) {
      const href = attr(l, 'href');
      if (href) out.push({ rel: (attr(l, 'rel') ?? 'alternate').toLowerCase(), href });
    }
  }
  return out;
}

function numbersOf(v: unknown, key: string): string[] {
  const o = Array.isArray(v) ? v[0] : v;
  if (!o || typeof o !== 'object') return [];
  const list = (o as Raw)[key];
  return Array.isArray(list) ? list.map((x) => text(x)).filter((x): x is string => x !== null) : [];
}

function imageOf(i: Raw): string | null {
  const enclosure = i.enclosure as Raw | undefined;
  if (enclosure && typeof enclosure.url === 'string' && /^image\//.test(String(enclosure.type ?? ''))) return enclosure.url;
  const group = i.mediaGroup as Raw | undefined;
  for (const list of [i.mediaContent, i.mediaThumbnail, group?.['media:content'], group?.['media:thumbnail']]) {
    if (!Array.isArray(list)) continue;
    for (const m of list) {
      const url = attr(m, 'url');
      const medium = attr(m, 'medium');
      const type = attr(m, 'type');
      if (url && (medium === 'image' || (type ?? '').startsWith('image/') || (!medium && !type))) return url;
    }
  }
  const itunes = i.itunes as Raw | undefined;
  return typeof itunes?.image === 'string' ? itunes.image : null;
}

function categoriesOf(i: Raw): string[] {
  // A Set, not an array search: an item with 100,000 categories must not cost 10^10 comparisons.
  const out = new Set<string>();
  const lists = [i.categories, i.atomCategories];
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    for (const c of list) {
      const v = typeof c === 'string' ? c : (text(c) ?? attr(c, 'label') ?? attr(c, 'term'));
      if (v) out.add(v);
    }
  }
  return [...out];
}

/** `documentUrl`: the URL the document was fetched from, against which a relative xml:base resolves. */
function toParsedFeed(feed: Raw & { items: Raw[] }, format: FeedFormat, documentUrl?: string): Omit<ParsedFeed, 'encoding'> {
  const links = linksOf(feed);
  const atom = format === 'atom0.3' || format === 'atom1.0';
  // Atom has no language element: its language is the feed's, or an entry's, xml:lang (RFC 4287 §2).
  const rootAttrs = (feed.rootAttrs ?? {}) as Record<string, string | undefined>;
  const rootLang = atom ? xmlLang(rootAttrs['xml:lang']) : null;
  // Atom's relative links resolve against the xml:base in scope (RFC 4287 §2), not the URL the feed came from.
  const rootBase = atom ? (rootAttrs['xml:base'] ?? null) : null;
  const language = text(feed.language) ?? text(feed.dcLanguage) ?? rootLang;
  const ttl = Number(text(feed.ttl));
  const frequency = Number(text(feed['sy:updateFrequency']));
  return {
    format,
    title: (atom && Array.isArray(feed.titleElements) ? text(atomText(feed.titleElements[0])) : text(feed.title)) ?? '',
    link: resolveXmlBase(text(feed.link), [rootBase], documentUrl),
    language,
    hub: links.find((l) => l.rel === 'hub')?.href ?? null,
    self: resolveXmlBase(links.find((l) => l.rel === 'self')?.href ?? (typeof feed.feedUrl === 'string' ? feed.feedUrl : null), [rootBase], documentUrl),
    hints: {
      ttlMinutes: Number.isFinite(ttl) && ttl > 0 ? ttl : null,
      updatePeriod: text(feed['sy:updatePeriod'])?.trim().toLowerCase() ?? null,
      updateFrequency: Number.isFinite(frequency) && frequency > 0 ? frequency : null,
      skipHours: numbersOf(feed.skipHours, 'hour').map(Number).filter((h) => Number.isInteger(h) && h >= 0 && h <= 24),
      skipDays: numbersOf(feed.skipDays, 'day').map((d) => d.trim().toLowerCase()),
    },
    items: (feed.items ?? []).map((i) => ({
      guid: text(i.guid) ?? text(i.id) ?? (typeof i['rdf:about'] === 'string' ? (i['rdf:about'] as string) : null),
      link: resolveXmlBase(text(i.link), [rootBase, (i.xmlBase as string | null) ?? null], documentUrl),
      title: text(i.title) ?? '',
      summaryHtml: text(i.summary) ?? text(i.content) ?? text(i['content:encoded']) ?? '',
      categories: categoriesOf(i),
      published: firstReadableDate([text(i.pubDate), text(i.pubdate), text(i.published), text(i.issued), text(i['dc:date']), text(i.date), text(i.created)]),
      updated: firstReadableDate([text(i.updated), text(i.modified)]),
      author: text(i.creator) ?? text(i.author) ?? text(i['dc:creator']),
      language: (atom ? (i.xmlLang as string | null) : text(i.language)) ?? language,
      image: resolveXmlBase(imageOf(i), [rootBase, (i.xmlBase as string | null) ?? null], documentUrl),
    })),
  };
}
