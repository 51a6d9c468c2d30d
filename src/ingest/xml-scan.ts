import { demoronize } from './decode.ts';
import { ParseError } from './parse-error.ts';

/**
 * A tokenizer for plain, well-formed XML, for the fast feed path (fast-xml.ts). It finds markup with
 * `indexOf`, which V8 runs over a whole text or CDATA section at once, where htmlparser2's tokenizer (used here
 * before) visits every character through a state machine: on news feeds, whose bytes are mostly article text
 * inside CDATA, that was most of the parse. It reports what htmlparser2 reported in XML mode for the same
 * document (tests/ingest/xml-scan.test.ts compares them), and throws NotPlainXml at the first thing a plain
 * well-formed document does not hold, so the caller can hand the document to rss-parser, which reports the
 * error with its position or repairs it: an unquoted or valueless attribute, a `<` that opens no markup, an
 * unterminated comment, CDATA section or tag, an internal DTD subset, an entity XML does not define.
 * Nesting is the caller's to check: it keeps the element stack.
 */
export interface XmlEvents {
  open(name: string, attrs: Record<string, string>): void;
  /** Character data, entities decoded; CDATA content as it stands. Never empty. */
  text(text: string): void;
  /** `selfClosing` for `<name/>`, reported right after its open. */
  close(name: string, selfClosing: boolean): void;
}

export class NotPlainXml extends Error {}

/**
 * Elements nested deeper than any feed needs (an Atom entry's XHTML content is a few dozen levels at most).
 * A hostile document of 700,000 nested elements (4.9 MB) made the parsers take 2.4 s and 300-500 MB of heap,
 * and overflowed xml2js' stack; refused past this depth, it costs a scan.
 */
export const MAX_DEPTH = 256;
/** The refusal of a document nested past MAX_DEPTH, by the fast path or by the check before rss-parser. */
export const tooDeep = () =>
  new ParseError('too-deep', `elements nested more than ${MAX_DEPTH} levels deep: refused (no feed needs that many, and a parser pays for each)`);

/** HTML's void elements: never closed in a sloppy feed's unescaped HTML, so never counted as nesting. */
const VOID = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'param', 'source', 'track', 'wbr']);

/**
 * Whether elements nest deeper than `max`, read the way a forgiving parser would read even a broken
 * document, so that a sloppy feed's unescaped HTML does not add up: CDATA, comments, declarations and
 * processing instructions skipped; `<x/>` and HTML's void elements (`<br>`, `<img>`...) empty; an element
 * opened right inside one of the same name taken as its sibling (`<p>a<p>b`); a closing tag closes
 * everything opened after the element it names, and one that names no open element is ignored. One pass of
 * `indexOf`.
 */
export function nestedDeeperThan(doc: string, max: number): boolean {
  const open: string[] = [];
  let at = doc.indexOf('<');
  while (at >= 0) {
    const c = doc.charCodeAt(at + 1);
    let next: number;
    if (c === 0x21 /* ! */ || c === 0x3f /* ? */) {
      const end = doc.startsWith('<![CDATA[', at) ? doc.indexOf(']]>', at) : doc.startsWith('<!--', at) ? doc.indexOf('-->', at) : doc.indexOf('>', at);
      if (end < 0) return false;
      next = end + 1;
    } else {
      const gt = doc.indexOf('>', at + 1);
      if (gt < 0) return false;
      let nameEnd = at + (c === 0x2f ? 2 : 1);
      while (nameEnd < gt && !isSpace(doc.charCodeAt(nameEnd)) && doc.charCodeAt(nameEnd) !== 0x2f) nameEnd++;
      const name = doc.slice(at + (c === 0x2f ? 2 : 1), nameEnd);
      if (c === 0x2f) {
        const k = open.lastIndexOf(name);
        if (k >= 0) open.length = k;
      } else if (doc.charCodeAt(gt - 1) !== 0x2f && name !== '' && open[open.length - 1] !== name && !VOID.has(name.toLowerCase())) {
        open.push(name);
        if (open.length > max) return true;
      }
      next = gt + 1;
    }
    at = doc.indexOf('<', next);
  }
  return false;
}

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const EQ = 0x3d;
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;

