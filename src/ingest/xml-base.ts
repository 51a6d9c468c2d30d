/**
 * A URL from an Atom document resolved against the xml:base attributes in scope (XML Base; RFC 4287 §2),
 * outermost first, themselves resolved against the URL the document was fetched from. With no xml:base in
 * scope the URL is returned as published: the normalizer resolves it against the feed URL. A relative
 * xml:base with no document URL to resolve it against leaves the URL as published too.
 */
export function resolveXmlBase(url: string | null, bases: readonly (string | null)[], documentUrl?: string): string | null {
  if (url === null || bases.every((b) => b === null)) return url;
  let base = documentUrl;
  try {
    for (const b of bases) if (b !== null) base = new URL(b, base).href;
    return new URL(url, base).href;
  } catch {
    return url;
  }
}
