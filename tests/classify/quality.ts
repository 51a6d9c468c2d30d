import { readFileSync } from 'node:fs';
import type { TopicMatch } from '../../src/model.ts';
import type { StoryText } from '../../src/classify/match.ts';

/** One story of the labelled set (tests/fixtures/classify/labelled-stories.jsonl) with the topics it belongs to. */
export interface LabelledStory extends StoryText {
  topics: string[];
}

export function loadLabelledStories(path = 'tests/fixtures/classify/labelled-stories.jsonl'): LabelledStory[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LabelledStory);
}

export interface TopicQuality {
  topic: string;
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  precision: number;
  recall: number;
}

/** Precision and recall per topic and overall (micro-averaged over every (story, topic) decision). */
export function scoreClassifier(stories: readonly LabelledStory[], classify: (s: LabelledStory) => readonly TopicMatch[], topicIds: readonly string[]) {
  const per = new Map(topicIds.map((t) => [t, { tp: 0, fp: 0, fn: 0 }]));
  const mistakes: string[] = [];
  for (const s of stories) {
    const got = new Set(classify(s).map((m) => m.topicId));
    for (const t of topicIds) {
      const c = per.get(t)!;
      const want = s.topics.includes(t);
      if (want && got.has(t)) c.tp++;
      else if (got.has(t)) {
        c.fp++;
        mistakes.push(`+${t}: ${s.title}`);
      } else if (want) {
        c.fn++;
        mistakes.push(`-${t}: ${s.title}`);
      }
    }
  }
  const ratio = (a: number, b: number) => (b === 0 ? 1 : a / b);
  const topics: TopicQuality[] = [...per].map(([topic, c]) => ({
    topic,
    truePositives: c.tp,
    falsePositives: c.fp,
    falseNegatives: c.fn,
    precision: ratio(c.tp, c.tp + c.fp),
    recall: ratio(c.tp, c.tp + c.fn),
  }));
  const sum = (k: 'tp' | 'fp' | 'fn') => [...per.values()].reduce((n, c) => n + c[k], 0);
  return {
    topics,
    precision: ratio(sum('tp'), sum('tp') + sum('fp')),
    recall: ratio(sum('tp'), sum('tp') + sum('fn')),
    mistakes,
  };
}

export function renderQualityTable(r: ReturnType<typeof scoreClassifier>): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = r.topics.map((t) => `${t.topic.padEnd(14)} precision ${pct(t.precision).padStart(6)}  recall ${pct(t.recall).padStart(6)}  (tp ${t.truePositives}, fp ${t.falsePositives}, fn ${t.falseNegatives})`);
  return [...lines, `${'overall'.padEnd(14)} precision ${pct(r.precision).padStart(6)}  recall ${pct(r.recall).padStart(6)}`].join('\n');
}
