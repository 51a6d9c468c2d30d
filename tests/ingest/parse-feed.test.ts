import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/ingest/decode.ts';
import { identifyItem, normalizeItem, toPlainText } from '../../src/ingest/normalize.ts';
import { parseFeedBody, ParseError } from '../../src/ingest/parse-feed.ts';
import { fixture } from '../helpers/http-fixtures.ts';

const parse = (name: string, contentType?: string, baseUrl?: string) => parseFeedBody(fixture(`feeds/${name}`), { contentType, baseUrl });
async function refusal(body: Uint8Array | string, baseUrl?: string): Promise<ParseError> {
  try {
    await parseFeedBody(typeof body === 'string' ? Buffer.from(body) : body, { baseUrl });
  } catch (err) {
    if (err instanceof ParseError) return err;
    throw err;
  }
  throw new Error('expected a ParseError');
}

describe('charset decoding', () => {
  it.each([
    ['encodings/koi8-r.xml', 'Новости', 'Привет, мир', 'koi8-r'],
    ['encodings/windows-1251.xml', 'Новости Оренбурга', 'Главные стройплощадки', 'windows-1251'],
    ['encodings/iso-8859-7.xml', 'Ελληνικά νέα', 'Καλημέρα κόσμε', 'iso-8859-7'],
    ['encodings/shift_jis.xml', '日本のニュース', '東京で会談', 'shift_jis'],
    ['encodings/euc-jp.xml', '日本のニュース', '大阪の天気', 'euc-jp'],
    ['encodings/gb18030.xml', '中文新闻', '北京天气晴朗', 'gb18030'],
    ['encodings/big5.xml', '中文新聞', '台北天氣晴朗', 'big5'],
    ['encodings/windows-1252.xml', 'Café “quotes”', 'Euro € and ‘single’ quotes', 'windows-1252'],
    ['encodings/utf-16le-bom.xml', 'UTF-16 feed', 'Ünïcödé title', 'utf-16le'],
    ['encodings/utf-16be-no-bom.xml', 'UTF-16BE feed', 'Ελληνικά without BOM', 'utf-16be'],
    ['encodings/utf-8-bom.xml', 'UTF-8 with BOM', 'Żółć', 'utf-8'],
    // No declaration, bytes not UTF-8: read as windows-1252 (Latin-1 is its subset).
    ['encodings/latin1-undeclared.xml', 'Notícias', 'Eleição e coração', 'windows-1252'],
    // Declares UTF-8, holds Latin-1 bytes: the declaration is wrong, the fallback reads it right.
    ['encodings/utf8-declared-but-latin1.xml', 'Señal', 'Año nuevo en España', 'windows-1252'],
    // encoding="invalid": an unknown label is ignored, the UTF-8 bytes decide.
    ['encodings/mislabelled-prolog.xml', '테스트 피드', 'Café', 'utf-8'],
    // No information at all, Big5 bytes: a confident statistical guess that decodes without error.
    ['encodings/big5-undeclared.xml', '我希望這段文字很容易翻譯成中文，並有助於改善這個軟體。感謝您閱讀本文。', undefined, 'big5'],
  ])('%s: titles in the right characters', async (name, title, itemTitle, encoding) => {
    const feed = await parse(name);
    expect(feed.title).toBe(title);
    if (itemTitle) expect(feed.items[0]!.title).toBe(itemTitle);
    expect(feed.encoding).toBe(encoding);
  });

  it('UTF-16 without a BOM or an XML declaration is recognised by its NUL bytes, in either byte order', async () => {
    const le = Buffer.from('\n<rss version="2.0"><channel><title>Ünï</title><item><title>Ελληνικά</title></item></channel></rss>', 'utf16le');
    const be = Buffer.from(le).swap16();
    for (const [body, contentType, encoding] of [[le, 'application/rss+xml; charset=utf-16', 'utf-16le'], [be, 'text/xml; charset=UTF-16BE', 'utf-16be'], [le, undefined, 'utf-16le']] as const) {
      const feed = await parseFeedBody(body, { contentType });
      expect(feed, encoding).toMatchObject({ title: 'Ünï', encoding });
      expect(feed.items[0]!.title).toBe('Ελληνικά');
    }
  });

  // Microsoft code page names and Python-style spellings, which publishers write and feed readers (Python's
  // feedparser, with its codec aliases) accept, but TextDecoder does not know: the label was ignored and the
  // bytes read as windows-1252, mojibake ("“Œ‹ž" for 東京).
  it.each([
    ['cp932', '\x93\x8c\x8b\x9e', '東京', 'shift_jis'],
    ['CP936', '\xb1\xb1\xbe\xa9', '北京', 'gbk'],
    ['euc-cn', '\xb1\xb1\xbe\xa9', '北京', 'gbk'],
    ['cp949', '\xbc\xad\xbf\xef', '서울', 'euc-kr'],
    ['cp950', '\xa5\x78\xa5\x5f', '台北', 'big5'],
    ['win-1251', '\xcd\xee\xe2\xee\xf1\xf2\xe8', 'Новости', 'windows-1251'],
    ['latin-2', '\xa3\xf3d\xbc', 'Łódź', 'iso-8859-2'],
    ['ISO8859_7', '\xc5\xeb\xeb\xe1\xe4\xe1', 'Ελλαδα', 'iso-8859-7'],
  ])('the label %s, which TextDecoder does not know, is read as its encoding, from the prolog or the HTTP header', (label, bytes, text, encoding) => {
    const prolog = Buffer.from(`<?xml version="1.0" encoding="${label}"?><a>${bytes}</a>`, 'latin1');
    expect(decodeBody(prolog)).toMatchObject({ text: `<?xml version="1.0" encoding="${label}"?><a>${text}</a>`, encoding, source: 'prolog' });
    expect(decodeBody(Buffer.from(`<a>${bytes}</a>`, 'latin1'), `text/xml; charset=${label}`)).toMatchObject({ text: `<a>${text}</a>`, encoding, source: 'http' });
  });

  it('the HTTP charset wins over the prolog (RFC 7303), and a BOM wins over both', () => {
    const cp1251 = Buffer.from('<?xml version="1.0" encoding="iso-8859-1"?><a>\xcd\xee\xe2\xee\xf1\xf2\xe8</a>', 'latin1');
    expect(decodeBody(cp1251, 'application/rss+xml; charset=windows-1251').text).toContain('Новости');
    expect(decodeBody(cp1251, 'text/xml').text).toContain('Íîâîñòè');
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<a>Żółć</a>')]);
    expect(decodeBody(bom, 'text/xml; charset=iso-8859-2')).toMatchObject({ text: '<a>Żółć</a>', source: 'bom' });
  });

  it('a server-wide Latin-1 charset over a valid UTF-8 feed that says UTF-8 is read as UTF-8 (the usual misconfiguration)', async () => {
    const feed = await parse('encodings/http-latin1-prolog-utf8.xml', 'text/xml; charset=ISO-8859-1');
    expect(feed.items[0]!.title).toBe('Grüße aus Köln');
  });

  it('a server-wide Latin-1 charset over a valid UTF-8 feed that declares no encoding is read as UTF-8 (XML\'s default)', async () => {
    const body = Buffer.from('<?xml version="1.0"?><rss version="2.0"><channel><title>Köln</title><item><title>Grüße aus Köln</title></item></channel></rss>');
    const feed = await parseFeedBody(body, { contentType: 'application/rss+xml; charset=ISO-8859-1' });
    expect(feed).toMatchObject({ title: 'Köln', encoding: 'utf-8' });
    expect(feed.items[0]!.title).toBe('Grüße aus Köln');
    // Bytes that are not UTF-8 keep the header's charset.
    expect(decodeBody(Buffer.from('<rss><title>K\xf6ln</title></rss>', 'latin1'), 'text/xml; charset=ISO-8859-1').text).toBe('<rss><title>Köln</title></rss>');
  });

  it('a server-wide UTF-8 charset over a windows-1251 feed that says windows-1251 is read as windows-1251', async () => {
    const cp1251 = Buffer.from('<?xml version="1.0" encoding="windows-1251"?><a>\xcd\xee\xe2\xee\xf1\xf2\xe8</a>', 'latin1');
    expect(decodeBody(cp1251, 'application/rss+xml; charset=utf-8')).toMatchObject({ text: expect.stringContaining('Новости'), encoding: 'windows-1251', source: 'prolog' });
    const feed = Buffer.from('<?xml version="1.0" encoding="ISO-8859-2"?><rss version="2.0"><channel><title>\xa3\xf3d\xbc</title><item><title>Za\xbf\xf3\xb3\xe6 g\xea\xb6l\xb1 ja\xbc\xf1</title></item></channel></rss>', 'latin1');
    const parsed = await parseFeedBody(feed, { contentType: 'text/xml; charset=UTF-8' });
    expect(parsed).toMatchObject({ title: 'Łódź', encoding: 'iso-8859-2' });
    expect(parsed.items[0]!.title).toBe('Zażółć gęślą jaźń');
    // Valid UTF-8 under the same header is still UTF-8, whatever the prolog says (the header wins).
    expect(decodeBody(Buffer.from('<?xml version="1.0" encoding="windows-1251"?><a>Żółć</a>'), 'text/xml; charset=utf-8').encoding).toBe('utf-8');
  });

  it('an unknown HTTP charset label is ignored rather than fatal', () => {
    expect(decodeBody(Buffer.from('<a>é</a>'), 'text/xml; charset=x-made-up').text).toBe('<a>é</a>');
  });

  it('windows-1252 punctuation hidden as C1 controls in a UTF-8 document is repaired', () => {
    expect(decodeBody(Buffer.from('<a>don\u0092t</a>')).text).toBe('<a>don’t</a>');
  });

  it.each([
    ['after other two-byte characters of the same lead byte', '<a>©\u00a0«quoted»\u0093x\u0094</a>', '<a>©\u00a0«quoted»“x”</a>'],
    ['at the very end of the document', '<a>x</a>\u0085', '<a>x</a>…'],
    ['none: Latin-1 supplement characters stay as they are', '<a>©\u00a0° ± ¿</a>', '<a>©\u00a0° ± ¿</a>'],
  ])('C1 controls in UTF-8 are found by their bytes %s', (_, text, expected) => {
    expect(decodeBody(Buffer.from(text)).text).toBe(expected);
  });
});

