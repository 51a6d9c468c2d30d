import { hash } from 'node:crypto';
import { Tokenizer } from 'htmlparser2';
import type { ItemIdentity, Story } from '../model.ts';
import type { ParsedItem } from './parse-feed.ts';

/** Elements whose content is never text a reader sees. */
const SKIP = new Set(['script', 'style', 'noscript', 'template', 'iframe', 'object', 'svg', 'math', 'head']);
/** Elements that separate words: their boundaries become spaces. */
const BLOCK = new Set(['p', 'br', 'div', 'li', 'ul', 'ol', 'tr', 'td', 'th', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'blockquote', 'section', 'article', 'figure', 'figcaption', 'hr', 'img', 'table', 'dd', 'dt']);

/**
 * HTML (or text that may hold entities) to plain text with htmlparser2's tokenizer, a real HTML tokenizer
 * (the one its Parser uses, without building element objects): markup dropped, script/style and other
 * non-text content skipped, every HTML entity decoded, whitespace collapsed. `maxChars` bounds the work.
 */
export function toPlainText(html: string, maxChars = Infinity): string {
  if (!/[<&]/.test(html)) return clip(collapse(html), maxChars);
  const input = maxChars === Infinity ? html : html.slice(0, maxChars * 8 + 4096);
  tk.src = input;
  tk.out = '';
  tk.gap = true;
  tk.skipDepth = 0;
  tk.open = '';
  // One tokenizer, reset per call: tokenizing is synchronous, and building one per summary costs more than the work.
  tokenizer.reset();
  tokenizer.write(input);
  tokenizer.end();
  return clip(collapse(tk.out), maxChars);
}

/**
 * The first `max` UTF-16 units, without the first half of a pair cut off at the end: a lone surrogate is no
 * character, and becomes U+FFFD (or an encoding error) in a push payload, a mail or a JSON API reply.
 */
function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const last = s.charCodeAt(max - 1);
  return s.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/** `gap`: the output ends in a space (or is empty), so a block boundary adds none: see collapse. */
const tk = { src: '', out: '', gap: true, skipDepth: 0, open: '' };
const blockBoundary = () => {
  if (tk.gap) return;
  tk.out += ' ';
  tk.gap = true;
};
const tagName = (start: number, end: number) => tk.src.slice(start, end).toLowerCase();
const ignore = () => undefined;
const tokenizer = new Tokenizer({ xmlMode: false, decodeEntities: true }, {
  onopentagname(start, end) {
    tk.open = tagName(start, end);
    if (SKIP.has(tk.open)) tk.skipDepth++;
    else if (BLOCK.has(tk.open)) blockBoundary();
  },
  onselfclosingtag() {
    if (SKIP.has(tk.open)) tk.skipDepth = Math.max(0, tk.skipDepth - 1);
  },
  onclosetag(start, end) {
    const name = tagName(start, end);
    if (SKIP.has(name)) tk.skipDepth = Math.max(0, tk.skipDepth - 1);
    else if (BLOCK.has(name)) blockBoundary();
  },
  ontext(start, end) {
    if (tk.skipDepth !== 0) return;
    tk.out += tk.src.slice(start, end);
    tk.gap = tk.src.charCodeAt(end - 1) === 32;
  },
  ontextentity(codepoint) {
    if (tk.skipDepth !== 0) return;
    tk.out += String.fromCodePoint(codepoint);
    tk.gap = codepoint === 32;
  },
  onattribdata: ignore, onattribentity: ignore, onattribend: ignore, onattribname: ignore, oncdata: ignore, oncomment: ignore,
  ondeclaration: ignore, onend: ignore, onopentagend: ignore, onprocessinginstruction: ignore,
});

// Double-escaped entities (&amp;amp; in the XML, so "&amp;" after parsing) are decoded by the HTML pass.
/**
 * Whitespace other than single spaces: what collapsing rewrites. Most text has none, and a global replace
 * builds its result from a slice per match even when each space stays a space (about 7 KB of garbage for a
 * 500-character summary, the largest allocation of a new item).
 */
