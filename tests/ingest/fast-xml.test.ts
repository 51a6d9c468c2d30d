import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/ingest/decode.ts';
import { parseFastXml } from '../../src/ingest/fast-xml.ts';
import { parseFeedBody } from '../../src/ingest/parse-feed.ts';
import { fixture, fixtureFiles } from '../helpers/http-fixtures.ts';

const files = fixtureFiles('feeds');

const outcome = (p: Promise<unknown>) => p.then((v) => JSON.stringify(v), (e: { code?: string; message: string }) => `error ${e.code}: ${e.message}`);

describe('the fast XML path gives exactly what the rss-parser path gives', () => {
  it.each(files)('%s', async (name) => {
    const bytes = fixture(`feeds/${name}`);
    expect(await outcome(parseFeedBody(bytes))).toBe(await outcome(parseFeedBody(bytes, { rssParserOnly: true })));
  });

  it('is taken for plain well-formed feeds', () => {
    for (const [name, format] of [['formats/rss20-full.xml', 'rss2.0'], ['formats/atom10.xml', 'atom1.0'], ['formats/rss10-rdf.xml', 'rss1.0'], ['formats/atom03.xml', 'atom0.3']] as const) {
      expect(parseFastXml(decodeBody(fixture(`feeds/${name}`)).text, format), name).not.toBeNull();
    }
  });

  it.each([
    ['a mis-nested tag', '<rss version="2.0"><channel><title>x</link></title></channel></rss>'],
    ['a truncated document', '<rss version="2.0"><channel><title>x</title><item><title>y'],
    ['an HTML entity', '<rss version="2.0"><channel><title>caf&eacute;</title></channel></rss>'],
    ['a bare ampersand', '<rss version="2.0"><channel><title>Q&A</title></channel></rss>'],
    ['markup inside a text field', '<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml"><div>x</div></content></entry></feed>'],
    ['a second root', '<rss version="2.0"><channel/></rss><rss version="2.0"><channel/></rss>'],
  ])('gives the document to rss-parser on %s', (_what, doc) => {
    expect(parseFastXml(doc, doc.startsWith('<feed') ? 'atom1.0' : 'rss2.0')).toBeNull();
  });

  // Hostile input must cost time in proportion to its size. Categories were de-duplicated by searching an
  // array, on both paths: 50,000 of them took 5-6 s, 100,000 about four times that. The test's timeout is
  // the bound, tens of times what a linear pass takes.
  it.each([
    ['RSS, fast path', false, (k: number) => `<category>c${k}</category>`, '<rss version="2.0"><channel><title>x</title><item><title>t</title>', '</item></channel></rss>'],
    ['RSS, rss-parser path', true, (k: number) => `<category>c${k}</category>`, '<rss version="2.0"><channel><title>x</title><item><title>t</title>', '</item></channel></rss>'],
    ['Atom, fast path', false, (k: number) => `<category term="c${k}"/>`, '<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title><entry><title>t</title>', '</entry></feed>'],
  ] as const)('an item with 100,000 categories (%s) is read in bounded time, each category once', async (_what, rssParserOnly, category, head, tail) => {
    const doc = head + Array.from({ length: 100_000 }, (_, k) => category(k % 90_000)).join('') + tail;
    const feed = await parseFeedBody(Buffer.from(doc), { rssParserOnly });
    expect(feed.items[0]!.categories).toHaveLength(90_000);
    expect(feed.items[0]!.categories.slice(0, 2)).toEqual(['c0', 'c1']);
  }, 10_000);
});
