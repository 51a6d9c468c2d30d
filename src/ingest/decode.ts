import { isUtf8 } from 'node:buffer';
import chardet from 'chardet';

/**
 * Bytes to text the way feed readers do it. Precedence (RFC 7303 §3 and XML 1.0 Appendix F):
 * a byte-order mark, then the HTTP charset, then the XML prolog's encoding, then UTF-8.
 * Real feeds lie, so repairs follow the rules: a label TextDecoder does not know is ignored; an HTTP
 * charset is overruled by the prolog when the bytes prove the header wrong (see decodeBody); and bytes
 * that are not valid UTF-8 where UTF-8 was assumed or declared are otherwise read as windows-1252
 * (what a browser does with Latin-1 text served without a charset).
 */

export type CharsetSource = 'bom' | 'http' | 'prolog' | 'default' | 'fallback';
export interface Decoded {
  text: string;
  encoding: string;
  source: CharsetSource;
}

/** WHATWG name for a label (or a legacy alias of one), or null when TextDecoder does not know it. */
export function encodingFor(label: string | null | undefined): string | null {
  if (!label) return null;
  const clean = label.trim().replace(/^["']|["']$/g, '');
  try {
    return new TextDecoder(clean).encoding;
  } catch {
    const alias = legacyAlias(clean);
    if (alias === null) return null;
    try {
      return new TextDecoder(alias).encoding;
    } catch {
      return null;
    }
  }
}

/** Microsoft code pages TextDecoder knows by another name. */
const CODE_PAGES: Record<string, string> = { '932': 'shift_jis', '936': 'gbk', '949': 'euc-kr', '950': 'big5', '874': 'windows-874', '866': 'ibm866' };

/**
 * The WHATWG label for a spelling publishers write and feed readers accept (Python's codec aliases), but the
 * Encoding standard lacks: "cp932", "CP936", "cp949", "win-1251", "latin-2", "iso8859_7", "euc-cn". Ignored,
 * the label left the bytes to the windows-1252 fallback: mojibake for every non-Latin feed that used one.
 */
function legacyAlias(label: string): string | null {
  const l = label.toLowerCase().replace(/[_ ]/g, '-');
  const cp = /^(?:cp|ms|win|windows|x-cp)-?(\d{3,4})$/.exec(l);
  if (cp) return CODE_PAGES[cp[1]!] ?? `windows-${cp[1]}`;
  const latin = /^latin-?(\d)$/.exec(l);
  if (latin) return `latin${latin[1]}`;
  const iso = /^iso-?8859-?(\d{1,2})$/.exec(l);
  if (iso) return `iso-8859-${iso[1]}`;
  if (l === 'euc-cn') return 'gbk';
  return l === label ? null : l;
}

export function charsetFromContentType(contentType: string | null | undefined): string | null {
  if (!contentType) return null;
  const m = /;\s*charset\s*=\s*("?)([^";\s]+)\1/i.exec(contentType);
  return m ? m[2]! : null;
}

function sniffBom(bytes: Uint8Array): { encoding: string; length: number } | null {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return { encoding: 'utf-8', length: 3 };
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return { encoding: 'utf-16le', length: 2 };
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return { encoding: 'utf-16be', length: 2 };
  // No BOM, but "<?" in UTF-16 (XML 1.0 Appendix F): the prolog itself shows the byte order. So does any
  // first "<" or whitespace beside a NUL, a byte no 8-bit XML document holds: a UTF-16 feed without a BOM
  // or a declaration (served as charset=utf-16, or with nothing) was read as UTF-8 and refused.
  if (startsXml(bytes[0]) && bytes[1] === 0x00) return { encoding: 'utf-16le', length: 0 };
  if (bytes[0] === 0x00 && startsXml(bytes[1])) return { encoding: 'utf-16be', length: 0 };
  return null;
}

const startsXml = (b: number | undefined) => b === 0x3c || b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/** The encoding pseudo-attribute of the XML declaration, read as ASCII (it must be ASCII to be read at all). */
export function prologEncoding(bytes: Uint8Array): string | null {
  const head = Buffer.from(bytes.subarray(0, 512)).toString('latin1');
  const m = /^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']/.exec(head);
  return m ? m[1]! : null;
}

const validUtf8 = (bytes: Uint8Array) => isUtf8(bytes);
const utf8 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');

/** UTF-16 declared in a prolog that was readable as ASCII cannot be true: the document is 8-bit. */
const isUtf16 = (e: string) => e === 'utf-16le' || e === 'utf-16be';

export function decodeBody(bytes: Uint8Array, contentType?: string | null): Decoded {
  const bom = sniffBom(bytes);
  if (bom) return { text: new TextDecoder(bom.encoding).decode(bytes.subarray(bom.length)), encoding: bom.encoding, source: 'bom' };

  const fromHttp = encodingFor(charsetFromContentType(contentType));
  const prologLabel = prologEncoding(bytes);
  let fromProlog = encodingFor(prologLabel);
  if (fromProlog && isUtf16(fromProlog)) fromProlog = null;

  let chosen: string | null = null;
  let source: CharsetSource = 'default';
  if (fromHttp && !isUtf16(fromHttp)) {
    chosen = fromHttp;
    source = 'http';
    // A server-wide "charset=ISO-8859-1" over a feed whose prolog says UTF-8 and whose bytes are valid UTF-8
    // is the common misconfiguration; every feed reader trusts the document then. A prolog that names no
    // encoding says UTF-8 too (XML's default), and a feed's valid UTF-8 is not Latin-1 by accident.
    const saysUtf8 = fromProlog === 'utf-8' || prologLabel === null;
    if (fromHttp !== 'utf-8' && saysUtf8 && validUtf8(bytes)) {
      chosen = 'utf-8';
      source = 'prolog';
    }
  } else if (fromProlog) {
    chosen = fromProlog;
    source = 'prolog';
  }
  if (chosen === null || chosen === 'utf-8') {
    if (validUtf8(bytes)) return { text: utf8HoldsC1(bytes) ? demoronize(utf8(bytes)) : utf8(bytes), encoding: 'utf-8', source: chosen ? source : 'default' };
    // The reverse misconfiguration: a server-wide "charset=utf-8" over a feed whose bytes are not UTF-8 and
    // whose prolog names their encoding (windows-1251, ISO-8859-2...). The header is proven wrong; the
    // prolog is the publisher's own word, where windows-1252 would be a guess.
    if (source === 'http' && fromProlog && fromProlog !== 'utf-8') return decodeAs(bytes, fromProlog, 'prolog');
    const guessed = chosen === null ? guessMultiByte(bytes) : null;
    if (guessed) return { text: new TextDecoder(guessed).decode(bytes), encoding: guessed, source: 'fallback' };
    // Declared or assumed UTF-8 that is not: Latin-1 / windows-1252 bytes are by far the usual cause.
    return { text: demoronize(new TextDecoder('windows-1252').decode(bytes)), encoding: 'windows-1252', source: 'fallback' };
  }
  return decodeAs(bytes, chosen, source);
}

function decodeAs(bytes: Uint8Array, encoding: string, source: CharsetSource): Decoded {
  const text = new TextDecoder(encoding).decode(bytes);
  return { text: encoding === 'windows-1252' ? demoronize(text) : text, encoding, source };
}

const MULTI_BYTE = new Set(['Big5', 'GB18030', 'Shift_JIS', 'EUC-JP', 'EUC-KR']);

/**
 * Undeclared, not UTF-8: a CJK multi-byte encoding is only taken when a statistical detector is confident
 * and the bytes decode without a single error; everything else is read as windows-1252.
 */
function guessMultiByte(bytes: Uint8Array): string | null {
  const best = chardet.analyse(bytes)[0];
  if (!best || best.confidence < 50 || !MULTI_BYTE.has(best.name)) return null;
  try {
    new TextDecoder(best.name, { fatal: true }).decode(bytes);
    return encodingFor(best.name);
  } catch {
    return null;
  }
}

/**
 * windows-1252 bytes 0x80-0x9F (WHATWG Encoding). Spelled out because Node 20's TextDecoder decodes
 * "windows-1252" with its Latin-1 fast path, which turns smart quotes into C1 control characters.
 */
const CP1252_C1 = '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

/**
 * Whether valid UTF-8 bytes encode a C1 control (U+0080-U+009F: bytes C2 80 to C2 9F). A byte search, where
 * looking for them in the decoded text was a regular expression over every character of every document.
 */
function utf8HoldsC1(bytes: Uint8Array): boolean {
  for (let at = bytes.indexOf(0xc2); at >= 0 && at + 1 < bytes.length; at = bytes.indexOf(0xc2, at + 1)) {
    if (bytes[at + 1]! <= 0x9f) return true;
  }
  return false;
}

/** C1 controls never appear in real text: they are windows-1252 punctuation (mis-decoded or double-encoded). */
export function demoronize(text: string): string {
  if (!/[\u0080-\u009f]/.test(text)) return text;
  return text.replace(/[\u0080-\u009f]/g, (c) => CP1252_C1[c.charCodeAt(0) - 0x80]!);
}
