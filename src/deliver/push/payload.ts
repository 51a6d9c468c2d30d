import type { Story } from '../../model.ts';
import { displayText, sliceWhole, truncate } from '../text.ts';

/** What the service worker receives and shows. */
export interface PushPayload {
  title: string;
  body: string;
  url: string;
  topic: string;
  why: string;
  storyId: string;
  image?: string;
  /** Set on a bundle: the story ids it stands for. */
  stories?: string[];
}

/**
 * Push services accept 4096 bytes of encrypted body; aes128gcm adds 86 bytes of header, a 16-byte tag and
 * one padding delimiter, leaving 3993 bytes of JSON. Stay under with a margin.
 */
export const MAX_PAYLOAD_BYTES = 3800;
const MAX_BODY_CHARS = 300;
/** An image URL longer than this is dropped rather than trimmed: a cut URL is a broken one. */
const MAX_IMAGE_URL_CHARS = 1000;

const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * A title is never shortened below this: without one the service worker shows only its generic "New alert from
 * Herald", which says nothing of the story, while the ledger says sent. A URL so long that even this
 * does not fit makes the push too large, which the push service refuses: a recorded failure, not a blank alert.
 */
const MIN_TITLE_CHARS = 40;

/**
 * Shrinks the body (never the URL) until the JSON fits in `maxBytes`; then the why-line, the topic name (a custom
 * topic's name is the reader's own text, of any length), the image and, last, the title down to MIN_TITLE_CHARS.
 * The image goes before the title: it is decoration, and cut after the title, a long URL with an image emptied the
 * title first and then dropped the image, which left room for the title after all.
 */
function fit(payload: PushPayload, maxBytes: number): string {
  let json = JSON.stringify(payload);
  if (byteLength(json) <= maxBytes) return json;
  const shrink = (field: 'body' | 'why' | 'topic' | 'title', floor: number) => {
    while (byteLength(json) > maxBytes && payload[field].length > floor) {
      const next = truncate(payload[field], Math.max(floor, Math.floor(payload[field].length * 0.7)));
      payload[field] = floor === 0 && (next === '…' || next.length >= payload[field].length) ? '' : next;
      json = JSON.stringify(payload);
    }
  };
  for (const field of ['body', 'why', 'topic'] as const) shrink(field, 0);
  if (byteLength(json) > maxBytes && payload.image) {
    delete payload.image;
    json = JSON.stringify(payload);
  }
  shrink('title', MIN_TITLE_CHARS);
  return json;
}

/** Renders one story's payload: title, short summary, URL, topic, why-line and image, within `maxBytes`. */
export function renderPushPayload(
  story: Pick<Story, 'id' | 'title' | 'summary' | 'url' | 'image'>,
  topicName: string,
  why: string,
  maxBytes = MAX_PAYLOAD_BYTES,
): string {
  const payload: PushPayload = {
    title: truncate(displayText(story.title), 200),
    // Cut before collapsing whitespace: a 100 KB summary must not cost a regex pass over all of it.
    body: truncate(displayText(sliceWhole(story.summary, MAX_BODY_CHARS * 4)), MAX_BODY_CHARS),
    url: story.url,
    topic: topicName,
    why: truncate(why, 200),
    storyId: story.id,
  };
  if (story.image && story.image.length <= MAX_IMAGE_URL_CHARS && /^https:\/\//.test(story.image)) payload.image = story.image;
  return fit(payload, maxBytes);
}

/** "5 new stories in Japan, India": topics in order of their story count, most first. */
export function bundleTitle(items: { topicName: string }[]): string {
  const counts = new Map<string, number>();
  for (const i of items) counts.set(i.topicName, (counts.get(i.topicName) ?? 0) + 1);
  const topics = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([t]) => t);
  const shown = topics.length > 3 ? `${topics.slice(0, 3).join(', ')} and more` : topics.join(', ');
  return `${items.length} new ${items.length === 1 ? 'story' : 'stories'} in ${shown}`;
}

/** One notification standing for several held stories; it opens the inbox, or the story when there is one. */
export function renderBundlePayload(
  items: { story: Pick<Story, 'id' | 'title' | 'url'>; topicName: string }[],
  bundleId: string,
  inboxUrl: string,
  maxBytes = MAX_PAYLOAD_BYTES,
): string {
  const payload: PushPayload = {
    title: bundleTitle(items),
    body: items.slice(0, 5).map((i) => `• ${truncate(displayText(i.story.title), 120)}`).join('\n'),
    url: items.length === 1 ? items[0]!.story.url : inboxUrl,
    // Bounded like the title: a bundle spanning a hundred topics listed them all, past the push service's 4 KB
    // even at the 413 retry's half size (the body was emptied first and the bundle then failed for good).
    topic: truncate([...new Set(items.map((i) => i.topicName))].join(', '), 200),
    why: 'Held during your quiet hours or bundled to avoid a burst of notifications',
    storyId: bundleId,
    stories: items.map((i) => i.story.id),
  };
  // The id list goes first: it is what the reader never sees (shortening text first left 300 held stories
  // a notification with an empty title and body).
  while (byteLength(JSON.stringify(payload)) > maxBytes && payload.stories && payload.stories.length > 1) {
    payload.stories = payload.stories.slice(0, Math.floor(payload.stories.length / 2));
  }
  return fit(payload, maxBytes);
}