describe('formats', () => {
  it.each([
    ['formats/rss090-rdf.xml', 'rss0.9x', 'Herald test: RSS 0.90', 2],
    ['formats/rss091.xml', 'rss0.9x', 'Herald test: café society', 1],
    ['formats/rss092.xml', 'rss0.9x', 'Herald test: RSS 0.92', 1],
    ['formats/rss10-rdf.xml', 'rss1.0', 'Herald test: RSS 1.0', 1],
    ['formats/rss20-full.xml', 'rss2.0', 'Herald test: <b>Full</b> RSS 2.0', 4],
    ['formats/no-version.rss', 'rss2.0', 'Herald test: no version attribute', 1],
    ['formats/atom03.xml', 'atom0.3', 'Herald test: Atom 0.3', 1],
    ['formats/atom10.xml', 'atom1.0', 'Herald test: Atom &amp; 1.0', 2],
    ['formats/feed10.json', 'json1.0', 'Herald test: JSON Feed 1.0', 2],
    ['formats/feed11.json', 'json1.1', 'Herald test: JSON Feed 1.1', 1],
  ])('%s is %s', async (name, format, title, items) => {
    const feed = await parse(name);
    expect(feed.format).toBe(format);
    expect(feed.title).toBe(title);
    expect(feed.items).toHaveLength(items);
  });

  it('RSS 2.0: hints, hub, and every item field Herald keeps', async () => {
    const feed = await parse('formats/rss20-full.xml');
    expect(feed.hints).toEqual({ ttlMinutes: 120, updatePeriod: null, updateFrequency: null, skipHours: [0, 1, 2], skipDays: ['sunday'] });
    expect(feed.hub).toBe('https://hub.example.test/');
    expect(feed.self).toBe('https://rss20.example.test/feed.xml');
    expect(feed.language).toBe('en-GB');
    expect(feed.items[0]).toMatchObject({
      guid: 'budget-2027',
      published: 'Thu, 14 Jan 2027 09:15:00 +0100',
      categories: ['Politics', 'Budget'],
      author: 'Jo Reporter',
      image: 'https://rss20.example.test/budget.jpg',
    });
  });

  it('RSS 1.0: syndication hints, dc:date, dc:creator, dc:language', async () => {
    const feed = await parse('formats/rss10-rdf.xml');
    expect(feed.hints).toMatchObject({ updatePeriod: 'hourly', updateFrequency: 2 });
    expect(feed.items[0]).toMatchObject({ published: '2027-01-14T08:30:00+01:00', author: 'Anna Schmidt', language: 'de' });
  });

  it('Atom 0.3 dates (issued/modified) and Atom 1.0 hub, author, category label, relative link', async () => {
    const a03 = await parse('formats/atom03.xml');
    expect(a03.items[0]).toMatchObject({ guid: 'tag:atom03.example.test,2027:comet', published: '2027-01-14T09:00:00Z', updated: '2027-01-14T09:30:00Z' });
    const a10 = await parse('formats/atom10.xml');
    expect(a10.hub).toBe('https://hub.example.test/atom');
    expect(a10.self).toBe('https://atom10.example.test/atom.xml');
    expect(a10.items[0]).toMatchObject({ link: '/rail/strike-off', author: 'Sam Writer', categories: ['Transport'] });
  });

  // Atom has no <language> element: its language is the xml:lang attribute (RFC 4287 §2, XML 1.0 §2.12), on the
  // feed for all entries, on an entry for that one. Both were ignored, so every Atom story had no language.
  it.each([false, true])('Atom: the language is the xml:lang of the feed, or of the entry (rss-parser only: %s)', async (rssParserOnly) => {
    const feed = await parseFeedBody(fixture('feeds/atom/xml-lang.xml'), { rssParserOnly });
    expect(feed.language).toBe('de-AT');
    expect(feed.items.map((i) => i.language)).toEqual(['de-AT', 'en']);
  });

  // RFC 4287 §4.2.7.2: a link without rel is rel="alternate". Only an explicit rel="alternate" counted, so an
  // entry whose article link has no rel took its first link (here the comments feed), and the feed its self link.
  it.each([false, true])('Atom: a link without rel is the alternate link, not the first link (rss-parser only: %s)', async (rssParserOnly) => {
    const feed = await parseFeedBody(fixture('feeds/atom/link-rel.xml'), { rssParserOnly });
    expect(feed.link).toBe('https://links.example.test/');
    expect(feed.self).toBe('https://links.example.test/atom.xml');
    expect(feed.items[0]!.link).toBe('https://links.example.test/tram-extension');
  });

  // xml:base sets the base URI of the element and its descendants (XML Base, RFC 4287 §2): it was ignored, so
  // relative links were resolved against the URL the feed was fetched from (often another host: a CDN, a
  // feed proxy) and the stories linked to pages that do not exist.
  it.each([false, true])('Atom: relative links and images are resolved against xml:base, nested in the entry (rss-parser only: %s)', async (rssParserOnly) => {
    const feedUrl = 'https://feeds.example.test/proxy/atom';
    const feed = await parseFeedBody(fixture('feeds/atom/xml-base.xml'), { rssParserOnly, baseUrl: feedUrl });
    expect(feed).toMatchObject({ link: 'https://www.base.example.test/news/', self: 'https://www.base.example.test/news/atom.xml' });
    expect(feed.items.map((i) => [i.link, i.image])).toEqual([
      ['https://www.base.example.test/news/tram-extension', 'https://www.base.example.test/news/img/tram.jpg'],
      ['https://www.base.example.test/news/2027/01/ferry?id=7&utm_source=atom', null],
    ]);
    const n = normalizeItem(feed.items[1]!, 'base', feedUrl, Date.parse('2027-01-15T00:00:00Z'));
    expect('story' in n && n.canonicalUrl).toBe('https://www.base.example.test/news/2027/01/ferry?id=7');
  });

  // RFC 4287 §3.1.1: a text construct without type, or type="text", is plain text once XML entities are decoded;
  // only type="html" is HTML. The normalizer reads titles and summaries as HTML, so "Use &lt;b&gt; for bold"
  // became "Use for bold" and "x &lt; y and y &gt; z" lost everything after the x.
  it.each([false, true])('Atom: a text-typed title or summary is kept literally, markup characters and all (rss-parser only: %s)', async (rssParserOnly) => {
    const feedUrl = 'https://text.example.test/atom.xml';
    const feed = await parseFeedBody(fixture('feeds/atom/text-constructs.xml'), { rssParserOnly, baseUrl: feedUrl });
    expect(toPlainText(feed.title)).toBe('Herald test: <code> & text constructs');
    const stories = feed.items.map((i) => normalizeItem(i, 'text', feedUrl, Date.parse('2027-01-15T00:00:00Z'))).map((n) => ('story' in n ? [n.story.title, n.story.summary] : n.skip));
    expect(stories).toEqual([
      ['Use <b> for bold', 'Why x < y and y > z holds'],
      ['x < y and y > z', 'The <video> element, AT&amp;T and Fish & chips'],
      ['An HTML title', 'Markup dropped'],
    ]);
  });

  it('an Atom entry with an impossible date does not cost the feed its other entries', async () => {
    const a10 = await parse('formats/atom10.xml');
    expect(a10.items.map((i) => i.title)).toEqual(['Rail strike called off <i>after talks</i>', 'Entry with a broken date']);
    expect(a10.items[1]!.published).toBe('yesterday-ish');
  });

  // Before: the unreadable pubDate was the only date kept, so the item was dated when it was first seen.
  it.each([false, true])('a pubDate nobody can read gives way to a readable dc:date beside it (rss-parser only: %s)', async (rssParserOnly) => {
    const body = Buffer.from(`<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Dates</title>
<item><title>Harbour reopens</title><link>https://dates.example.test/1</link><pubDate>Not available</pubDate><dc:date>2027-01-14T08:30:00Z</dc:date></item>
<item><title>Bridge closes</title><link>https://dates.example.test/2</link><pubDate>Thu, 14 Jan 2027 10:00:00 GMT</pubDate><dc:date>2027-01-01T00:00:00Z</dc:date></item>
<item><title>Ferry delayed</title><link>https://dates.example.test/3</link><pubDate>soon</pubDate></item>
</channel></rss>`);
    const feed = await parseFeedBody(body, { rssParserOnly });
    expect(feed.items.map((i) => i.published)).toEqual(['2027-01-14T08:30:00Z', 'Thu, 14 Jan 2027 10:00:00 GMT', 'soon']);
    const now = Date.parse('2027-01-15T00:00:00Z');
    const published = feed.items.map((i) => normalizeItem(i, 'dates', 'https://dates.example.test/', now)).map((n) => ('story' in n ? new Date(n.story.publishedAt).toISOString() : n.skip));
    expect(published).toEqual(['2027-01-14T08:30:00.000Z', '2027-01-14T10:00:00.000Z', '2027-01-15T00:00:00.000Z']);
  });

  // xml2js keeps an element's text apart from its child elements: rss-parser gave an XHTML title as none at
  // all (the first entry, without a summary, was then dropped) and an XHTML summary's words out of order.
  it.each([false, true])('Atom XHTML titles and summaries are read as text, in order (rss-parser only: %s)', async (rssParserOnly) => {
    const feed = await parseFeedBody(fixture('feeds/formats/atom10-xhtml.xml'), { rssParserOnly });
    expect(toPlainText(feed.title)).toBe('Herald test: XHTML & Atom');
    const now = Date.parse('2027-01-15T00:00:00Z');
    const stories = feed.items.map((i) => normalizeItem(i, 'xhtml', 'https://xhtml.example.test/atom.xml', now)).map((n) => ('story' in n ? [n.story.title, n.story.summary] : n.skip));
    expect(stories).toEqual([
      ['The new harbour bridge opens', ''],
      ['Storm warning lifted', 'Winds eased overnight. Ferries run again & on time <soon> today.'],
    ]);
  });

  it('JSON Feed: relative URLs resolved against feed_url, numeric ids, content_text escaped, hubs, authors', async () => {
    const j10 = await parse('formats/feed10.json');
    expect(j10.items[0]).toMatchObject({ guid: '1', link: 'https://json10.example.test/posts/1', image: 'https://json10.example.test/img/port.jpg', categories: ['weather', 'shipping'], author: 'Desk' });
    expect(j10.items[1]).toMatchObject({ guid: '2', title: '', summaryHtml: 'A post with no title: &lt;not html>' });
    const j11 = await parse('formats/feed11.json');
    expect(j11).toMatchObject({ language: 'es', hub: 'https://hub.example.test/json' });
    expect(j11.items[0]).toMatchObject({ link: 'https://json11.example.test/a', author: 'Redacción', updated: '2027-01-14T09:00:00Z' });
  });

  it('JSON Feed: an item title and summary are plain text, their "<" kept as text through normalization', async () => {
    const doc = JSON.stringify({
      version: 'https://jsonfeed.org/version/1.1', title: 'Plain',
      items: [{ id: '1', url: 'https://json.example.test/1', title: 'The <video> element, explained', summary: 'Why x<y matters to <canvas> users &amp; others', content_html: '<p>Body</p>' }],
    });
    const feed = await parseFeedBody(Buffer.from(doc));
    const n = normalizeItem(feed.items[0]!, 'json', 'https://json.example.test/feed.json', Date.parse('2027-01-15T00:00:00Z'));
    expect('story' in n && { title: n.story.title, summary: n.story.summary }).toEqual({
      title: 'The <video> element, explained',
      summary: 'Why x<y matters to <canvas> users & others',
    });
  });

  it('JSON Feed: an id that is neither a string nor a number is no id, so such items keep their own identities', async () => {
    const doc = JSON.stringify({
      version: 'https://jsonfeed.org/version/1.1', title: 'Ids',
      items: [{ id: { n: 1 }, url: 'https://json.example.test/1', title: 'One' }, { id: ['2'], url: 'https://json.example.test/2', title: 'Two' }, { id: 3, title: 'Three' }],
    });
    const feed = await parseFeedBody(Buffer.from(doc));
    expect(feed.items.map((i) => i.guid)).toEqual([null, null, '3']);
    const ids = feed.items.map((i) => identifyItem(i, 'json', 'https://json.example.test/feed.json')).map((x) => ('id' in x ? x.id : x.skip));
    expect(new Set(ids).size).toBe(3);
  });

  it('malformed JSON gets a line and column; JSON that is not a JSON Feed is named as such', async () => {
    const bad = await refusal('{\n  "version": "https://jsonfeed.org/version/1",\n  "items": [,]\n}');
    expect(bad.code).toBe('malformed-json');
    expect(bad.line).toBe(3);
    expect((await refusal('{"hello": "world"}')).code).toBe('not-a-feed');
  });
});

