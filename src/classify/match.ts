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
  return words(text).map((w) => w.toLowerCase());
}

/** Words as written, so an explanation can quote the story ("Tokyo", not "tokyo"). */
function words(text: string): string[] {
  return text.normalize('NFKC').match(/[\p{L}\p{N}]+/gu) ?? [];
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

/** Position of the first occurrence of `needle` in `haystack`, or -1. */
function findSequence(haystack: string[], needle: string[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

interface FieldText {
  field: Field;
  folded: string[];
  original: string[];
}

/** Segments (one per category) are separated by a token no word can equal, so a phrase never spans two. */
function fieldText(field: Field, segments: string[]): FieldText {
  const original = segments.flatMap((seg, i) => (i === 0 ? words(seg) : ['\u0000', ...words(seg)]));
  return { field, original, folded: original.map((w) => w.toLowerCase()) };
}

/** Matches one story against compiled topics; parents of matched topics match too. */
export function matchStory(story: Pick<Story, 'title' | 'summary' | 'categories'>, compiled: readonly CompiledTopic[]): TopicMatch[] {
  const fields: FieldText[] = [
    fieldText('title', [story.title]),
    fieldText('summary', [story.summary]),
    fieldText('category', story.categories),
  ];
  const direct = new Map<string, TopicMatch>();
  for (const { topic, alternatives } of compiled) {
    let score = 0;
    const hits: { text: string; field: Field }[] = [];
    for (const alt of alternatives) {
      for (const f of fields) {
        const at = findSequence(f.folded, alt.tokens);
        if (at >= 0) {
          score += FIELD_WEIGHT[f.field];
          hits.push({ text: f.original.slice(at, at + alt.tokens.length).join(' '), field: f.field });
          break;
        }
      }
    }
    if (score > 0) {
      // Strongest evidence first: title hits, then categories, then summary.
      hits.sort((a, b) => FIELD_WEIGHT[b.field] - FIELD_WEIGHT[a.field]);
      const why = `Matched: ${hits.slice(0, 3).map((h) => `${h.text} in ${h.field}`).join(', ')}`;
      direct.set(topic.id, { topicId: topic.id, score, why });
    }
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
