import type { AlertQuality, Story } from '../model.ts';
import { explainStory, TopicIndex, type CompiledTopic, type Hit, type StoryLimits } from './match.ts';

export interface PreviewMatch {
  storyId: string;
  title: string;
  url: string;
  publishedAt: string;
  score: number;
  why: string;
  hits: readonly Hit[];
  /** Whether the reader's quality choice would have let this match through as an alert. */
  alert: boolean;
}

export interface PreviewResult {
  /** Stories replayed (the newest first, bounded by the preview limits). */
  scanned: number;
  matched: number;
  /** Alerts the query would have sent (one per story; each goes to every channel the reader picks). */
  alerts: number;
  stories: PreviewMatch[];
}

/** Replays one compiled query over past stories: what it would have matched and how many alerts it would have sent. */
export function backtestQuery(
  topic: CompiledTopic,
  stories: readonly Story[],
  opts: { quality: AlertQuality; bestMinScore: number; storyLimits?: StoryLimits },
): PreviewResult {
  const index = new TopicIndex([topic]);
  const out: PreviewMatch[] = [];
  for (const story of stories) {
    const m = explainStory(story, index, opts.storyLimits).find((x) => x.topicId === topic.id);
    if (!m) continue;
    out.push({
      storyId: story.id,
      title: story.title,
      url: story.url,
      publishedAt: new Date(story.publishedAt).toISOString(),
      score: m.score,
      why: m.why,
      hits: m.hits,
      alert: opts.quality === 'all' || m.score >= opts.bestMinScore,
    });
  }
  return { scanned: stories.length, matched: out.length, alerts: out.filter((m) => m.alert).length, stories: out };
}

/** Smallest sample on which a match ratio says anything: with fewer recent stories a query is not judged. */
export const MIN_SAMPLE_FOR_RATIO = 20;

/** Why a query is too broad to become an alert, or null. */
export function tooBroad(result: Pick<PreviewResult, 'scanned' | 'matched'>, maxRatio: number, days: number): string | null {
  if (result.scanned < MIN_SAMPLE_FOR_RATIO || result.matched / result.scanned <= maxRatio) return null;
  const pct = Math.round((result.matched / result.scanned) * 100);
  return `the query matches ${result.matched} of the ${result.scanned} stories of the last ${days} days (${pct}%, more than ${Math.round(maxRatio * 100)}%): it would alert on almost everything; make it more specific`;
}
