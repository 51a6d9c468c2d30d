import { readFile } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CatalogError, loadTopics } from '../config/catalog.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import { normalizeItem } from '../ingest/normalize.ts';
import { parseFeedBody } from '../ingest/parse-feed.ts';
import { compileTopic, explainStory, TopicIndex } from './match.ts';
import { QueryError } from './query.ts';
import { compileCatalog } from './registry.ts';

export const CLASSIFY_USAGE = `Usage: herald classify FILE... [--json] [--topics FILE] [--query QUERY]

  Parses each RSS/Atom file as the poller would, classifies every story and prints, per story,
  its matched topics with score and reason (--json: one JSON line per story).

  --topics FILE   topic catalog to use (default: HERALD_TOPICS_FILE, config/topics.json)
  --query QUERY   classify against this one query instead (its topic id is "query")
  --json          one JSON object per line: {"file","title","link","topics":[{"id","score","why"}]}

  Exit status: 0 when every file was classified; 1 when a file could not be read or parsed
  (the others are still classified); 2 on a usage, catalog or query error.
`;

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  now: () => number;
}

/** `herald classify`: returns the exit status. */
export async function runClassifyCommand(argv: string[], io: CliIo): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: { json: { type: 'boolean' }, topics: { type: 'string' }, query: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    io.err(`herald classify: ${(err as Error).message}\n\n${CLASSIFY_USAGE}`);
    return 2;
  }
  if (args.values.help) {
    io.out(CLASSIFY_USAGE);
    return 0;
  }
  if (args.positionals.length === 0) {
    io.err(`herald classify: name at least one feed file\n\n${CLASSIFY_USAGE}`);
    return 2;
  }

  let index: TopicIndex;
  let storyLimits;
  try {
    const config = loadConfig(io.env);
    storyLimits = { maxFieldChars: config.storyMaxChars };
    if (args.values.query !== undefined) {
      index = new TopicIndex([compileTopic({ id: 'query', name: 'Query', query: args.values.query }, { maxChars: config.queryMaxChars, maxTerms: config.queryMaxTerms })]);
    } else {
      index = new TopicIndex(compileCatalog(loadTopics(args.values.topics ?? config.topicsFile)));
    }
  } catch (err) {
    if (err instanceof QueryError) {
      io.err(`herald classify: invalid --query: ${err.message}\n  ${args.values.query}\n  ${' '.repeat(err.position)}^ expected ${err.expected}\n`);
      return 2;
    }
    if (err instanceof CatalogError || err instanceof ConfigError || err instanceof Error) {
      io.err(`herald classify: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  let status = 0;
  for (const file of args.positionals) {
    let body: Buffer;
    let feed;
    try {
      body = await readFile(file);
      feed = await parseFeedBody(body);
    } catch (err) {
      io.err(`herald classify: ${file}: ${(err as Error).message}\n`);
      status = 1;
      continue;
    }
    // The file name stands for the feed id, so source:<name> scopes work as they do for configured feeds.
    const feedId = basename(file, extname(file)).toLowerCase();
    const base = pathToFileURL(resolve(file)).href;
    for (const item of feed.items) {
      const n = normalizeItem(item, feedId, base, io.now());
      if ('skip' in n) {
        io.err(`herald classify: ${file}: skipped: ${n.skip}\n`);
        continue;
      }
      const matches = explainStory(n.story, index, storyLimits);
      const topics = matches.map((m) => ({ id: m.topicId, score: m.score, why: m.why }));
      if (args.values.json) {
        io.out(`${JSON.stringify({ file, title: n.story.title, link: n.story.url, topics })}\n`);
      } else {
        io.out(`${n.story.title}\n  ${n.story.url}\n${topics.length === 0 ? '  (no topic)\n' : topics.map((t) => `  ${t.id} (${t.score}): ${t.why}\n`).join('')}`);
      }
    }
  }
  return status;
}
