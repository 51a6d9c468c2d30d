import type { Topic } from '../config/catalog.ts';
import type { Story, TopicMatch } from '../model.ts';

/**
 * Keyword matching for the walking skeleton: a topic query is an OR of terms and "quoted phrases",
 * matched as whole words, case-insensitively, in the title, summary and categories.
 */

type Field = 'title' | 'summary' | 'category';
const FIELD_WEIGHT: Record<Field, number> = { title: 3, summary: 1, category: 2 };

export interface CompiledTopic {
  topic: Topic;
  /** Each alternative as its token sequence, with the words as the reader wrote them. */
  alternatives: { tokens: string[]; label: string }[];
}

export function tokenize(text: string): string[] {
  return text.toLowerCase().normalize('NFKC').match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** Splits `a OR "b c" OR d` into its alternatives. */
export function parseOrQuery(query: string): { tokens: string[]; label: string }[] {
  const out: { tokens: string[]; label: string }[] = [];
  const re = /"([^"]+)"|(\S+)/g;
  for (const m of query.matchAll(re)) {
    const label = (m[1] ?? m[2] ?? '').trim();
    if (!m[1] && label.toUpperCase() === 'OR') continue;
    const tokens = tokenize(label);
    if (tokens.length > 0) out.push({ tokens, label });
  }
  return out;
}

export function compileTopics(topics: readonly Topic[]): CompiledTopic[] {
  return topics.map((topic) => ({ topic, alternatives: parseOrQuery(topic.query) }));
}

function containsSequence(haystack: string[], needle: string[]): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Matches one story against compiled topics; parents of matched topics match too. */
export function matchStory(story: Pick<Story, 'title' | 'summary' | 'categories'>, compiled: readonly CompiledTopic[]): TopicMatch[] {
  const fields: [Field, string[]][] = [
    ['title', tokenize(story.title)],
    ['summary', tokenize(story.summary)],
    ['category', story.categories.flatMap((c) => [...tokenize(c), '\u0000'])],
  ];
  const direct = new Map<string, TopicMatch>();
  for (const { topic, alternatives } of compiled) {
    let score = 0;
    const hits: string[] = [];
    for (const alt of alternatives) {
      for (const [field, tokens] of fields) {
        if (containsSequence(tokens, alt.tokens)) {
          score += FIELD_WEIGHT[field];
          hits.push(`${alt.label} in ${field}`);
          break;
        }
      }
    }
    if (score > 0) direct.set(topic.id, { topicId: topic.id, score, why: `Matched: ${hits.slice(0, 3).join(', ')}` });
  }
  const byId = new Map(compiled.map((c) => [c.topic.id, c.topic]));
  const all = new Map(direct);
  for (const m of direct.values()) {
    for (let parent = byId.get(m.topicId)?.parent; parent; parent = byId.get(parent)?.parent) {
      const existing = all.get(parent);
      if (!existing || existing.score < m.score) {
        all.set(parent, { topicId: parent, score: m.score, why: `${m.why} (via ${byId.get(m.topicId)?.name ?? m.topicId})` });
      }
    }
  }
  return [...all.values()].sort((a, b) => b.score - a.score || a.topicId.localeCompare(b.topicId));
}
