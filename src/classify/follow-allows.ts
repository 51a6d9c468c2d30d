import type { Follow } from '../model.ts';

/**
 * Whether a match of this score may reach the reader now: not while the topic is muted ("mute for 7 days"),
 * and not below the threshold "less like this" raised. Used by instant fan-out and by the digest.
 */
export function followAllows(follow: Pick<Follow, 'minScore' | 'mutedUntil'>, score: number, now: number): boolean {
  if (follow.mutedUntil !== undefined && follow.mutedUntil > now) return false;
  return follow.minScore === undefined || score >= follow.minScore;
}
