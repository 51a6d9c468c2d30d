import { readFileSync } from 'node:fs';
import { z } from 'zod';

const idPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;

export const TopicSchema = z.object({
  id: z.string().regex(idPattern, 'lower-case letters, digits and "-"'),
  name: z.string().min(1).max(80),
  group: z.string().min(1).max(40),
  description: z.string().max(300).default(''),
  parent: z.string().regex(idPattern).optional(),
  // Catalog queries list many aliases (places, people, organisations): longer than a reader's own alert.
  query: z.string().min(1).max(6000),
  /** Matches scoring below this are dropped: broad topics ask for more than one passing mention. */
  minScore: z.number().positive().max(100).optional(),
});
export type Topic = z.infer<typeof TopicSchema>;

export const FeedSchema = z.object({
  id: z.string().regex(idPattern, 'lower-case letters, digits and "-"'),
  url: z.url({ protocol: /^https?$/ }),
  title: z.string().max(200).optional(),
});
export type FeedConfig = z.infer<typeof FeedSchema>;

const TopicsFile = z.object({ topics: z.array(TopicSchema).min(1) });
const FeedsFile = z.object({ feeds: z.array(FeedSchema) });

export class CatalogError extends Error {
  override name = 'CatalogError';
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CatalogError(`${what} file ${path} cannot be read: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CatalogError(`${what} file ${path} is not valid JSON: ${(err as Error).message}`);
  }
}

function describeIssues(path: string, error: z.ZodError): string {
  return error.issues.map((i) => `${path}: ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n');
}

function assertUniqueIds(path: string, items: { id: string }[]): void {
  const seen = new Set<string>();
  for (const { id } of items) {
    if (seen.has(id)) throw new CatalogError(`${path}: id "${id}" appears twice`);
    seen.add(id);
  }
}

export function parseTopics(value: unknown, path = 'topics'): readonly Topic[] {
  const parsed = TopicsFile.safeParse(value);
  if (!parsed.success) throw new CatalogError(describeIssues(path, parsed.error));
  const topics = parsed.data.topics;
  assertUniqueIds(path, topics);
  const ids = new Set(topics.map((t) => t.id));
  for (const t of topics) {
    if (t.parent && !ids.has(t.parent)) {
      throw new CatalogError(`${path}: topic "${t.id}" names parent "${t.parent}", which is not in the catalog`);
    }
  }
  return Object.freeze(topics.map((t) => Object.freeze(t)));
}

export function parseFeeds(value: unknown, path = 'feeds'): readonly FeedConfig[] {
  const parsed = FeedsFile.safeParse(value);
  if (!parsed.success) throw new CatalogError(describeIssues(path, parsed.error));
  assertUniqueIds(path, parsed.data.feeds);
  return Object.freeze(parsed.data.feeds.map((f) => Object.freeze(f)));
}

export const loadTopics = (path: string) => parseTopics(readJson(path, 'Topic catalog'), path);
export const loadFeeds = (path: string) => parseFeeds(readJson(path, 'Feed list'), path);
