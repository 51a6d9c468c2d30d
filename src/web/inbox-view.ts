import type { InboxItem } from '../store/ledger.ts';

export interface InboxEntry {
  storyId: string;
  title: string;
  url: string;
  topicId: string;
  why: string;
  channels: ('push' | 'email')[];
  at: number;
  read: boolean;
}

/** One entry per story, newest first: a story sent by push and email is one alert to the reader. */
export function mergeInbox(items: readonly InboxItem[]): InboxEntry[] {
  const byStory = new Map<string, InboxEntry>();
  for (const item of items) {
    const entry = byStory.get(item.storyId);
    if (!entry) {
      byStory.set(item.storyId, { storyId: item.storyId, title: item.title, url: item.url, topicId: item.topicId, why: item.why, channels: [item.channel], at: item.at, read: item.read });
      continue;
    }
    if (!entry.channels.includes(item.channel)) entry.channels.push(item.channel);
    entry.at = Math.max(entry.at, item.at);
    entry.read = entry.read && item.read;
  }
  for (const entry of byStory.values()) entry.channels.sort((x, y) => (x === y ? 0 : x === 'push' ? -1 : 1));
  return [...byStory.values()].sort((a, b) => b.at - a.at || a.storyId.localeCompare(b.storyId));
}