const UNCOLLAPSED = /[^\S ]| {2}|\u200b/;
const collapse = (s: string) => (UNCOLLAPSED.test(s) ? s.replace(/[\s\u00a0\u200b]+/g, ' ') : s).trim();

/** Query parameters that only track the click, never select the content. */
const TRACKING = /^(utm_[a-z_]+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|mc_cid|mc_eid|igshid|_ga|_gl|ocid|cmpid|__twitter_impression|ns_mchannel|ns_source|ns_campaign|ns_linkname|ns_fee)$/i;

const TRACKING_IN_QUERY = /[?&](utm_|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|mc_|igshid|_ga|_gl|ocid|cmpid|__twitter|ns_)/i;

/**
 * The URL that identifies an article: http(s) only, scheme and host lower-cased, default port and fragment
 * dropped, tracking parameters removed (the WHATWG URL parser does the lower-casing and the default port).
 */
export function canonicalUrl(raw: string, base?: string): string | null {
  const u = httpUrl(raw, base);
  return u ? canonicalOf(u) : null;
}

function httpUrl(raw: string, base?: string): URL | null {
  try {
    const u = new URL(raw.trim(), base);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u : null;
  } catch {
    return null;
  }
}

/** Canonical form of a parsed URL (changes it). */
function canonicalOf(u: URL): string {
  // A hashbang (#!/article/123) names the article on sites that route in the browser: two articles differ
  // only there, so dropping it made them one item. Any other fragment is a place in the page.
  if (!u.hash.startsWith('#!')) u.hash = '';
  if (u.search && TRACKING_IN_QUERY.test(u.search)) u.search = withoutTracking(u.search);
  return u.toString();
}

/**
 * The query without its tracking parameters, every other parameter left byte for byte as published.
 * Not URLSearchParams: deleting one re-serializes the whole query as a form ("a%20b" becomes "a+b", "1,2"
 * "1%2C2", "~" "%7E", a bare "flag" "flag="), so a link with a utm_ parameter got another identity than
 * the same link without one, and some servers read the rewritten query as a different page.
 */
function withoutTracking(search: string): string {
  const kept = search.slice(1).split('&').filter((pair) => {
    const eq = pair.indexOf('=');
    const rawKey = (eq < 0 ? pair : pair.slice(0, eq)).replace(/\+/g, ' ');
    let key = rawKey;
    try {
      key = decodeURIComponent(rawKey);
    } catch {
      // A malformed escape in a key: compared as it stands.
    }
    return !TRACKING.test(key);
  });
  return kept.length > 0 ? `?${kept.join('&')}` : '';
}

/** The link as published (resolved, fragment kept): what the reader clicks. */
function absoluteUrl(raw: string, base?: string): string | null {
  return httpUrl(raw, base)?.toString() ?? null;
}

const NAMED_ZONES: Record<string, number> = {
  GMT: 0, UT: 0, UTC: 0, Z: 0, EST: -300, EDT: -240, CST: -360, CDT: -300, MST: -420, MDT: -360, PST: -480, PDT: -420,
  CET: 60, CEST: 120, EET: 120, EEST: 180, WET: 0, WEST: 60, BST: 60, IST: 330, JST: 540, KST: 540, MSK: 180,
  AEST: 600, AEDT: 660, HKT: 480, SGT: 480,
  // German-language publishers write their own names for CET and CEST; New Zealand's and a few more seen in feeds.
  MEZ: 60, MESZ: 120, NZST: 720, NZDT: 780, ACST: 570, ACDT: 630, AWST: 480, PHT: 480, WIB: 420, ICT: 420, PKT: 300, SAST: 120, AKST: -540, AKDT: -480, HST: -600,
};
/** Month names and abbreviations feeds actually use (English, and the Romance and Germanic ones seen in the wild). */
const MONTHS: Record<string, number> = {};
[
  ['jan', 'janv', 'january', 'janeiro', 'enero', 'ene', 'gen', 'gennaio', 'janvier', 'januar', 'jän'],
  ['feb', 'fev', 'févr', 'fevr', 'february', 'fevereiro', 'febrero', 'febbraio', 'février', 'februar'],
  ['mar', 'march', 'março', 'marzo', 'mars', 'märz', 'mär', 'mrz'],
  ['apr', 'abr', 'avr', 'april', 'abril', 'aprile', 'avril'],
  ['may', 'mai', 'maio', 'mayo', 'mag', 'maggio'],
  ['jun', 'june', 'junho', 'junio', 'giu', 'giugno', 'juin', 'juni'],
  ['jul', 'july', 'julho', 'julio', 'lug', 'luglio', 'juil', 'juillet', 'juli'],
  ['aug', 'ago', 'august', 'agosto', 'août', 'aout'],
  ['sep', 'sept', 'set', 'september', 'setembro', 'septiembre', 'settembre', 'septembre'],
  ['oct', 'out', 'okt', 'ott', 'october', 'outubro', 'octubre', 'ottobre', 'octobre', 'oktober'],
  ['nov', 'november', 'novembro', 'noviembre', 'novembre'],
  ['dec', 'dez', 'dic', 'déc', 'december', 'dezembro', 'diciembre', 'dicembre', 'décembre', 'dezember'],
].forEach((names, i) => names.forEach((n) => (MONTHS[n] = i)));

