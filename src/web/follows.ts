import type { Follow } from '../model.ts';

/** Pure rules for a subscriber's per-topic choices and tuning. */

export const MUTE_DAYS = 7;
/** Highest "less like this" threshold: a match needs a title hit plus several more words. */
export const MAX_MIN_SCORE = 12;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The settings form sends cadence and channels only; tuning the reader did from the inbox
 * ("less like this", "mute") survives a save unless the topic is turned off.
 */
export function mergeFollows(prev: Record<string, Follow>, next: Record<string, Pick<Follow, 'cadence' | 'channels'>>): Record<string, Follow> {
  const out: Record<string, Follow> = { ...prev };
  for (const [topic, choice] of Object.entries(next)) {
    const old = prev[topic];
    out[topic] =
      choice.cadence === 'off' || !old
        ? { cadence: choice.cadence, channels: [...choice.channels] }
        : {
            cadence: choice.cadence,
            channels: [...choice.channels],
            ...(old.minScore !== undefined ? { minScore: old.minScore } : {}),
            ...(old.mutedUntil !== undefined ? { mutedUntil: old.mutedUntil } : {}),
          };
  }
  return out;
}

/**
 * "Less like this": a topic's matches score 1 per summary word, 2 per category, 3 per title word; each
 * press asks for one more point of evidence than the weakest match that could alert before.
 */
export function raiseThreshold(follow: Follow): Follow {
  return { ...follow, minScore: Math.min(MAX_MIN_SCORE, (follow.minScore ?? 1) + 1) };
}

export function muteFollow(follow: Follow, now: number, days = MUTE_DAYS): Follow {
  return { ...follow, mutedUntil: now + days * DAY_MS };
}

/** Clears both kinds of tuning. */
export function resetTuning(follow: Follow): Follow {
  return { cadence: follow.cadence, channels: [...follow.channels] };
}
