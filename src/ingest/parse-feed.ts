import Parser from 'rss-parser';

export interface ParsedItem {
  guid: string | null;
  link: string | null;
  title: string;
  /** Plain-text summary as rss-parser extracted it, or the raw HTML description. */
  summaryHtml: string;
  categories: string[];
  published: string | null;
}
export interface ParsedFeed {
  title: string;
  items: ParsedItem[];
}

export class ParseError extends Error {
  override name = 'ParseError';
  constructor(readonly code: 'not-a-feed' | 'malformed', message: string) {
    super(message);
  }
}

const parser = new Parser();

/** Decodes the body (UTF-8 or its BOM; the ingestion issue widens this) and parses it with rss-parser. */
export async function parseFeed(body: Buffer): Promise<ParsedFeed> {
  const text = new TextDecoder('utf-8').decode(body);
  if (/^\s*(<!doctype html|<html)/i.test(text)) {
    throw new ParseError('not-a-feed', 'got an HTML page, not a feed');
  }
  let feed: Awaited<ReturnType<typeof parser.parseString>>;
  try {
    feed = await parser.parseString(text);
  } catch (err) {
    throw new ParseError('malformed', `not a valid RSS or Atom document: ${(err as Error).message.split('\n')[0]}`);
  }
  return {
    title: feed.title ?? '',
    items: (feed.items ?? []).map((i) => ({
      guid: typeof i.guid === 'string' && i.guid ? i.guid : (typeof i.id === 'string' && i.id ? i.id : null),
      link: i.link ?? null,
      title: i.title ?? '',
      summaryHtml: i.contentSnippet ?? i.summary ?? i.content ?? '',
      categories: Array.isArray(i.categories) ? i.categories.filter((c): c is string => typeof c === 'string') : [],
      published: i.isoDate ?? i.pubDate ?? null,
    })),
  };
}