/** RFC 822 style "[Day,] DD Mon YY[YY] HH:MM[:SS] [zone]", with localized names and missing colons forgiven. */
const RFC822 = /^(?:[\p{L}.]+,?\s+)?(\d{1,2})\s+([\p{L}]+)\.?\s+(\d{2,4})\s+(\d{1,2}):?(\d{2})(?::?(\d{2}))?\s*([+-]\d{2}(?::?\d{2})?|[A-Za-z]{1,5})?$/u;

/** Epoch ms; null when `s` is not in this format, NaN when it is but names no real moment. */
function parseRfc822(s: string): number | null {
  const m = RFC822.exec(s);
  if (!m) return null;
  const month = MONTHS[m[2]!.toLowerCase()];
  if (month === undefined) return null;
  let year = Number(m[3]);
  // Only a year written with two digits is abbreviated (RFC 2822 §4.3): "0001", .NET's DateTime.MinValue
  // that feeds print for "no date", is the year 1, not 2001.
  if (m[3]!.length === 2) year += year < 70 ? 2000 : 1900;
  else if (m[3]!.length === 3) year += 1900;
  let offset = 0;
  const zone = m[7];
  if (zone) {
    // Hours alone ("-03") too: PHP's "T" prints that for zones without an abbreviation (Sao Paulo, Yekaterinburg).
    const num = /^([+-])(\d{2})(?::?(\d{2}))?$/.exec(zone);
    if (num) offset = (num[1] === '-' ? -1 : 1) * (Number(num[2]) * 60 + Number(num[3] ?? 0));
    else if (NAMED_ZONES[zone.toUpperCase()] !== undefined) offset = NAMED_ZONES[zone.toUpperCase()]!;
    else return null;
  }
  const [day, hour, minute, second] = [Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)];
  // NaN, not null: the date is in this format but does not exist, and Date.parse would roll it over.
  if (!isCalendarDate(year, month, day) || hour > 23 || minute > 59 || second > 60) return NaN;
  const t = Date.UTC(year, month, day, hour, minute, second) - offset * 60_000;
  return Number.isFinite(t) ? t : null;
}

/**
 * Whether the day exists in that month (month 0-11). Date.UTC and Date.parse roll the rest over: "31 Feb"
 * was 3 March, "25:15" the next day; nonsense gives null, so the item falls back to another date.
 */
function isCalendarDate(year: number, month: number, day: number): boolean {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month];
  return days !== undefined && day >= 1 && day <= days;
}

/**
 * A zone Date.parse understands: a UTC or US abbreviation, or a numeric offset (of hours alone only at the end,
 * after a space: "10-Jun-03" holds no offset). Missed, " GMT" was appended and overrode it.
 */
const HAS_ZONE = /\b(?:UTC?|GMT|Z|[ECMP][SD]T)\b|[+-]\d{2}:?\d{2}\b|\s[+-]\d{2}$/i;