describe('bad input', () => {
  it('an HTML page that advertises a feed: html-not-feed naming the feed URL, resolved against the page', async () => {
    const err = await refusal(fixture('feeds/hostile/html-with-alternate.html'), 'https://news.example.test/section/');
    expect(err.code).toBe('html-not-feed');
    expect(err.feedUrl).toBe('https://news.example.test/feeds/all.rss');
    expect(err.message).toContain('https://news.example.test/feeds/all.rss');
  });

  it('an HTML page advertising oEmbed and REST JSON before its RSS feed: the RSS feed is named', async () => {
    // The head of a WordPress page: oEmbed and REST API links are "alternate" too.
    const page = '<!DOCTYPE html><html><head><link rel="alternate" type="application/json+oembed" href="/wp-json/oembed/1.0/embed?url=x">'
      + '<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2"><link rel="alternate" type="application/rss+xml" title="Feed" href="/feed/"></head><body></body></html>';
    const err = await refusal(page, 'https://blog.example.test/about/');
    expect(err).toMatchObject({ code: 'html-not-feed', feedUrl: 'https://blog.example.test/feed/' });
    const oembedOnly = await refusal('<!DOCTYPE html><html><head><link rel="alternate" type="application/json+oembed" href="/oembed"></head></html>', 'https://blog.example.test/');
    expect(oembedOnly).toMatchObject({ code: 'html-not-feed', feedUrl: null });
  });

  it('an HTML page without one says so', async () => {
    const err = await refusal(fixture('feeds/hostile/html-no-alternate.html'));
    expect(err).toMatchObject({ code: 'html-not-feed', feedUrl: null });
  });

  it('truncated and mis-nested XML: malformed-xml with the line and column', async () => {
    const t = await refusal(fixture('feeds/hostile/truncated.xml'));
    expect(t).toMatchObject({ code: 'malformed-xml', line: 10 });
    const m = await refusal(fixture('feeds/hostile/mismatched.xml'));
    expect(m).toMatchObject({ code: 'malformed-xml', line: 6, column: 26 });
    expect(m.message).toContain('line 6, column 26');
  });

  it('a failed parse leaves nothing behind: the next document parses cleanly', async () => {
    await refusal(fixture('feeds/hostile/mismatched.xml'));
    const ok = await parse('formats/rss092.xml');
    expect(ok.items[0]!.title).toBe('Harbour bridge reopens after repairs');
  });

  it.each(['hostile/billion-laughs.xml', 'hostile/xxe.xml'])('%s is refused: no DTD entities, no external entities', async (name) => {
    const err = await refusal(fixture(`feeds/${name}`));
    expect(err.code).toBe('xml-entities');
  });

  it('a quadratic-blowup document (one big entity referenced many times) is refused without growing memory', async () => {
    const big = 'x'.repeat(100_000);
    const doc = `<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "${big}">]><rss version="2.0"><channel><title>${'&a;'.repeat(40_000)}</title></channel></rss>`;
    const before = process.memoryUsage().heapUsed;
    const err = await refusal(doc);
    const grown = process.memoryUsage().heapUsed - before;
    expect(err.code).toBe('xml-entities');
    // Expanded, this would be 4 GB; refused before any parser runs, it costs about a copy of the 200 KB body.
    expect(grown).toBeLessThan(50 * 1024 * 1024);
  });

  // 700,000 nested elements (4.9 MB) took the parsers 2.4 s and 300 MB of heap, and overflowed xml2js'
  // stack (reported as malformed XML); never closed, 2.1 MB took 517 MB. Both parse paths are covered: the
  // bare ampersand sends the second document past the fast path.
  it.each([
    ['nested and closed (the fast path reads it)', `<rss version="2.0"><channel><title>x</title><item><title>t</title><description>${'<a>'.repeat(700_000)}x${'</a>'.repeat(700_000)}</description></item></channel></rss>`],
    ['nested, never closed, with a bare ampersand (rss-parser would read it)', `<rss version="2.0"><channel><title>Q&A</title><item><title>t</title><description>${'<a><b>'.repeat(350_000)}</description></item></channel></rss>`],
  ])('a document of 700,000 nested elements, %s, is refused as too deep without growing memory', async (_what, doc) => {
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    const err = await refusal(doc);
    expect(err.code).toBe('too-deep');
    expect(err.message).toContain('nested more than 256 levels');
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(50 * 1024 * 1024);
  }, 10_000);

  it('bare ampersands and HTML named entities are repaired the way feed readers do', async () => {
    const feed = await parse('hostile/bare-ampersand.xml');
    expect(feed.title).toBe('Herald test: Q&A with bare ampersands');
    expect(feed.items[0]).toMatchObject({ title: 'Fish & chips shop wins award', link: 'https://amp.example.test/story?id=1&ref=home' });
    expect(feed.items[0]!.summaryHtml).toBe('Café owners & staff celebrate — again.');
  });

  // The repair pass searched again for the next CDATA section and the next comment after every section, each
  // search for the absent one reading to the end: 40,000 CDATA titles and one bare ampersand (1.8 MB) took 36 s.
  it('a feed of many CDATA sections with one bare ampersand is repaired in linear time', async () => {
    const items = Array.from({ length: 40_000 }, (_, i) => `<item><title><![CDATA[Story ${i}]]></title></item>`).join('');
    const doc = `<?xml version="1.0"?><rss version="2.0"><channel><title>Q & A</title>${items}</channel></rss>`;
    const started = Date.now();
    const feed = await parseFeedBody(Buffer.from(doc));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(feed.title).toBe('Q & A');
    expect(feed.items).toHaveLength(40_000);
    expect(feed.items[39_999]!.title).toBe('Story 39999');
  }, 60_000);

  it('a comment before the root that mentions markup is skipped as a comment', async () => {
    const feed = await parseFeedBody(Buffer.from('<?xml version="1.0"?>\n<!-- made by <a href="https://gen.example.test/">Feedgen</a> -->\n<rss version="2.0"><channel><title>Commented</title><item><title>One</title></item></channel></rss>'));
    expect(feed).toMatchObject({ format: 'rss2.0', title: 'Commented' });
    const page = await refusal('<!-- <p>cached</p> --><!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" href="/rss"></head></html>', 'https://site.example.test/');
    expect(page).toMatchObject({ code: 'html-not-feed', feedUrl: 'https://site.example.test/rss' });
    const entities = await refusal('<!-- <rss> --><!DOCTYPE rss [<!ENTITY a "x">]><rss version="2.0"><channel><title>&a;</title></channel></rss>');
    expect(entities.code).toBe('xml-entities');
  });

  it('an Atom <link/> without attributes in a feed that needs repair is a link without an href, not a parse failure', async () => {
    const doc = '<feed xmlns="http://www.w3.org/2005/Atom"><title>Q & A</title><link/><entry><title>One</title><link/><link href="https://a.example.test/1"/></entry></feed>';
    const feed = await parseFeedBody(Buffer.from(doc));
    // The title is read as HTML, like an item's: an Atom text title's "&" comes escaped (RFC 4287 §3.1.1).
    expect(feed).toMatchObject({ title: 'Q &amp; A', link: null });
    expect(toPlainText(feed.title)).toBe('Q & A');
    expect(feed.items.map((i) => i.title)).toEqual(['One']);
  });

  // Before: accepted as RSS, then refused by the parser as 'malformed XML: Feed not recognized as RSS 1 or 2'.
  it.each([
    ['<RSS version="2.0"><channel><title>T</title></channel></RSS>', 'root element <RSS> is not RSS, RDF or Atom (XML names are case-sensitive: a feed\'s root is <rss>)'],
    ['<rdf:rdf xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><channel><title>T</title></channel></rdf:rdf>', "root element <rdf:rdf> is not RSS, RDF or Atom (XML names are case-sensitive: a feed's root is <rdf:RDF>)"],
  ])('a feed root in the wrong letter case is not-a-feed, naming the right one: %s', async (xml, message) => {
    const err = await parseFeedBody(Buffer.from(`<?xml version="1.0"?>${xml}`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParseError);
    expect(err).toMatchObject({ code: 'not-a-feed', message });
  });

  it('whitespace before the XML declaration is tolerated', async () => {
    expect((await parse('hostile/leading-whitespace.xml')).items[0]!.title).toBe('Still a feed');
  });

  it('a gzip file served without Content-Encoding is decompressed, within the size cap', async () => {
    expect((await parse('hostile/gzip-body.xml')).format).toBe('rss0.9x');
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x20));
    const err = await parseFeedBody(bomb, { maxBytes: 1024 * 1024 }).catch((e: ParseError) => e);
    expect(err).toMatchObject({ code: 'too-large' });
  });

  it.each([
    ['', 'empty-body'],
    ['   \n ', 'empty-body'],
    ['Just text', 'not-a-feed'],
    ['<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', 'not-a-feed'],
  ])('%j is refused with %s', async (body, code) => {
    expect((await refusal(body)).code).toBe(code);
  });
});
