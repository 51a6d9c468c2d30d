import { Parser as HtmlParser } from 'htmlparser2';

/**
 * Second chance for XML that real feeds get slightly wrong in ways every feed reader forgives:
 * HTML named entities (&eacute;, &nbsp;) that XML does not define, and bare ampersands in text and URLs.
 * CDATA sections and comments are left untouched. Only used after a strict parse failed.
 */
const XML_ENTITIES = new Set(['amp', 'lt', 'gt', 'quot', 'apos']);
const ENTITY_OR_AMP = /&(#[0-9]+;|#x[0-9a-fA-F]+;|([A-Za-z][A-Za-z0-9]{0,31});)?/g;

const htmlEntityCache = new Map<string, string | null>();
/** Decodes one HTML named entity with a real HTML parser (its table is the HTML standard's). */
function decodeHtmlEntity(name: string): string | null {
  const cached = htmlEntityCache.get(name);
  if (cached !== undefined) return cached;
  let out = '';
  const p = new HtmlParser({ ontext: (t) => void (out += t) }, { decodeEntities: true });
  p.write(`&${name};`);
  p.end();
  const value = out === `&${name};` ? null : out;
  htmlEntityCache.set(name, value);
  return value;
}

function repairText(segment: string): string {
  return segment.replace(ENTITY_OR_AMP, (m, ref: string | undefined, name: string | undefined) => {
    if (!ref) return '&amp;';
    if (!name || XML_ENTITIES.has(name)) return m;
    const decoded = decodeHtmlEntity(name);
    if (decoded === null) return `&amp;${name};`;
    return [...decoded].map((c) => `&#${c.codePointAt(0)};`).join('');
  });
}

export function repairXml(text: string): string {
  let out = '';
  let i = 0;
  // Each search result is kept until the scan passes it: searching again for both markers on every
  // section made a document of many CDATA sections and no comment (or the reverse) quadratic, as each
  // search for the absent one read to the end again (40,000 CDATA titles, 1.8 MB: 36 s).
  let cdata = text.indexOf('<![CDATA[');
  let comment = text.indexOf('<!--');
  while (i < text.length) {
    if (cdata >= 0 && cdata < i) cdata = text.indexOf('<![CDATA[', i);
    if (comment >= 0 && comment < i) comment = text.indexOf('<!--', i);
    const next = cdata < 0 ? comment : comment < 0 ? cdata : Math.min(cdata, comment);
    if (next < 0) {
      out += repairText(text.slice(i));
      break;
    }
    out += repairText(text.slice(i, next));
    const close = next === cdata ? text.indexOf(']]>', next) : text.indexOf('-->', next);
    const end = close < 0 ? text.length : close + 3;
    out += text.slice(next, end);
    i = end;
  }
  return out;
}