/**
 * Date.parse for the formats only it knows ("June 10, 2003 04:00", "2003/06/10 04:00"), with a date that
 * names no zone read as UTC: Date.parse reads it in the server's local zone, so the same item got another
 * time on a server set to New York than on one set to UTC. An appended zone would override one the date
 * has (the last one wins), so it is added only when the date has none.
 */
function parseAsUtc(s: string): number {
  return Date.parse(HAS_ZONE.test(s) ? s : `${s} GMT`);
}

/**
 * A feed date to epoch ms (UTC), or null. ISO 8601 and RFC 822 dates without a zone are read as UTC (never the
 * server's local zone); localized month names and common mistakes are forgiven; nonsense gives null.
 */
export function parseFeedDate(raw: string | null | undefined): number | null {
  if (!raw) return null;
  const s = raw.trim().replace(/\s+/g, ' ');
  if (s === '') return null;
  let t: number | null = null;
  const iso = /^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?))?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(s);
  if (iso) {
    const [y, mo, d] = iso[1]!.split('-').map(Number) as [number, number, number];
    if (!isCalendarDate(y, mo - 1, d)) return null;
    const zone = iso[3] ? (/^[+-]\d{2}$/.test(iso[3]) ? `${iso[3]}:00` : iso[3].replace(/^([+-]\d{2})(\d{2})$/, '$1:$2')) : 'Z';
    t = Date.parse(`${iso[1]}T${(iso[2] ?? '00:00:00').replace(',', '.')}${zone}`);
  } else if (/^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b/.test(s)) {
    // 01/02/03: day-first or month-first depends on the publisher's country; guessing would misdate news.
    t = null;
  } else {
    t = parseRfc822(s) ?? parseAsUtc(s);
  }
  // Years before 1990 are parse accidents ("01/02/03"), not news.
  return t !== null && Number.isFinite(t) && t > Date.UTC(1990, 0, 1) ? t : null;
}

/** An item's publication time: its published date, else its updated one (null when neither reads as a date). */
export const itemDate = (item: Pick<ParsedItem, 'published' | 'updated'>): number | null => parseFeedDate(item.published) ?? parseFeedDate(item.updated);

/**
 * The date an item is published at, from the raw dates its feed gives in order of preference (pubDate, published,
 * dc:date...): the first one parseFeedDate can read, else the first given. A feed whose pubDate is garbage
 * ("Not available", a template placeholder) often carries a good dc:date beside it.
 */
export function firstReadableDate(candidates: readonly (string | null)[]): string | null {
  const given = candidates.filter((c): c is string => c !== null);
  // The usual item has one date: nothing to choose, nothing parsed twice.
  if (given.length <= 1) return given[0] ?? null;
  return given.find((c) => parseFeedDate(c) !== null) ?? given[0]!;
}

const MAX_TITLE = 300;
const MAX_SUMMARY = 2000;

/**
 * Hash of the item's text as published (title and summary before normalization): a publisher's edit changes
 * it, and a poller can recognise an unchanged item without normalizing it again.
 */
export const contentHash = (title: string, summaryHtml: string) => hash('sha256', `${title}\u0000${summaryHtml}`, 'hex').slice(0, 24);


export interface NormalizedItem extends ItemIdentity {
  story: Story;
}

/**
 * Whether anything but whitespace is left once tags are dropped (a "<" that no ">" closes stays, as text).
 * A scan, not `replace(/<[^>]*>/g, '')`: on a title of 40,000 "&lt;" that regex took 1.2 s, since every
 * unclosed "<" made it read to the end of the text again.
 */
function hasText(s: string): boolean {
  let at = 0;
  for (;;) {
    const lt = s.indexOf('<', at);
    if (/\S/.test(lt < 0 ? s.slice(at) : s.slice(at, lt))) return true;
    if (lt < 0) return false;
    const gt = s.indexOf('>', lt + 1);
    if (gt < 0) return true;
    at = gt + 1;
  }
}