export function scanXml(doc: string, on: XmlEvents): void {
  const end = doc.length;
  let at = 0;
  while (at < end) {
    const lt = doc.indexOf('<', at);
    if (lt < 0) {
      on.text(decodeRefs(doc.slice(at)));
      return;
    }
    if (lt > at) on.text(decodeRefs(doc.slice(at, lt)));
    const c = doc.charCodeAt(lt + 1);
    if (c === SLASH) {
      const gt = doc.indexOf('>', lt + 2);
      if (gt < 0) throw new NotPlainXml('unterminated closing tag');
      let nameEnd = lt + 2;
      while (nameEnd < gt && !isSpace(doc.charCodeAt(nameEnd))) nameEnd++;
      if (nameEnd === lt + 2) throw new NotPlainXml('closing tag without a name');
      for (let k = nameEnd; k < gt; k++) if (!isSpace(doc.charCodeAt(k))) throw new NotPlainXml('junk in a closing tag');
      on.close(doc.slice(lt + 2, nameEnd), false);
      at = gt + 1;
    } else if (c === 0x21 /* ! */) {
      if (doc.startsWith('<![CDATA[', lt)) {
        const close = doc.indexOf(']]>', lt + 9);
        if (close < 0) throw new NotPlainXml('unterminated CDATA section');
        if (close > lt + 9) on.text(doc.slice(lt + 9, close));
        at = close + 3;
      } else if (doc.startsWith('<!--', lt)) {
        const close = doc.indexOf('-->', lt + 4);
        if (close < 0) throw new NotPlainXml('unterminated comment');
        at = close + 3;
      } else {
        // A document type declaration: only one without an internal subset (entities are refused earlier).
        const gt = doc.indexOf('>', lt + 2);
        // Searched only between its own "<!" and ">": a search past them would make a document of many
        // declarations quadratic.
        if (gt < 0 || doc.slice(lt + 2, gt).includes('[')) throw new NotPlainXml('declaration with an internal subset');
        at = gt + 1;
      }
    } else if (c === 0x3f /* ? */) {
      const close = doc.indexOf('?>', lt + 2);
      // htmlparser2 ends a processing instruction at its first '>': both must agree on where.
      if (close < 0 || doc.indexOf('>', lt + 2) !== close + 1) throw new NotPlainXml('unterminated processing instruction');
      at = close + 2;
    } else {
      at = openTag(doc, lt, on);
    }
  }
}

/** Reads the start tag at `lt`; reports it (and its close, when self-closing); returns the index after it. */
function openTag(doc: string, lt: number, on: XmlEvents): number {
  const end = doc.length;
  let i = lt + 1;
  while (i < end) {
    const c = doc.charCodeAt(i);
    if (isSpace(c) || c === GT || c === SLASH || c === LT || c === EQ) break;
    i++;
  }
  if (i === lt + 1) throw new NotPlainXml('a "<" that opens no tag');
  const name = doc.slice(lt + 1, i);
  const attrs: Record<string, string> = {};
  for (;;) {
    const spaced = i < end && isSpace(doc.charCodeAt(i));
    while (i < end && isSpace(doc.charCodeAt(i))) i++;
    if (i >= end) throw new NotPlainXml('unterminated tag');
    const c = doc.charCodeAt(i);
    if (c === GT) {
      on.open(name, attrs);
      return i + 1;
    }
    if (c === SLASH) {
      if (doc.charCodeAt(i + 1) !== GT) throw new NotPlainXml('"/" inside a tag');
      on.open(name, attrs);
      on.close(name, true);
      return i + 2;
    }
    // XML wants whitespace between a tag's name or one attribute and the next.
    if (!spaced) throw new NotPlainXml('attributes not separated by whitespace');
    const nameStart = i;
    while (i < end) {
      const d = doc.charCodeAt(i);
      if (isSpace(d) || d === EQ || d === GT || d === SLASH || d === LT || d === 0x22 || d === 0x27) break;
      i++;
    }
    if (i === nameStart) throw new NotPlainXml('malformed attribute');
    const attr = doc.slice(nameStart, i);
    while (i < end && isSpace(doc.charCodeAt(i))) i++;
    if (doc.charCodeAt(i) !== EQ) throw new NotPlainXml(`attribute ${attr} without a value`);
    i++;
    while (i < end && isSpace(doc.charCodeAt(i))) i++;
    const quote = doc.charCodeAt(i);
    if (quote !== 0x22 && quote !== 0x27) throw new NotPlainXml(`unquoted value of attribute ${attr}`);
    const close = doc.indexOf(quote === 0x22 ? '"' : "'", i + 1);
    if (close < 0) throw new NotPlainXml(`unterminated value of attribute ${attr}`);
    const raw = doc.slice(i + 1, close);
    if (raw.includes('<')) throw new NotPlainXml(`"<" in the value of attribute ${attr}`);
    // The first of two same-named attributes counts, as in htmlparser2 (XML calls the second an error).
    if (!Object.prototype.hasOwnProperty.call(attrs, attr)) attrs[attr] = decodeRefs(raw);
    i = close + 1;
  }
  throw new NotPlainXml('unterminated tag');
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const REF = /&(?:(amp|lt|gt|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));/y;

/**
 * XML's five entities and character references, as the `entities` package decodes them for htmlparser2: the
 * C1 range as windows-1252 punctuation, NUL, surrogates and numbers past Unicode as U+FFFD.
 */
export function decodeRefs(s: string): string {
  let amp = s.indexOf('&');
  if (amp < 0) return s;
  let out = '';
  let from = 0;
  while (amp >= 0) {
    REF.lastIndex = amp;
    const m = REF.exec(s);
    if (!m) throw new NotPlainXml('an entity XML does not define');
    out += s.slice(from, amp);
    if (m[1] !== undefined) out += NAMED[m[1]]!;
    else {
      const cp = m[2] !== undefined ? Number(m[2]) : parseInt(m[3]!, 16);
      out += cp === 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ? '\ufffd' : cp >= 0x80 && cp <= 0x9f ? demoronize(String.fromCharCode(cp)) : String.fromCodePoint(cp);
    }
    from = REF.lastIndex;
    amp = s.indexOf('&', from);
  }
  return out + s.slice(from);
}
