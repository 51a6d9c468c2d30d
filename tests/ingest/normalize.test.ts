import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalUrl, identifyItem, normalizeItem, parseFeedDate, toPlainText } from '../../src/ingest/normalize.ts';
import type { ParsedItem } from '../../src/ingest/parse-feed.ts';

const NOW = Date.parse('2027-01-15T00:00:00Z');
const item = (over: Partial<ParsedItem>): ParsedItem => ({
  guid: null, link: null, title: '', summaryHtml: '', categories: [], published: null, updated: null, author: null, language: null, image: null, ...over,
});

describe('toPlainText', () => {
  it.each([
    ['<p>The council <b>approved</b> the budget.</p><p>Taxes rise.</p>', 'The council approved the budget. Taxes rise.'],
    ['Caf&eacute; &amp; bar &#8212; &#x2019;ok&#x2019; &nbsp;now', 'Café & bar — ’ok’ now'],
    ['<script>alert("x")</script><style>p{}</style>Visible<noscript>hidden</noscript>', 'Visible'],
    ['  lots\n\n of \t whitespace  ', 'lots of whitespace'],
    ['line<br>break<br/>and<li>list</li>', 'line break and list'],
    ['a < b and c > d', 'a < b and c > d'],
    ['<img src=x onerror=alert(1)>caption', 'caption'],
    ['<!-- comment -->text<![CDATA[x]]>', 'text'],
  ])('%j → %j', (html, text) => {
    expect(toPlainText(html)).toBe(text);
  });

  // Text with only single spaces skips the collapsing replace, and block boundaries add no second space: every
  // mix of spaces, other whitespace, zero-width spaces, entities and block tags must still come out collapsed.
  it('collapses every whitespace mix to single spaces, with or without the fast path', () => {
    const pieces = [' ', '  ', '\n', '\t', '\u00a0', '\u200b', '&nbsp;', '&#32;', '&#10;', '<p>', '</p>', '<br>', '<b>', 'word', 'x'];
    let seed = 7;
    const pick = () => pieces[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % pieces.length]!;
    for (let n = 0; n < 2000; n++) {
      const html = Array.from({ length: 1 + (n % 12) }, pick).join('');
      const out = toPlainText(html);
      expect(out, JSON.stringify(html)).not.toMatch(/[\s\u00a0\u200b]{2}|^[\s\u200b]|[\s\u200b]$|[^\S ]|\u200b/);
      // Nothing but whitespace is lost or added: the words are the same, in order.
      expect(out.split(' ').filter(Boolean).join('|'), JSON.stringify(html)).toBe(html.replace(/<b>/g, '').replace(/<[^>]*>/g, ' ').replace(/&nbsp;|&#32;|&#10;/g, ' ').split(/[\s\u00a0\u200b]+/).filter(Boolean).join('|'));
    }
  });
});

describe('toPlainText length limit', () => {
  it('never ends in half of a surrogate pair', () => {
    // 'a' then emoji (two UTF-16 units each): a 300-unit cut falls inside the 150th emoji.
    for (const text of ['a' + '😀'.repeat(200), '<b>a</b>' + '😀'.repeat(200)]) {
      const out = toPlainText(text, 300);
      expect(out).toBe('a' + '😀'.repeat(149));
      expect(/[\ud800-\udbff]$/.test(out)).toBe(false);
    }
  });
});

describe('canonicalUrl', () => {
  it.each([
    ['HTTPS://Example.TEST:443/Path?b=2&a=1#frag', 'https://example.test/Path?b=2&a=1'],
    ['http://example.test:80/x', 'http://example.test/x'],
    ['http://example.test:8080/x', 'http://example.test:8080/x'],
    ['https://example.test/a?utm_source=rss&utm_medium=feed&id=7&fbclid=1&gclid=2', 'https://example.test/a?id=7'],
    ['https://example.test/a?utm_campaign=x', 'https://example.test/a'],
    // A hashbang names the article (before, every article of such a site had one canonical URL); a plain fragment does not.
    ['https://example.test/#!/news/123?utm_source=rss', 'https://example.test/#!/news/123?utm_source=rss'],
    ['https://example.test/news/123#comments', 'https://example.test/news/123'],
    // The parameters that stay are left as published: deleting through URLSearchParams re-encoded them all.
    ['https://example.test/a?ids=1,2&utm_source=rss', 'https://example.test/a?ids=1,2'],
    ['https://example.test/search?q=a%20b&fbclid=x&path=/x/y&v=~1', 'https://example.test/search?q=a%20b&path=/x/y&v=~1'],
    ['https://example.test/a?amp&utm_medium=feed', 'https://example.test/a?amp'],
    ['/relative/path', 'https://base.example.test/relative/path'],
    ['javascript:alert(1)', null],
    ['mailto:a@example.test', null],
    ['http://', null],
  ])('%s → %s', (raw, want) => {
    expect(canonicalUrl(raw, 'https://base.example.test/feed.xml')).toBe(want);
  });
});

describe('parseFeedDate (UTC, with fallbacks)', () => {
  it.each([
    ['Thu, 14 Jan 2027 09:15:00 +0100', '2027-01-14T08:15:00.000Z'],
    ['Thu, 14 Jan 2027 09:15:00 GMT', '2027-01-14T09:15:00.000Z'],
    ['Thu, 14 Jan 2027 09:15:00 EST', '2027-01-14T14:15:00.000Z'],
    ['14 Jan 2027 09:15 CET', '2027-01-14T08:15:00.000Z'],
    // Zone names publishers print beyond RFC 822's: before, these items were dated when first seen.
    ['Do, 14 Jan 2027 09:15:00 MEZ', '2027-01-14T08:15:00.000Z'],
    ['Mi, 14 Jul 2027 09:15:00 MESZ', '2027-07-14T07:15:00.000Z'],
    ['Thu, 14 Jan 2027 09:15:00 NZDT', '2027-01-13T20:15:00.000Z'],
    ['Thu, 14 Jan 2027 09:15:00 AKST', '2027-01-14T18:15:00.000Z'],
    ['Thu, 14 Jan 2027 09:15:00', '2027-01-14T09:15:00.000Z'],
    ['Seg, 24 Set 2018 19:42:40 -0300', '2018-09-24T22:42:40.000Z'],
    ['Do, 14 Mär 2019 10:00:00 +0100', '2019-03-14T09:00:00.000Z'],
    ['03 Apr 02 1500 GMT', '2002-04-03T15:00:00.000Z'],
    // An offset of hours alone: PHP's "T" prints it for zones without an abbreviation (Sao Paulo, Yekaterinburg).
    // Before, it was dropped and the time read as UTC, hours off.
    ['Mon, 24 Sep 2018 19:42:40 -03', '2018-09-24T22:42:40.000Z'],
    ['Thu, 14 Jan 2027 09:15:00 +05', '2027-01-14T04:15:00.000Z'],
    // .NET's DateTime.MinValue, printed by feeds for "no date": the year 1, not 2001.
    ['Mon, 01 Jan 0001 00:00:00 GMT', null],
    ['Sat, 01 Jan 0011 00:00:00 GMT', null],
    ['2027-01-14T09:40:00Z', '2027-01-14T09:40:00.000Z'],
    ['2027-01-14T09:40:00+05:30', '2027-01-14T04:10:00.000Z'],
    ['2027-01-14 09:40:00', '2027-01-14T09:40:00.000Z'],
    ['2022-09-03 09:37:11+03:00', '2022-09-03T06:37:11.000Z'],
    ['2027-01-14', '2027-01-14T00:00:00.000Z'],
    ['not a date at all', null],
    ['2027-02-30T99:99:99Z', null],
    // Days and hours that do not exist are nonsense, not the next month or day.
    ['2027-02-29T10:00:00Z', null],
    ['2028-02-29T10:00:00Z', '2028-02-29T10:00:00.000Z'],
    ['Thu, 31 Jun 2027 09:15:00 GMT', null],
    ['Thu, 14 Jan 2027 25:15:00 GMT', null],
    ['Tue, 29 Feb 2028 09:15:00 GMT', '2028-02-29T09:15:00.000Z'],
    ['01/02/03', null],
    ['', null],
  ])('%j → %s', (raw, iso) => {
    const t = parseFeedDate(raw);
    expect(t === null ? null : new Date(t).toISOString()).toBe(iso);
  });
});

describe('parseFeedDate on a server whose local zone is not UTC', () => {
  // Node reads TZ again when it changes; this file runs in its own process (pool: forks).
  const saved = process.env.TZ;
  beforeAll(() => void (process.env.TZ = 'America/New_York'));
  afterAll(() => void (saved === undefined ? delete process.env.TZ : (process.env.TZ = saved)));

  it.each([
    // Formats only Date.parse reads: without a zone they are UTC, as every other zone-less feed date.
    ['June 10, 2003 04:00:00', '2003-06-10T04:00:00.000Z'],
    ['2003/06/10 04:00:00', '2003-06-10T04:00:00.000Z'],
    ['10 June 2003', '2003-06-10T00:00:00.000Z'],
    // A zone the date names still counts.
    ['June 10, 2003 04:00:00 +0200', '2003-06-10T02:00:00.000Z'],
    ['June 10, 2003 04:00:00 PDT', '2003-06-10T11:00:00.000Z'],
    ['June 10, 2003 04:00:00 +02', '2003-06-10T02:00:00.000Z'],
    // Not an offset: a two-digit year after a hyphen.
    ['Tuesday, 10-Jun-03 04:00:00', '2003-06-10T04:00:00.000Z'],
    ['Tue Jun 10 2003 04:00:00 GMT+0200 (CEST)', '2003-06-10T02:00:00.000Z'],
    ['Thu, 14 Jan 2027 09:15:00', '2027-01-14T09:15:00.000Z'],
  ])('%j → %s', (raw, iso) => {
    expect(new Date().getTimezoneOffset(), 'the local zone took effect').not.toBe(0);
    const t = parseFeedDate(raw);
    expect(t === null ? null : new Date(t).toISOString()).toBe(iso);
  });
});

describe('normalizeItem', () => {
  it('keeps the published link, canonicalizes for identity, and fills every story field', () => {
    const n = normalizeItem(
      item({
        guid: 'g1',
        link: 'https://Example.test/a?utm_source=rss&id=1#top',
        title: '<b>Big</b> news &amp; more',
        summaryHtml: '<p>Summary</p>',
        categories: ['World', 'World', '<i>Asia</i>'],
        published: 'Thu, 14 Jan 2027 09:15:00 +0100',
        author: 'Jo',
        language: 'EN-GB',
        image: '/img.jpg',
      }),
      'feed-a', 'https://example.test/feed.xml', NOW,
    );
    if ('skip' in n) throw new Error(n.skip);
    expect(n.canonicalUrl).toBe('https://example.test/a?id=1');
    expect(n.story).toMatchObject({
      feedId: 'feed-a', guid: 'g1', url: 'https://example.test/a?utm_source=rss&id=1#top', title: 'Big news & more', summary: 'Summary',
      categories: ['World', 'Asia'], publishedAt: Date.parse('2027-01-14T08:15:00Z'), firstSeenAt: NOW,
      language: 'en-gb', author: 'Jo', image: 'https://example.test/img.jpg', sources: [{ feedId: 'feed-a', url: 'https://example.test/a?utm_source=rss&id=1#top' }],
    });
  });

  it('an invalid or future date falls back to dc:date/updated, then to first seen', () => {
    const a = normalizeItem(item({ guid: 'x', title: 't', published: 'garbage', updated: '2027-01-10T00:00:00Z' }), 'f', 'https://e.test/', NOW);
    const b = normalizeItem(item({ guid: 'x', title: 't', published: 'garbage' }), 'f', 'https://e.test/', NOW);
    const c = normalizeItem(item({ guid: 'x', title: 't', published: '2030-01-01T00:00:00Z' }), 'f', 'https://e.test/', NOW);
    expect([a, b, c].map((n) => ('story' in n ? n.story.publishedAt : null))).toEqual([Date.parse('2027-01-10T00:00:00Z'), NOW, NOW]);
  });

  it('items without guid or link are identified by link, then by content; items with no text are skipped with a reason', () => {
    const byLink = normalizeItem(item({ link: 'https://e.test/1', title: 'T' }), 'f', 'https://e.test/', NOW);
    const byContent = normalizeItem(item({ summaryHtml: 'Only a summary, no title, no link, no guid.' }), 'f', 'https://e.test/', NOW);
    const again = normalizeItem(item({ summaryHtml: 'Only a summary, no title, no link, no guid.' }), 'f', 'https://e.test/', NOW);
    const empty = normalizeItem(item({ link: 'https://e.test/2' }), 'f', 'https://e.test/', NOW);
    if ('skip' in byLink || 'skip' in byContent || 'skip' in again) throw new Error('unexpected skip');
    expect(byContent.story.title).toBe('Only a summary, no title, no link, no guid.');
    expect(byContent.story.id).toBe(again.story.id);
    expect(byLink.story.id).not.toBe(byContent.story.id);
    expect(empty).toEqual({ skip: 'item https://e.test/2 has neither title nor summary' });
  });

  it.each([
    ['tags and whitespace only', '<b> </b>\n', '<p>\u00a0</p><br/>', false],
    ['a word inside a tag', '<b>x</b>', '', true],
    ['a "<" that no ">" closes (it is text)', '1 < 2', '', true],
    ['text after the last tag', '', '<p></p> words', true],
  ])('an item with %s is %s', (_what, title, summaryHtml, kept) => {
    const id = identifyItem(item({ guid: 'g', title, summaryHtml }), 'f', 'https://e.test/');
    expect('skip' in id).toBe(!kept);
  });

  // A title and a summary of a million "&lt;" (4 MB each): the tag-stripping regex this replaced read to the
  // end of the text again at every "<" (40,000 took 1.2 s; a million, many minutes). The timeout is the bound.
  it('an item whose title and summary are a million "<" is identified and normalized in one pass', () => {
    const lots = '<'.repeat(1_000_000);
    const n = normalizeItem(item({ guid: 'g', title: lots, summaryHtml: lots }), 'f', 'https://e.test/', NOW);
    if ('skip' in n) throw new Error(n.skip);
    expect(n.story.title.length).toBeLessThanOrEqual(300);
  }, 10_000);

  it('the same guid in two feeds gives two story ids (cross-feed merging is the dedup stage\'s job)', () => {
    const a = normalizeItem(item({ guid: 'same', title: 'T' }), 'feed-a', 'https://a.test/', NOW);
    const b = normalizeItem(item({ guid: 'same', title: 'T' }), 'feed-b', 'https://b.test/', NOW);
    expect('story' in a && 'story' in b && a.story.id !== b.story.id).toBe(true);
  });
});
