import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createRedis, isClusterTarget, type RedisClient } from '../store/redis.ts';
import { FeedSchema } from '../config/catalog.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import { systemClock } from '../model.ts';
import { createFeedStore } from '../store/feeds.ts';
import { checkLiteralHost } from './address-guard.ts';
import { describeFeedHealth, type FeedHealth } from './health.ts';
import { canonicalUrl, itemDate, toPlainText } from './normalize.ts';
import { parseFeedBody, ParseError } from './parse-feed.ts';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
}

export const FEEDS_USAGE = `Usage: herald feeds <command>

  check [--json] PATH...   parse feed files (or every file in folders) exactly as the poller parses a fetched body
  add URL [--id ID] [--title TITLE]
                           add a feed to poll
  list [--json]            every feed with its health: status, failures, last error, next check
  remove ID                stop polling a feed and forget its state
`;

export type CheckLine =
  | { file: string; ok: true; format: string; title: string; items: number; first: { title: string; link: string | null; published: string | null } | null }
  | { file: string; ok: false; error: { code: string; message: string } };

function filesUnder(path: string): string[] {
  const st = statSync(path);
  if (!st.isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((d) => !d.name.startsWith('.'))
    .sort((a, b) => a.name.localeCompare(b.name))
    // A symlink is checked as the file it names (checkFile follows it): skipped, a linked feed went missing from the
    // report without a word, and a dangling one was never reported. Not walked into when it names a folder (a
    // cycle would never end): it shows as not-a-file.
    .flatMap((d) => (d.isDirectory() ? filesUnder(join(path, d.name)) : d.isFile() || d.isSymbolicLink() ? [join(path, d.name)] : []));
}

/** One file's bytes through the poller's parser; no network, and nothing thrown. */
export async function checkFile(file: string, maxBytes: number): Promise<CheckLine> {
  let bytes: Buffer;
  try {
    const st = statSync(file);
    // Reading a named pipe or a device would block (or never end) instead of checking a feed.
    if (!st.isFile()) return { file, ok: false, error: { code: 'not-a-file', message: 'not a regular file (a pipe, socket or device): feeds check reads files' } };
    if (st.size > maxBytes) return { file, ok: false, error: { code: 'too-large', message: `file exceeds the ${maxBytes}-byte limit the poller applies` } };
    bytes = readFileSync(file);
  } catch (err) {
    return { file, ok: false, error: { code: 'unreadable', message: (err as Error).message } };
  }
  try {
    const feed = await parseFeedBody(bytes, { maxBytes });
    const item = feed.items[0];
    const base = feed.link && /^https?:/i.test(feed.link) ? feed.link : undefined;
    return {
      file,
      ok: true,
      format: feed.format,
      title: toPlainText(feed.title, 300),
      items: feed.items.length,
      first: item
        ? {
            // As the poller does: an item without a title is shown by the start of its summary.
            title: toPlainText(item.title, 300) || toPlainText(item.summaryHtml, 120),
            link: item.link ? checkedLink(item.link, base) : null,
            published: ((t) => (t === null ? null : new Date(t).toISOString()))(itemDate(item)),
          }
        : null,
    };
  } catch (err) {
    if (err instanceof ParseError) return { file, ok: false, error: { code: err.code, message: err.message } };
    return { file, ok: false, error: { code: 'internal', message: (err as Error).message } };
  }
}

/**
 * The item's link as the poller would keep it (canonical http or https), like the console's probe. A link with
 * another scheme (javascript:, data:) is none; a relative one in a file without a channel link has no base to
 * resolve against here, while the poller has the feed's URL: it is shown as published.
 */
const checkedLink = (link: string, base: string | undefined): string | null =>
  canonicalUrl(link, base) ?? (/^\s*[a-z][a-z0-9+.-]*:/i.test(link) ? null : link);

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

async function check(args: string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  const unknown = args.filter((a) => a.startsWith('-') && a !== '--json');
  const paths = args.filter((a) => !a.startsWith('-'));
  if (unknown.length > 0 || paths.length === 0) {
    io.err(unknown.length ? `herald feeds check: unknown option ${unknown[0]}\n${FEEDS_USAGE}` : `herald feeds check: name at least one file or folder\n${FEEDS_USAGE}`);
    return 2;
  }
  let maxBytes = 5 * 1024 * 1024;
  try {
    maxBytes = loadConfig(io.env).fetchMaxBytes;
  } catch {
    // A config problem elsewhere (SMTP, VAPID...) does not stop an offline check; the default cap applies.
  }
  const files: string[] = [];
  for (const p of paths) {
    try {
      files.push(...filesUnder(p));
    } catch (err) {
      io.err(`herald feeds check: cannot read ${p}: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const rows: string[][] = [['FILE', 'RESULT', 'ITEMS', 'TITLE / ERROR']];
  let ok = 0;
  for (const f of files) {
    const line = await checkFile(f, maxBytes);
    if (line.ok) ok++;
    if (json) io.out(`${JSON.stringify(line)}\n`);
    else rows.push(line.ok ? [f, line.format, String(line.items), clip(line.title, 60)] : [f, `error: ${line.error.code}`, '-', clip(line.error.message, 100)]);
  }
  if (!json) io.out(`${table(rows)}\n\n${ok} of ${files.length} files parsed as feeds\n`);
  return 0;
}

async function withFeedStore<T>(io: CliIo, fn: (store: ReturnType<typeof createFeedStore>, allowPrivate: boolean) => Promise<T>): Promise<T | number> {
  let config;
  try {
    config = loadConfig(io.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const url = config.redisClusterNodes ?? config.redisUrl ?? 'redis://127.0.0.1:6379';
  const redis: RedisClient = isClusterTarget(url)
    ? createRedis(url, { name: 'herald-feeds' })
    : new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 3000 });
  redis.on('error', () => undefined);
  try {
    // A cluster client connects on creation; its first PING shows whether the cluster answers.
    await (redis instanceof Redis ? redis.connect() : redis.ping());
  } catch (err) {
    io.err(`herald feeds: Redis does not answer at ${url} (${(err as Error).message}). Start Herald's Redis or set REDIS_URL.\n`);
    redis.disconnect();
    return 1;
  }
  try {
    return await fn(createFeedStore(redis, config.redisPrefix), config.allowPrivateFeeds);
  } finally {
    await redis.quit();
  }
}

/** A readable, unique id from the URL: host without "www." and the path's words. */
export function feedIdFor(url: string, taken: ReadonlySet<string>): string {
  const u = new URL(url);
  const base = `${u.hostname.replace(/^www\./, '')}${u.pathname}`
    .toLowerCase()
    .replace(/\.(xml|rss|atom|json)$/, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 56) || 'feed';
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
  return id;
}

async function add(args: string[], io: CliIo): Promise<number> {
  const url = args.find((a) => !a.startsWith('--') && args[args.indexOf(a) - 1] !== '--id' && args[args.indexOf(a) - 1] !== '--title');
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (!url) {
    io.err(`herald feeds add: give the feed URL\n${FEEDS_USAGE}`);
    return 2;
  }
  const result = await withFeedStore(io, async (store, allowPrivate) => {
    let parsedUrl: URL;
    try {
      parsedUrl = new URL(url);
      if (parsedUrl.protocol !== 'http:' && parsedUrl.protocol !== 'https:') throw new Error('only http and https feeds can be polled');
      checkLiteralHost(parsedUrl.hostname, allowPrivate);
    } catch (err) {
      io.err(`herald feeds add: ${url} cannot be polled: ${(err as Error).message}\n`);
      return 2;
    }
    const existing = await store.list();
    const same = existing.find((f) => f.url === parsedUrl.toString());
    if (same) {
      io.err(`herald feeds add: ${url} is already polled as "${same.id}"\n`);
      return 1;
    }
    const id = opt('--id') ?? feedIdFor(parsedUrl.toString(), new Set(existing.map((f) => f.id)));
    const checked = FeedSchema.safeParse({ id, url: parsedUrl.toString(), ...(opt('--title') ? { title: opt('--title') } : {}) });
    if (!checked.success) {
      io.err(`herald feeds add: ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
      return 2;
    }
    if (!(await store.add(checked.data, systemClock.now()))) {
      io.err(`herald feeds add: the id "${id}" is taken; choose another with --id\n`);
      return 1;
    }
    io.out(`added ${id} ${checked.data.url} (first check at the next poll tick)\n`);
    return 0;
  });
  return result;
}

export function renderHealthTable(rows: FeedHealth[]): string {
  if (rows.length === 0) return 'no feeds\n';
  const ago = (iso: string | null) => iso ?? '-';
  return `${table([
    ['ID', 'STATUS', 'FAILS', 'LAST SUCCESS', 'NEXT CHECK', 'URL', 'LAST ERROR'],
    ...rows.map((h) => [
      h.id, h.status, String(h.consecutiveFailures), ago(h.lastSuccessAt), ago(h.nextCheckAt), h.url,
      h.disabledReason ?? (h.lastError ? `${h.lastError.code}: ${clip(h.lastError.message, 100)}` : ''),
    ]),
  ])}\n`;
}

async function list(args: string[], io: CliIo): Promise<number> {
  return withFeedStore(io, async (store) => {
    const now = systemClock.now();
    const feeds = await store.list();
    const rows = await Promise.all(feeds.map(async (f) => describeFeedHealth(f, await store.state(f.id), now)));
    io.out(args.includes('--json') ? `${JSON.stringify({ feeds: rows })}\n` : renderHealthTable(rows));
    return 0;
  });
}

async function remove(args: string[], io: CliIo): Promise<number> {
  const id = args[0];
  if (!id) {
    io.err(`herald feeds remove: give the feed id (see herald feeds list)\n${FEEDS_USAGE}`);
    return 2;
  }
  return withFeedStore(io, async (store) => {
    if (!(await store.remove(id))) {
      io.err(`herald feeds remove: no feed "${id}"\n`);
      return 1;
    }
    io.out(`removed ${id} (a feed listed in HERALD_FEEDS_FILE comes back on the next start: delete it there too)\n`);
    return 0;
  });
}

export async function feedsCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'check':
      return check(rest, io);
    case 'add':
      return add(rest, io);
    case 'list':
      return list(rest, io);
    case 'remove':
      return remove(rest, io);
    default:
      io.err(sub ? `herald feeds: unknown command "${sub}"\n${FEEDS_USAGE}` : FEEDS_USAGE);
      return 2;
  }
}
