/** Shapes shared by every pipeline stage. Stores persist them; pure functions take them as input. */

export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export interface Story {
  id: string;
  feedId: string;
  guid: string | null;
  url: string;
  title: string;
  summary: string;
  categories: string[];
  publishedAt: number;
  firstSeenAt: number;
  /** BCP 47-ish language tag as the feed declared it, lower-cased. */
  language?: string | null;
  author?: string | null;
  image?: string | null;
  /** Every feed that carried this story (the first one included), with the link it gave. */
  sources?: StorySource[];
  /** Set when the publisher changed the item's title or summary after we first saw it. */
  updatedAt?: number | null;
}

export interface StorySource {
  feedId: string;
  url: string;
}

/** A sent digest as the reader can open it in a browser: every story of each topic, in the email's order. */
export interface DigestView {
  groups: { topicId: string; topicName: string; storyIds: string[]; pushedIds: string[] }[];
}

export type Cadence = 'instant' | 'daily' | 'off';
export type Channel = 'push' | 'email';
export const CHANNELS: readonly Channel[] = ['push', 'email'];

export interface Follow {
  cadence: Cadence;
  /** Channels used for instant alerts; a daily digest always goes by email. */
  channels: Channel[];
  /** "Less like this": matches scoring below this are not sent (absent: every match). */
  minScore?: number;
  /** "Mute for 7 days": epoch ms until which this topic sends nothing. */
  mutedUntil?: number;
}

/** Google Alerts' quality setting: "best" alerts only on strong matches, "all" on every match. */
export type AlertQuality = 'best' | 'all';

export interface Subscriber {
  id: string;
  email: string | null;
  quality: AlertQuality;
  timeZone: string;
  /** Local "HH:MM". */
  digestTime: string;
  /** An address waiting for its confirmation link to be opened; nothing but that link is sent to it. */
  pendingEmail: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface PushSubscriptionRecord {
  id: string;
  endpoint: string;
  keys: { p256dh: string; auth: string };
  createdAt: number;
  /**
   * The VAPID public key the browser subscribed with (its applicationServerKey): a push service refuses a
   * message signed with any other key, so this decides which key pair signs for this device. Absent on
   * records stored before Herald kept it (see `vapidKeyFor`).
   */
  vapidPublicKey?: string;
}

export interface TopicMatch {
  topicId: string;
  score: number;
  /** Human-readable reason, e.g. "Matched: Japan in title, Quad in summary". */
  why: string;
}

/** What identifies a feed item inside its feed, computed without normalizing its text. */
export interface ItemIdentity {
  id: string;
  feedId: string;
  guid: string | null;
  /** The link as published (what the reader clicks), or the guid when it is a URL. */
  url: string;
  canonicalUrl: string | null;
  /** Hash of the item's text as published: a change means the publisher edited it. */
  contentHash: string;
}