/**
 * Identity from the raw item. The link is parsed and canonicalized, and the story id hashed, only when
 * asked: an unchanged item of a re-polled feed is recognised by its guid and text alone.
 */
export function identifyItem(item: ParsedItem, feedId: string, feedUrl: string): ItemIdentity | { skip: string } {
  const guid = item.guid?.trim() || null;
  if (!hasText(item.title) && !hasText(item.summaryHtml)) return { skip: `item ${guid ?? item.link ?? '(no guid, no link)'} has neither title nor summary` };
  return new LazyIdentity(item, feedId, feedUrl, guid, contentHash(item.title, item.summaryHtml));
}

/**
 * An item's identity whose link and story id are worked out on first use. A class, not an object of getters
 * closing over the item: closures made per item die with the fetch, and V8 drops their optimized code at the
 * next full collection, so they were compiled again and again while polling.
 */
class LazyIdentity implements ItemIdentity {
  private links: { url: string; canonical: string | null } | null = null;
  private storyId: string | null = null;

  constructor(private readonly item: ParsedItem, readonly feedId: string, private readonly feedUrl: string, readonly guid: string | null, readonly contentHash: string) {}

  private linksOf(): { url: string; canonical: string | null } {
    if (this.links) return this.links;
    const { item, guid } = this;
    const parsedLink = item.link ? httpUrl(item.link, this.feedUrl) : null;
    const guidUrl = !parsedLink && guid && /^https?:\/\//i.test(guid) ? httpUrl(guid) : null;
    const chosen = parsedLink ?? guidUrl;
    const url = chosen ? chosen.toString() : '';
    this.links = { url, canonical: chosen ? canonicalOf(chosen) : null };
    return this.links;
  }

  get url(): string {
    return this.linksOf().url;
  }

  get canonicalUrl(): string | null {
    return this.linksOf().canonical;
  }

  get id(): string {
    return (this.storyId ??= storyIdFor(this.feedId, this.guid ?? this.linksOf().canonical ?? `content:${this.contentHash}`));
  }
}

/**
 * One feed item to a Story, or the reason it cannot become one. An item needs a title or a summary and
 * something to identify it (guid, link or content); a missing or nonsensical date (or one in the future)
 * falls back to when it was first seen.
 */
export function normalizeItem(item: ParsedItem, feedId: string, feedUrl: string, now: number, known?: ItemIdentity): NormalizedItem | { skip: string } {
  const ident = known ?? identifyItem(item, feedId, feedUrl);
  if ('skip' in ident) return ident;
  let title = toPlainText(item.title, MAX_TITLE);
  const summary = toPlainText(item.summaryHtml, MAX_SUMMARY);
  // Items without a title (allowed in RSS) get the summary's opening words.
  if (!title) title = summary.length > 120 ? `${summary.slice(0, 117).replace(/\s+\S*$/, '')}…` : summary;
  if (!title) return { skip: `item ${ident.guid ?? (ident.url || '(no guid, no link)')} has neither title nor summary` };
  let publishedAt = itemDate(item);
  if (publishedAt === null || publishedAt > now + 5 * 60_000) publishedAt = now;
  return {
    id: ident.id,
    feedId,
    guid: ident.guid,
    url: ident.url,
    canonicalUrl: ident.canonicalUrl,
    contentHash: ident.contentHash,
    story: {
      id: ident.id,
      feedId,
      guid: ident.guid,
      url: ident.url,
      title,
      summary,
      categories: [...new Set(item.categories.map((c) => toPlainText(c, 100)).filter(Boolean))].slice(0, 20),
      publishedAt,
      firstSeenAt: now,
      language: item.language?.trim().toLowerCase() || null,
      author: item.author ? toPlainText(item.author, 200) || null : null,
      image: item.image ? absoluteUrl(item.image, feedUrl) : null,
      sources: [{ feedId, url: ident.url }],
    },
  };
}

/** Story ids are derived from the feed and what identifies the item in it, so two pollers agree on the id. */
export const storyIdFor = (feedId: string, identity: string) => hash('sha256', `${feedId}\u0000${identity}`, 'hex').slice(0, 20);
