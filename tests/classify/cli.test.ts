import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** The real command, as an operator runs it. */
function herald(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', ['src/cli/herald.mjs', ...args], { env: { ...process.env, LOG_LEVEL: 'silent' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const lines = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; title: string; link: string; topics: { id: string; score: number; why: string }[] });

describe('herald classify', () => {
  it('prints one JSON line per story with its matched topics, score and why', async () => {
    const r = await herald(['classify', 'tests/fixtures/feeds/india-japan.xml', 'tests/fixtures/classify/mixed-wire.xml', '--json']);
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out.map((o) => o.title)).toEqual([
      'India and Japan foreign ministers hold talks in Tokyo on Quad and UN reform',
      'Kerala beat Karnataka by six wickets in Ranji Trophy thriller',
      'Mumbai Indians edge Chennai Super Kings in last-ball IPL finish',
      'City council approves new bike lanes on main road',
      '東京で日印外相会談、クアッドを協議',
    ]);
    const [seed, ranji, ipl, bikes, japanese] = out;
    expect(seed!.file).toBe('tests/fixtures/feeds/india-japan.xml');
    expect(seed!.link).toBe('https://wire.example.test/world/india-japan-foreign-ministers-tokyo?utm_source=rss');
    expect(seed!.topics.map((t) => t.id).sort()).toEqual(['india', 'japan', 'politics', 'world']);
    expect(seed!.topics.find((t) => t.id === 'japan')).toEqual({ id: 'japan', score: 7, why: 'Matched: Japan in title, Tokyo in title, Japanese in summary' });
    expect(ranji!.topics.map((t) => t.id).sort()).toEqual(['cricket', 'india', 'sports']);
    expect(ipl!.topics.map((t) => t.id).sort()).toEqual(['cricket', 'india', 'sports']);
    // Japan, Tokyo and cricket appear only in tags, attributes and URLs of the summary's HTML.
    expect(bikes!.topics).toEqual([]);
    expect(japanese!.topics.map((t) => t.id)).toContain('japan');
  });

  it('with --query classifies against that one query, id "query"', async () => {
    const r = await herald(['classify', 'tests/fixtures/feeds/india-japan.xml', '--json', '--query', '"Jaishankar" AND (Japan OR Quad)']);
    expect(r.code).toBe(0);
    const [seed, ranji] = lines(r.stdout);
    expect(seed!.topics).toEqual([{ id: 'query', score: 7, why: 'Matched: Japan in title, Quad in title, Jaishankar in summary' }]);
    expect(ranji!.topics).toEqual([]);
  });

  it('exits 2 with the position and what was expected on a malformed query, printing no story', async () => {
    const r = await herald(['classify', 'tests/fixtures/feeds/india-japan.xml', '--json', '--query', 'Jaishankar AND (Japan OR']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('at character 25: expected a term');
  });

  it('exits 2 on a pure negation, saying why', async () => {
    const r = await herald(['classify', 'tests/fixtures/feeds/india-japan.xml', '--query', 'NOT cricket']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/contain none of its words/);
  });

  it('exits 2 on usage errors and on a bad topics file', async () => {
    expect((await herald(['classify'])).code).toBe(2);
    const unknown = await herald(['classify', 'x.xml', '--frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--frobnicate');
    const topics = await herald(['classify', 'tests/fixtures/feeds/india-japan.xml', '--topics', 'tests/fixtures/classify/broken.xml']);
    expect(topics.code).toBe(2);
    expect(topics.stderr).toContain('not valid JSON');
  });

  it('reports an unreadable or malformed feed file, classifies the others and exits 1', async () => {
    const r = await herald(['classify', 'tests/fixtures/classify/broken.xml', 'tests/fixtures/classify/missing.xml', 'tests/fixtures/feeds/india-japan.xml', '--json']);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toHaveLength(2);
    expect(r.stderr).toContain('broken.xml: the body is neither XML nor JSON');
    expect(r.stderr).toContain('missing.xml: ENOENT');
  });
});
