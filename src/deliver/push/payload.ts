import type { Story } from '../../model.ts';

/** What the service worker receives and shows. */
export interface PushPayload {
  title: string;
  body: string;
  url: string;
  topic: string;
  why: string;
  storyId: string;
}

/**
 * Push services accept 4096 bytes of encrypted payload; aes128gcm adds 86 bytes of header and tag,
 * plus one padding delimiter byte. Stay well under so no service refuses us.
 */
export const MAX_PAYLOAD_BYTES = 3800;
const MAX_BODY_CHARS = 300;

const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');

function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

/** Renders the payload JSON; the summary is trimmed to fit, never the URL. */
export function renderPushPayload(story: Pick<Story, 'id' | 'title' | 'summary' | 'url'>, topicName: string, why: string): string {
  const payload: PushPayload = {
    title: truncate(story.title, 200),
    body: truncate(story.summary, MAX_BODY_CHARS),
    url: story.url,
    topic: topicName,
    why: truncate(why, 200),
    storyId: story.id,
  };
  let json = JSON.stringify(payload);
  while (byteLength(json) > MAX_PAYLOAD_BYTES && payload.body.length > 0) {
    payload.body = truncate(payload.body, Math.floor(payload.body.length * 0.7));
    if (payload.body === '…') payload.body = '';
    json = JSON.stringify(payload);
  }
  return json;
}
