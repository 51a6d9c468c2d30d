import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { feedIdFor, feedsCommand, type CheckLine } from '../../src/ingest/cli.ts';
import { createFeedStore } from '../../src/store/feeds.ts';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../helpers/redis.ts';

const fixtures = fileURLToPath(new URL('../fixtures/feeds/', import.meta.url));

async function run(args: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const code = await feedsCommand(args, { out: (t) => void (out += t), err: (t) => void (err += t), env: { REDIS_URL: TEST_REDIS_URL, ...env } });
  return { code, out, err };
}

describe('herald feeds check', () => {
  it('--json: one line per file, feeds parsed with their titles, the rest refused with a specific code; exit 0', async () => {
    const { code, out } = await run(['check', '--json', `${fixtures}formats`, `${fixtures}hostile/billion-laughs.xml`, `${fixtures}hostile/html-with-alternate.html`]);
    expect(code).toBe(0);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as CheckLine);
    expect(lines).toHaveLength(13);
    const byName = new Map(lines.map((l) => [l.file.split('/').pop()!, l]));
    expect(byName.get('rss20-full.xml')).toEqual({
      file: `${fixtures}formats/rss20-full.xml`, ok: true, format: 'rss2.0', title: 'Herald test: Full RSS 2.0', items: 4,
      first: { title: 'Council approves new budget & tax plan', link: 'https://rss20.example.test/news/budget?id=7', published: '2027-01-14T08:15:00.000Z' },
    });
    expect(byName.get('feed11.json')).toMatchObject({ ok: true, format: 'json1.1', first: { title: 'El puerto reabre tras la tormenta' } });
    expect(byName.get('billion-laughs.xml')).toMatchObject({ ok: false, error: { code: 'xml-entities' } });
    expect(byName.get('html-with-alternate.html')).toMatchObject({ ok: false, error: { code: 'html-not-feed' } });
    expect(Object.keys(byName.get('billion-laughs.xml')!)).toEqual(['file', 'ok', 'error']);
  });

  it('every fixture file: parsed (non-empty title, no replacement characters) or refused with a code', async () => {
    const { out } = await run(['check', '--json', fixtures]);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as CheckLine);
    expect(lines.length).toBeGreaterThan(35);
    for (const l of lines) {
      if (l.ok) expect(l.title, l.file).not.toMatch(/\uFFFD|Ã|â€/);
      else expect(l.error.code, l.file).toMatch(/^[a-z-]+$/);
    }
  });

  it("the first item's link is one the poller would keep: a javascript: link shows as none, a relative one without a base as published", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-check-'));
    const feed = (channelLink: string, itemLink: string) =>
      `<?xml version="1.0"?><rss version="2.0"><channel><title>Links</title>${channelLink}<item><title>One</title><link>${itemLink}</link></item></channel></rss>`;
    writeFileSync(join(dir, 'a-script.xml'), feed('<link>https://links.example.test/</link>', 'javascript:void(0)'));
    writeFileSync(join(dir, 'b-data.xml'), feed('', 'data:text/html,hi'));
    writeFileSync(join(dir, 'c-relative.xml'), feed('', '/news/1'));
    writeFileSync(join(dir, 'd-resolved.xml'), feed('<link>https://links.example.test/</link>', '/news/1#top'));
    try {
      const { out } = await run(['check', '--json', dir]);
      const links = out.trim().split('\n').map((l) => (JSON.parse(l) as CheckLine & { ok: true }).first?.link);
      expect(links).toEqual([null, null, '/news/1', 'https://links.example.test/news/1']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without --json: a readable table and a count', async () => {
    const { code, out } = await run(['check', `${fixtures}encodings/koi8-r.xml`, `${fixtures}hostile/truncated.xml`]);
    expect(code).toBe(0);
    expect(out).toMatch(/^FILE\s+RESULT\s+ITEMS\s+TITLE \/ ERROR/);
    expect(out).toContain('Новости');
    expect(out).toContain('error: malformed-xml');
    expect(out).toContain('1 of 2 files parsed as feeds');
  });

  it('usage errors exit 2: no path, an unknown option, a path that does not exist', async () => {
    expect((await run(['check'])).code).toBe(2);
    expect((await run(['check', '--xml', fixtures])).code).toBe(2);
    const missing = await run(['check', `${fixtures}does-not-exist`]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('cannot read');
    expect((await run(['frobnicate'])).code).toBe(2);
  });

  it('in a folder, a symlinked file is checked and a dangling symlink is reported, not silently left out', async () => {
    const { symlinkSync } = await import('node:fs');
    const dir = mkdtempSync(join(tmpdir(), 'herald-links-'));
    symlinkSync(`${fixtures}formats/rss20-full.xml`, join(dir, 'a-linked.xml'));
    symlinkSync(join(dir, 'gone.xml'), join(dir, 'b-dangling.xml'));
    try {
      const { code, out } = await run(['check', '--json', dir]);
      expect(code).toBe(0);
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as CheckLine);
      expect(lines).toMatchObject([
        { file: join(dir, 'a-linked.xml'), ok: true, format: 'rss2.0', items: 4 },
        { file: join(dir, 'b-dangling.xml'), ok: false, error: { code: 'unreadable' } },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a named pipe given as a path is refused as not-a-file, not read (which blocked for ever)', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const fifo = `${mkdtempSync(`${tmpdir()}/herald-fifo-`)}/feed.xml`;
    execFileSync('mkfifo', [fifo]);
    const { code, out } = await run(['check', '--json', fifo]);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ file: fifo, ok: false, error: { code: 'not-a-file' } });
  });
});

