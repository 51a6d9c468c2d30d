import type { Story } from '../../model.ts';

/**
 * How urgent and how long-lived a push is. A story is breaking when a feed labels it so (a "breaking"
 * category, or a title starting with "Breaking"/"BREAKING") and it is at most BREAKING_MAX_AGE_MS old
 * when sent: an old story labelled breaking is no longer worth waking anyone for.
 */
export const BREAKING_MAX_AGE_MS = 60 * 60 * 1000;
const BREAKING_TTL_SECONDS = 30 * 60;
/** A normal story stays worth delivering for a few hours after it was published. */
const NEWS_LIFETIME_SECONDS = 4 * 60 * 60;
const MIN_TTL_SECONDS = 15 * 60;

export function isBreaking(story: Pick<Story, 'title' | 'categories' | 'publishedAt'>, now: number): boolean {
  const labelled = story.categories.some((c) => /^\s*breaking(\s+news)?\s*$/i.test(c)) || /^\s*breaking\b/i.test(story.title);
  return labelled && now - story.publishedAt <= BREAKING_MAX_AGE_MS;
}

/**
 * Explicit TTL, never web-push's four-week default: breaking news lives 30 minutes; other news what is
 * left of its four-hour lifetime, but at least 15 minutes so a device that is briefly offline still gets it.
 */
export function pushTtlSeconds(story: Pick<Story, 'publishedAt'>, now: number, breaking: boolean): number {
  if (breaking) return BREAKING_TTL_SECONDS;
  const ageSeconds = Math.max(0, Math.floor((now - story.publishedAt) / 1000));
  return Math.max(MIN_TTL_SECONDS, NEWS_LIFETIME_SECONDS - ageSeconds);
}

export const pushUrgency = (breaking: boolean): 'high' | 'normal' => (breaking ? 'high' : 'normal');

/** Topic header (<= 32 URL-safe chars): a later push for the same story replaces an undelivered earlier one. */
export const pushTopic = (storyId: string) => storyId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32);
