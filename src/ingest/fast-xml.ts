import { atomTextAsHtml } from './atom-text.ts';
import { firstReadableDate } from './normalize.ts';
import type { FeedFormat, ParsedFeed, ParsedItem } from './parse-feed.ts';
import { resolveXmlBase } from './xml-base.ts';
import { MAX_DEPTH, NotPlainXml, scanXml, tooDeep, type XmlEvents } from './xml-scan.ts';

/**
 * The fast path for well-formed RSS, RDF and Atom: one pass of Herald's XML tokenizer (xml-scan.ts), mapping
 * the same elements to the same fields as the rss-parser path (parse-feed.ts `toParsedFeed`), without building
 * a document tree. It gives up (returns null) at the first sign the document is anything but plain and
 * well-formed: a tag left open or closed out of order (mis-nested or truncated), anything the tokenizer
 * refuses (an entity XML does not define, a bare ampersand, an unquoted attribute...), markup inside a text
 * field, a second root. The caller then uses rss-parser, which reports the error with its line and column or
 * repairs what feed readers repair. `tests/ingest/fast-xml.test.ts` checks
 * that both paths agree on every fixture.
 */

type Attrs = Record<string, string>;
interface Node {
  name: string;
  attrs: Attrs;
  text: string;
  /** Set when an element opened inside it: its text is no longer a plain value. */
  mixed: boolean;
}

