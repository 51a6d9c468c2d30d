import { fetchFeed, FetchError } from './fetch-feed.ts';
import { canonicalUrl, itemDate, toPlainText } from './normalize.ts';
import { parseFeedBody, ParseError } from './parse-feed.ts';
import type { IngestSettings } from './poll.ts';

export interface ProbeItem {
  title: string;
  link: string | null;
  published: string | null;
}

export type ProbeResult =
  | { ok: true; url: string; finalUrl: string; status: number; contentType: string | null; format: string; title: string; items: number; sample: ProbeItem[] }
  | { ok: false; url: string; error: { code: string; message: string } };

const SAMPLE = 5;

/**
 * Fetches a feed once exactly as the poller would (same SSRF guard, limits, decoding and parser) and
 * reports what it saw, without storing anything: the console validates a feed with it before adding it.
 */
export async function probeFeed(url: string, s: Pick<IngestSettings, 'fetchTimeoutMs' | 'connectTimeoutMs' | 'fetchMaxBytes' | 'userAgent' | 'allowPrivate'>): Promise<ProbeResult> {
  try {
    const res = await fetchFeed({
      url, etag: null, lastModified: null, timeoutMs: s.fetchTimeoutMs, connectTimeoutMs: s.connectTimeoutMs,
      maxBytes: s.fetchMaxBytes, userAgent: s.userAgent, allowPrivate: s.allowPrivate,
    });
    // No validators were sent, so a 304 is the server's mistake: nothing to show.
    if (res.kind !== 'ok') return { ok: false, url, error: { code: 'not-modified', message: 'the server answered 304 Not Modified to a request without validators' } };
    const feed = await parseFeedBody(res.body, { contentType: res.contentType, baseUrl: res.finalUrl, maxBytes: s.fetchMaxBytes });
    return {
      ok: true, url, finalUrl: res.finalUrl, status: res.status, contentType: res.contentType, format: feed.format,
      title: toPlainText(feed.title, 300), items: feed.items.length,
      sample: feed.items.slice(0, SAMPLE).map((item) => ({
        title: toPlainText(item.title, 300) || toPlainText(item.summaryHtml, 120),
        // Only a link the poller would keep (http or https): a feed's javascript: link must not become a console link.
        link: item.link ? canonicalUrl(item.link, res.finalUrl) : null,
        published: ((t) => (t === null ? null : new Date(t).toISOString()))(itemDate(item)),
      })),
    };
  } catch (err) {
    if (err instanceof FetchError || err instanceof ParseError) return { ok: false, url, error: { code: err.code, message: err.message } };
    throw err;
  }
}