describe('herald feeds add | list | remove', () => {
  const prefix = uniquePrefix('feeds-cli');
  const env = { HERALD_REDIS_PREFIX: prefix };
  const redis = testRedis();
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });
  beforeAll(() => undefined);

  it('adds a feed with a readable id, refuses duplicates and private addresses, lists health, removes', async () => {
    const added = await run(['add', 'https://www.example.org/news/world.xml'], env);
    expect(added).toMatchObject({ code: 0 });
    expect(added.out).toContain('added example-org-news-world');
    expect((await run(['add', 'https://www.example.org/news/world.xml'], env)).code).toBe(1);
    const priv = await run(['add', 'http://169.254.169.254/latest'], env);
    expect(priv.code).toBe(2);
    expect(priv.err).toContain('metadata');
    expect((await run(['add', 'ftp://example.org/feed'], env)).code).toBe(2);
    expect((await run(['add', 'https://other.example.org/rss', '--id', 'other', '--title', 'Other'], env)).code).toBe(0);

    // A failure recorded by the poller shows in the list.
    await createFeedStore(redis, prefix).recordFailure('other', { code: 'http-status', message: 'HTTP 500 from https://other.example.org/rss', status: 500 }, Date.now());
    const list = await run(['list'], env);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/example-org-news-world\s+new\s+0/);
    expect(list.out).toMatch(/other\s+failing\s+1 .*http-status: HTTP 500/);
    const json = JSON.parse((await run(['list', '--json'], env)).out) as { feeds: { id: string; status: string; lastError: { code: string } | null }[] };
    expect(json.feeds.find((f) => f.id === 'other')).toMatchObject({ status: 'failing', lastError: { code: 'http-status' } });

    expect((await run(['remove', 'other'], env)).code).toBe(0);
    expect((await run(['remove', 'other'], env)).code).toBe(1);
    expect((await run(['list'], env)).out).not.toContain('other.example.org');
  });

  it('Redis not reachable: a clear message, exit 1', async () => {
    const r = await run(['list'], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(r.code).toBe(1);
    expect(r.err).toContain('Redis does not answer at redis://127.0.0.1:1');
  });

  it('feed ids from URLs', () => {
    expect(feedIdFor('https://www.thehindu.com/news/national/feeder/default.rss', new Set())).toBe('thehindu-com-news-national-feeder-default');
    expect(feedIdFor('https://a.test/', new Set(['a-test']))).toBe('a-test-2');
  });
});

describe('the herald command', () => {
  it('exits 0 after checking files, 2 on a usage error', async () => {
    const { spawnSync } = await import('node:child_process');
    const bin = fileURLToPath(new URL('../../src/cli/herald.mjs', import.meta.url));
    const ok = spawnSync(process.execPath, [bin, 'feeds', 'check', '--json', `${fixtures}hostile/truncated.xml`], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: false, error: { code: 'malformed-xml' } });
    const usage = spawnSync(process.execPath, [bin, 'feeds', 'check'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('Usage: herald feeds');
  }, 30_000);

  it('stdout closed early (| head -1): stops quietly, exit 0, no EPIPE stack trace', async () => {
    const { spawn } = await import('node:child_process');
    const bin = fileURLToPath(new URL('../../src/cli/herald.mjs', import.meta.url));
    // Enough lines that writes go on after the reader has gone.
    const child = spawn(process.execPath, [bin, 'feeds', 'check', '--json', fixtures, fixtures, fixtures, fixtures], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => void (stderr += c.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  }, 30_000);
});