/** An ampersand XML does not define (outside CDATA): only rss-parser's repair pass may deal with it. */
const XML_REF = /^(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/;
function hasUndefinedEntity(doc: string): boolean {
  let at = doc.indexOf('&');
  if (at < 0) return false;
  let cdataEnd = -1;
  let nextCdata = doc.indexOf('<![CDATA[');
  while (at >= 0) {
    // Skip CDATA sections that start before this ampersand.
    while (nextCdata >= 0 && nextCdata < at) {
      cdataEnd = doc.indexOf(']]>', nextCdata);
      if (cdataEnd < 0) return true;
      nextCdata = doc.indexOf('<![CDATA[', cdataEnd);
    }
    if (at > cdataEnd && !XML_REF.test(doc.slice(at + 1, at + 12))) return true;
    at = doc.indexOf('&', at + 1);
  }
  return false;
}

interface ItemAcc {
  fields: Map<string, Node>;
  /** In document order; a Set, so an item of 100,000 categories costs no 10^10 comparisons. Atom's marked with \u0000. */
  categories: Set<string>;
  links: Attrs[];
  media: Attrs[];
  enclosure: Attrs | null;
  itunesImage: string | null;
  authorName: string | null;
  about: string | null;
  /** An Atom entry's xml:lang and xml:base. */
  lang: string | null;
  base: string | null;
}
const newItem = (about: string | null, lang: string | null, base: string | null): ItemAcc => ({ fields: new Map(), categories: new Set(), links: [], media: [], enclosure: null, itunesImage: null, authorName: null, about, lang, base });

/** An xml:lang value; empty means "no language" (XML 1.0 §2.12). */
export const xmlLang = (v: string | undefined): string | null => v?.trim() || null;

class GiveUp extends Error {}

/** `documentUrl`: the URL the document was fetched from, against which a relative xml:base resolves. */
export function parseFastXml(doc: string, format: FeedFormat, documentUrl?: string): ParsedFeed | null {
  if (format === 'json1.0' || format === 'json1.1') return null;
  if (hasUndefinedEntity(doc)) return null;
  const atom = format === 'atom0.3' || format === 'atom1.0';
  const reader = new FeedReader(atom);
  try {
    scanXml(doc, reader);
  } catch (err) {
    if (err instanceof GiveUp || err instanceof NotPlainXml) return null;
    throw err;
  }
  if (reader.stack.length > 0 || reader.roots !== 1) return null;
  try {
    return reader.feed(format, documentUrl);
  } catch (err) {
    if (err instanceof GiveUp) return null;
    throw err;
  }
}

/**
 * The tokenizer's events for one document, gathered into the channel's fields and the items'. A class, not an
 * object of closures made per document: V8 drops the optimized code of closures that died at each full
 * collection, so a poller compiled these handlers again and again.
 */
class FeedReader implements XmlEvents {
  /** rss-parser reads RDF documents only under the exact root name rdf:RDF. */
  private rdf = false;
  private channelDone = false;
  readonly stack: Node[] = [];
  roots = 0;
  private itunes = false;
  private rootLang: string | null = null;
  private rootBase: string | null = null;
  /** Depth (stack length) of the channel (RSS) or the element holding items and feed-level fields. */
  private channelDepth = -1;
  private readonly channel = new Map<string, Node>();
  private readonly channelLinks: { name: string; attrs: Attrs }[] = [];
  private readonly skipHours: string[] = [];
  private readonly skipDays: string[] = [];
  private readonly items: ItemAcc[] = [];
  private item: ItemAcc | null = null;
  private itemDepth = -1;
  private inMediaGroup = false;
  private inAuthor = false;

  constructor(private readonly atom: boolean) {}

  open(name: string, attrs: Attrs) {
    const { stack, atom } = this;
    const depth = stack.length; // depth of the new element (root = 0)
    if (depth >= MAX_DEPTH) throw tooDeep();
    const parent = stack[depth - 1];
    if (parent) parent.mixed = true;
    if (depth === 0) {
      this.roots++;
      if (this.roots > 1) throw new GiveUp();
      if (attrs['xmlns:itunes'] !== undefined) this.itunes = true;
      this.rootLang = xmlLang(attrs['xml:lang']);
      this.rootBase = attrs['xml:base'] ?? null;
      this.rdf = name === 'rdf:RDF';
      if (!atom && !this.rdf && name !== 'rss') throw new GiveUp();
      if (atom) this.channelDepth = 0;
    }
    stack.push({ name, attrs, text: '', mixed: false });
    const rdf = this.rdf;
    if (!atom && !rdf && depth === 1 && name === 'channel' && this.channelDepth < 0) this.channelDepth = 1;
    if (rdf && depth === 1 && name === 'channel' && this.channelDepth < 0) this.channelDepth = 1;
    const itemParent = atom ? 0 : rdf ? 0 : this.channelDepth === 1 ? 1 : -2;
    const itemName = atom ? 'entry' : 'item';
    const item = this.item;
    if (item === null && depth === itemParent + 1 && name === itemName && (atom || rdf || stack[1]?.name === 'channel')) {
      // Only items of the first channel count, as in rss-parser.
      if (!atom && !rdf && this.channelDone) return;
      this.item = newItem(attrs['rdf:about'] ?? null, atom ? xmlLang(attrs['xml:lang']) : null, atom ? (attrs['xml:base'] ?? null) : null);
      this.itemDepth = depth;
      return;
    }
    if (item && depth === this.itemDepth + 1) {
      if (name === 'link') item.links.push(attrs);
      else if (name === 'enclosure' && !item.enclosure) item.enclosure = attrs;
      else if (name === 'media:content' || name === 'media:thumbnail') item.media.push({ ...attrs, __kind: name });
      else if (name === 'media:group') this.inMediaGroup = true;
      else if (name === 'itunes:image' && !item.itunesImage && attrs.href) item.itunesImage = attrs.href;
      else if (name === 'author' && atom) this.inAuthor = true;
      if (name === 'category' && atom) {
        const v = attrs.label ?? attrs.term;
        if (v && !item.categories.has(v)) item.categories.add(`\u0000${v}`);
      }
    } else if (item && this.inMediaGroup && depth === this.itemDepth + 2 && (name === 'media:content' || name === 'media:thumbnail')) {
      item.media.push({ ...attrs, __kind: `group:${name}` });
    }
    if (!item && this.channelDepth >= 0 && depth === this.channelDepth + 1 && (name === 'link' || name === 'atom:link')) this.channelLinks.push({ name, attrs });
  }

  text(text: string) {
    const top = this.stack[this.stack.length - 1];
    if (top) top.text += text;
  }

  close(name: string) {
    const { stack, atom } = this;
    const node = stack.pop();
    if (!node || node.name !== name) throw new GiveUp();
    const depth = stack.length;
    const item = this.item;
    if (item) {
      if (depth === this.itemDepth) {
        this.items.push(item);
        this.item = null;
        return;
      }
      if (depth === this.itemDepth + 1) {
        if (name === 'media:group') this.inMediaGroup = false;
        if (name === 'author') this.inAuthor = false;
        if (!item.fields.has(name)) item.fields.set(name, node);
        if (name === 'category' && !atom) {
          if (node.mixed) throw new GiveUp();
          const v = node.text;
          if (v.trim()) item.categories.add(v);
        }
      } else if (atom && this.inAuthor && depth === this.itemDepth + 2 && name === 'name' && item.authorName === null) {
        item.authorName = node.text;
      }
      return;
    }
    const channelDepth = this.channelDepth;
    if (channelDepth >= 0 && depth === channelDepth + 1 && !this.channel.has(name)) this.channel.set(name, node);
    if (channelDepth >= 0 && depth === channelDepth + 2) {
      const parent = stack[stack.length - 1]!;
      if (parent.name === 'skipHours' && name === 'hour') this.skipHours.push(node.text);
      if (parent.name === 'skipDays' && name === 'day') this.skipDays.push(node.text);
    }
    if (!atom && !this.rdf && depth === channelDepth && name === 'channel') this.channelDone = true;
  }

  /** An Atom text construct, escaped when text-typed (atom-text.ts); an RSS field as it is. */
  private textConstruct(n: Node | undefined, read: (n: Node | undefined) => string | null): string | null {
    return this.atom && n ? atomTextAsHtml(read(n), n.attrs.type) : read(n);
  }

  /** The feed read: throws GiveUp where a field holds markup. */
  feed(format: FeedFormat, documentUrl: string | undefined): ParsedFeed {
    const { atom, rdf, channel, channelLinks, rootBase, itunes } = this;
    // Atom has no language element: its language is the feed's, or an entry's, xml:lang (RFC 4287 §2).
    const language = value(channel.get('language')) ?? value(channel.get('dc:language')) ?? (atom ? this.rootLang : null);
    const ttl = Number(value(channel.get('ttl')));
    const frequency = Number(value(channel.get('sy:updateFrequency')));
    const linkList = channelLinks.filter((l) => l.attrs.href).map((l) => ({ rel: (l.attrs.rel ?? 'alternate').toLowerCase(), href: l.attrs.href! }));
    // rss-parser's order: atom:link entries first, then link elements.
    const links = [...linkList.filter((_, i) => channelLinks[i]?.name === 'atom:link'), ...linkList.filter((_, i) => channelLinks[i]?.name !== 'atom:link')];
    let self: string | null = links.find((l) => l.rel === 'self')?.href ?? null;
    let feedLink: string | null;
    if (atom) {
      const atomLinks = channelLinks.filter((l) => l.name === 'link');
      feedLink = resolveXmlBase(atomLink(atomLinks.map((l) => l.attrs), 'alternate', 0), [rootBase], documentUrl);
      self = resolveXmlBase(self ?? atomLink(atomLinks.map((l) => l.attrs), 'self', 1), [rootBase], documentUrl);
    } else {
      feedLink = value(channel.get('link'));
      self ??= channelLinks.find((l) => l.name === 'atom:link')?.attrs.href ?? null;
    }
    const title = atom ? this.textConstruct(channel.get('title'), value) : (value(channel.get('title')) ?? value(channel.get('dc:title')));
    const items: ParsedItem[] = [];
    for (const i of this.items) {
      const f = i.fields;
      const categories: string[] = [];
      const seen = new Set<string>();
      for (const c of i.categories) {
        const v = c.startsWith('\u0000') ? c.slice(1) : c;
        if (!seen.has(v)) {
          seen.add(v);
          categories.push(v);
        }
      }
      items.push({
        guid: value(f.get('guid')) ?? value(f.get('id')) ?? i.about,
        link: atom ? resolveXmlBase(atomLink(i.links, 'alternate', 0), [rootBase, i.base], documentUrl) : value(f.get('link')),
        title: (atom ? this.textConstruct(f.get('title'), value) : (value(f.get('title')) ?? value(f.get('dc:title')))) ?? '',
        summaryHtml: this.textConstruct(f.get('summary'), raw) ?? (atom ? this.textConstruct(f.get('content'), raw) : raw(f.get('description'))) ?? raw(f.get('content:encoded')) ?? '',
        categories,
        published: firstReadableDate([value(f.get('pubDate')), value(f.get('pubdate')), value(f.get('published')), value(f.get('issued')), value(f.get('dc:date')), value(f.get('created'))]),
        updated: firstReadableDate([value(f.get('updated')), value(f.get('modified'))]),
        author: atom ? (i.authorName?.trim() ? i.authorName : null) : (value(f.get('dc:creator')) ?? value(f.get('author'))),
        language: (atom ? i.lang : value(f.get('dc:language'))) ?? language,
        image: atom ? resolveXmlBase(imageOf(i, false), [rootBase, i.base], documentUrl) : imageOf(i, itunes && !rdf && format === 'rss2.0'),
      });
    }
    return {
      format,
      title: title ?? '',
      link: feedLink,
      language,
      hub: links.find((l) => l.rel === 'hub')?.href ?? null,
      self,
      hints: {
        ttlMinutes: Number.isFinite(ttl) && ttl > 0 ? ttl : null,
        updatePeriod: value(channel.get('sy:updatePeriod'))?.trim().toLowerCase() ?? null,
        updateFrequency: Number.isFinite(frequency) && frequency > 0 ? frequency : null,
        skipHours: this.skipHours.map(Number).filter((h) => Number.isInteger(h) && h >= 0 && h <= 24),
        skipDays: this.skipDays.map((d) => d.trim().toLowerCase()),
      },
      items,
    };
  }
}

/** A value as xml2js would give it: element text, or for an element with attributes and no text, its href. */
function value(n: Node | undefined): string | null {
  if (!n) return null;
  if (n.mixed) throw new GiveUp();
  if (n.text.trim() !== '') return n.text;
  const hasAttrs = Object.keys(n.attrs).length > 0;
  return hasAttrs && n.attrs.href ? n.attrs.href : null;
}

/** An element's text, markup refused (GiveUp), blank as none. */
function raw(n: Node | undefined): string | null {
  if (!n) return null;
  if (n.mixed) throw new GiveUp();
  return n.text.trim() === '' ? null : n.text;
}

/** rss-parser's getLink (as parse-feed.ts patches it): the first link with that rel, else the one at the fallback index. */
function atomLink(links: Attrs[], rel: string, fallback: number): string | null {
  // A link without rel is an alternate link (RFC 4287 §4.2.7.2).
  // A link without any attribute is skipped, as on the rss-parser path (xml2js gives it as a string, no object).
  for (const l of links) if ((l.rel ?? 'alternate') === rel && hasAttributes(l)) return l.href ?? null;
  return links[fallback]?.href ?? null;
}

function hasAttributes(attrs: Attrs): boolean {
  for (const _ in attrs) return true;
  return false;
}

function imageOf(i: ItemAcc, itunes: boolean): string | null {
  const e = i.enclosure;
  if (e && typeof e.url === 'string' && /^image\//.test(e.type ?? '')) return e.url;
  const order = ['media:content', 'media:thumbnail', 'group:media:content', 'group:media:thumbnail'];
  for (const kind of order) {
    for (const m of i.media) {
      if (m.__kind !== kind) continue;
      const url = m.url;
      const medium = m.medium;
      const type = m.type;
      if (url && (medium === 'image' || (type ?? '').startsWith('image/') || (!medium && !type))) return url;
    }
  }
  return itunes ? i.itunesImage : null;
}
