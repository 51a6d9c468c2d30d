import type { Story } from '../model.ts';
import { storyIdFor } from '../store/stories.ts';
import type { ParsedItem } from './parse-feed.ts';

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** HTML to plain text: tags dropped, common entities decoded, whitespace collapsed. */
export function toPlainText(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const cp = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return Number.isFinite(cp) && cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    })
    .replace(/\s+/g, ' ')
    .trim();
}

export function canonicalUrl(raw: string, base?: string): string | null {
  try {
    const u = new URL(raw.trim(), base);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    u.hash = '';
    return u.toString();
  } catch {
    return null;
  }
}

const MAX_TITLE = 300;
const MAX_SUMMARY = 2000;

/** One feed item to a Story, or null (with the reason) when it cannot identify a story. */
export function normalizeItem(item: ParsedItem, feedId: string, feedUrl: string, now: number): { story: Story } | { skip: string } {
  const url = item.link ? canonicalUrl(item.link, feedUrl) : null;
  if (!url) return { skip: `item "${item.title.slice(0, 80)}" has no usable link` };
  const title = toPlainText(item.title).slice(0, MAX_TITLE);
  if (!title) return { skip: `item ${url} has no title` };
  const published = item.published ? Date.parse(item.published) : NaN;
  const guid = item.guid?.trim() || null;
  return {
    story: {
      id: storyIdFor(guid ?? url),
      feedId,
      guid,
      url,
      title,
      summary: toPlainText(item.summaryHtml).slice(0, MAX_SUMMARY),
      categories: item.categories.map((c) => toPlainText(c)).filter(Boolean).slice(0, 20),
      // A missing or nonsensical date (or one in the future) falls back to when we first saw it.
      publishedAt: Number.isFinite(published) && published <= now + 60_000 ? published : now,
      firstSeenAt: now,
    },
  };
}
