/**
 * Atom text constructs (title, subtitle, summary) and atom:content are plain text unless their type says
 * otherwise: no type is "text" (RFC 4287 §3.1.1, §4.1.3.1; Atom 0.3's default, "text/plain", is the same). Such
 * text is literal once XML entities are decoded, but the normalizer reads every title and summary as HTML, so
 * "Use <b> for bold" lost its "<b>" and "x < y and y > z" everything after the x. Text-typed values are escaped
 * here, on both parse paths, to the HTML that shows exactly that text. type="html" is HTML already, and
 * type="xhtml" has been rewritten to it (parse-feed.ts `xhtmlAsHtml`).
 */
export function isAtomTextType(type: string | null | undefined): boolean {
  const t = (type ?? 'text').trim().toLowerCase();
  return t === 'text' || t === 'text/plain';
}

export const escapeAtomText = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A construct's value as the HTML the normalizer expects: escaped when its type is text. */
export const atomTextAsHtml = (value: string | null, type: string | null | undefined): string | null =>
  value !== null && isAtomTextType(type) ? escapeAtomText(value) : value;
