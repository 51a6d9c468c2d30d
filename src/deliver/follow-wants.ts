import type { Channel, Follow } from '../model.ts';

/**
 * Whether the reader still wants this topic's instant alerts on `channel` at `now`: followed instantly on that
 * channel and not muted. The classifier checked this at the match; a send checks it again on every attempt,
 * because a retry can come hours later, after the reader unfollowed or muted the topic.
 */
export function followWants(follow: Pick<Follow, 'cadence' | 'channels' | 'mutedUntil'> | undefined, channel: Channel, now: number): boolean {
  if (follow?.cadence !== 'instant' || !follow.channels.includes(channel)) return false;
  return follow.mutedUntil === undefined || follow.mutedUntil <= now;
}
