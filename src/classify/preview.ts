import { setImmediate as nextTurn } from 'node:timers/promises';
import type { AlertQuality, Story } from '../model.ts';
import type { AnalysisCache } from './analysis-cache.ts';
import { explainStory, indexTokens, offersTriggerOf, TopicIndex, type CompiledTopic, type Hit, type TokenizedStory } from './match.ts';

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

/**
 * Stories replayed between two turns of the event loop: a preview of thousands of stories takes a noticeable
 * time even from the cache, and the web process must answer other requests meanwhile.
 */
export const PREVIEW_CHUNK = 200;

/** Replays one compiled query over past stories: what it would have matched and how many alerts it would have sent. */
export async function backtestQuery(
  topic: CompiledTopic,
  stories: readonly Story[],
  opts: { quality: AlertQuality; bestMinScore: number; analyses: AnalysisCache },
): Promise<PreviewResult> {
  const index = new TopicIndex([topic]);
  const offersTrigger = offersTriggerOf(topic);
  const out: PreviewMatch[] = [];
  for (let i = 0; i < stories.length; i += PREVIEW_CHUNK) {
    if (i > 0) await nextTurn();
    for (const story of stories.slice(i, i + PREVIEW_CHUNK)) {
      const tokens = opts.analyses.tokensOf(story);
      // Most stories have none of the query's words: only the others are indexed and evaluated.
      const m = offersTrigger(tokens) ? previewMatch(topic, index, story, tokens, opts) : null;
      if (m) out.push(m);
    }
  }
  return { scanned: stories.length, matched: out.length, alerts: out.filter((m) => m.alert).length, stories: out };
}

function previewMatch(topic: CompiledTopic, index: TopicIndex, story: Story, tokens: TokenizedStory, opts: { quality: AlertQuality; bestMinScore: number }): PreviewMatch | null {
  const m = explainStory(indexTokens(tokens), index).find((x) => x.topicId === topic.id);
  if (!m) return null;
  return {
    storyId: story.id,
    title: story.title,
    url: story.url,
    publishedAt: new Date(story.publishedAt).toISOString(),
    score: m.score,
    why: m.why,
    hits: m.hits,
    alert: opts.quality === 'all' || m.score >= opts.bestMinScore,
  };
}

/** Smallest sample on which a match ratio says anything: with fewer recent stories a query is not judged. */
export const MIN_SAMPLE_FOR_RATIO = 20;

/** Why a query is too broad to become an alert, or null. */
export function tooBroad(result: Pick<PreviewResult, 'scanned' | 'matched'>, maxRatio: number, days: number): string | null {
  if (result.scanned < MIN_SAMPLE_FOR_RATIO || result.matched / result.scanned <= maxRatio) return null;
  const pct = Math.round((result.matched / result.scanned) * 100);
  return `the query matches ${result.matched} of the ${result.scanned} stories of the last ${days} days (${pct}%, more than ${Math.round(maxRatio * 100)}%): it would alert on almost everything; make it more specific`;
}
