import { Parser as HtmlParser } from 'htmlparser2';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/ingest/decode.ts';
import { decodeRefs, MAX_DEPTH, nestedDeeperThan, NotPlainXml, scanXml } from '../../src/ingest/xml-scan.ts';
import { fixture, fixtureFiles } from '../helpers/http-fixtures.ts';

// The fast feed path used htmlparser2's XML mode before xml-scan.ts; these tests hold the tokenizer to what
// htmlparser2 reports for every document the tokenizer accepts.

type Event = ['open', string, Record<string, string>] | ['text', string] | ['close', string, boolean];

/** Events with adjacent texts merged (htmlparser2 splits text around entities and reports empty CDATA). */
function pushEvent(out: Event[], e: Event) {
  const last = out[out.length - 1];
  if (e[0] === 'text') {
    if (e[1] === '') return;
    if (last?.[0] === 'text') {
      last[1] += e[1];
      return;
    }
  }
  out.push(e);
}

function scanEvents(doc: string): Event[] {
  const out: Event[] = [];
  scanXml(doc, {
    open: (name, attrs) => pushEvent(out, ['open', name, { ...attrs }]),
    text: (text) => pushEvent(out, ['text', text]),
    close: (name, selfClosing) => pushEvent(out, ['close', name, selfClosing]),
  });
  return out;
}

function htmlparser2Events(doc: string): Event[] {
  const out: Event[] = [];
  const p = new HtmlParser(
    {
      onopentag: (name, attrs) => pushEvent(out, ['open', name, { ...attrs }]),
      ontext: (text) => pushEvent(out, ['text', text]),
      onclosetag: (name, implied) => pushEvent(out, ['close', name, implied]),
    },
    { xmlMode: true, decodeEntities: true },
  );
  p.write(doc);
  p.end();
  return out;
}

/** Whether every close matches the open before it (the case in which htmlparser2 adds no closes of its own). */
function nested(events: Event[]): boolean {
  const stack: string[] = [];
  for (const e of events) {
    if (e[0] === 'open') stack.push(e[1]);
    else if (e[0] === 'close' && stack.pop() !== e[1]) return false;
  }
  return stack.length === 0;
}

const docs = fixtureFiles('feeds')
  .filter((name) => /\.(xml|rss|atom|rdf)$/.test(name))
  .map((name): [string, string] => [name, decodeBody(fixture(`feeds/${name}`)).text.replace(/^[\s\uFEFF]+/, '')]);

describe('scanXml reports what htmlparser2 reports', () => {
  it('on the well-formed feed fixtures, event for event', () => {
    let compared = 0;
    for (const [name, doc] of docs) {
      let mine: Event[];
      try {
        mine = scanEvents(doc);
      } catch (err) {
        if (err instanceof NotPlainXml) continue;
        throw err;
      }
      if (!nested(mine)) continue;
      expect(mine, name).toEqual(htmlparser2Events(doc));
      compared++;
    }
    // Most fixtures are plain feeds: the comparison must not pass by skipping them all.
    expect(compared).toBeGreaterThan(docs.length / 2);
  });

  it('on 6,000 damaged copies of the fixtures: whatever it accepts, it reads as htmlparser2 does', () => {
    let seed = 7;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const inserts = ['<', '>', '&', '&amp;', '&#150;', '&#0;', '&#xD800;', ']]>', '<![CDATA[', '"', "'", '/>', '</x>', '<x>', '<!-- c -->', '<?p x?>', ' ', '=', '<a b=c>', '<a b="1" b="2"/>', '<!DOCTYPE x>'];
    let accepted = 0;
    let refused = 0;
    for (let k = 0; k < 6000; k++) {
      const doc = docs[k % docs.length]![1];
      const at = Math.floor(random() * doc.length);
      const r = random();
      const damaged = r < 0.2 ? doc.slice(0, at)
        : r < 0.4 ? doc.slice(0, at) + doc.slice(at + 1 + Math.floor(random() * 8))
        : doc.slice(0, at) + inserts[Math.floor(random() * inserts.length)] + doc.slice(at);
      let mine: Event[];
      try {
        mine = scanEvents(damaged);
      } catch (err) {
        if (!(err instanceof NotPlainXml)) throw err;
        refused++;
        continue;
      }
      if (!nested(mine)) continue;
      accepted++;
      expect(mine, `copy ${k} of ${docs[k % docs.length]![0]}, damaged at ${at}`).toEqual(htmlparser2Events(damaged));
    }
    expect(accepted).toBeGreaterThan(1000);
    expect(refused).toBeGreaterThan(1000);
  });
});

describe('scanXml', () => {
  it('keeps CDATA as it stands, decodes entities in text and attributes, skips comments, declarations and instructions', () => {
    const doc = `<?xml version="1.0"?><!DOCTYPE rss><!-- a < comment & -->
<rss v='1 &amp; 2' w="&quot;x&quot;"><t>a &lt;b&gt; &#38;&#x26; <![CDATA[<p>&amp; raw</p>]]><?pi x?>c</t><e/><f a="1" a="2"></f></rss>`;
    expect(scanEvents(doc)).toEqual([
      ['text', '\n'],
      ['open', 'rss', { v: '1 & 2', w: '"x"' }],
      ['open', 't', {}],
      ['text', 'a <b> && <p>&amp; raw</p>c'],
      ['close', 't', false],
      ['open', 'e', {}],
      ['close', 'e', true],
      ['open', 'f', { a: '1' }],
      ['close', 'f', false],
      ['close', 'rss', false],
    ]);
  });

  it.each([
    ['&#150;', '\u2013'], // windows-1252's en dash, as browsers and htmlparser2 read the C1 range
    ['&#x80;', '\u20ac'],
    ['&#0;', '\ufffd'],
    ['&#xD800;', '\ufffd'],
    ['&#x110000;', '\ufffd'],
    ['&#99999999999999999999;', '\ufffd'],
    ['&#x1F600;', '\u{1F600}'],
    ['&apos;&quot;', '\'"'],
  ])('decodes %s as htmlparser2 does', (ref, text) => {
    expect(decodeRefs(ref)).toBe(text);
    expect(htmlparser2Events(`<a>${ref}</a>`)[1]).toEqual(['text', text]);
  });

  it.each([
    ['an HTML entity', '<a>caf&eacute;</a>'],
    ['a bare ampersand', '<a>Q&A</a>'],
    ['an unquoted attribute', '<a b=c></a>'],
    ['an attribute without a value', '<a b></a>'],
    ['attributes run together', '<a b="1"c="2"></a>'],
    ['"<" in an attribute value', '<a b="<"></a>'],
    ['a "<" that opens nothing', '<a>1 < 2</a>'],
    ['an unterminated tag', '<a><b c="1"'],
    ['an unterminated CDATA section', '<a><![CDATA[x</a>'],
    ['an unterminated comment', '<a><!-- x</a>'],
    ['an internal DTD subset', '<!DOCTYPE a [<!ENTITY x "y">]><a/>'],
    ['a processing instruction with ">" inside', '<?pi a>b?><a/>'],
    ['junk in a closing tag', '<a></a b>'],
  ])('refuses %s', (_what, doc) => {
    expect(() => scanEvents(doc)).toThrow(NotPlainXml);
  });

  // Hostile input must cost time in proportion to its size. A search for "[" that ran past each declaration
  // made this quadratic (40,000 declarations took 1.9 s; 400,000 would take minutes): the test's own
  // timeout is the bound, about a hundred times what one pass takes.
  it('reads a document of 400,000 declarations in one pass', () => {
    const doc = `<rss version="2.0"><channel><title>x</title>${'<!x>'.repeat(400_000)}</channel></rss>`;
    expect(scanEvents(doc).filter((e) => e[0] === 'open').map((e) => e[1])).toEqual(['rss', 'channel', 'title']);
  }, 10_000);
});

describe('nestedDeeperThan (the guard against documents nested too deep to be worth parsing)', () => {
  const item = (description: string) => `<item><title>t</title><description>${description}</description></item>`;
  const feed = (items: string) => `<rss version="2.0"><channel><title>x</title>${items}</channel></rss>`;

  it('finds every fixture far below the limit', () => {
    for (const [name, doc] of docs) expect(nestedDeeperThan(doc, 20), name).toBe(false);
  });

  it.each([
    ['400 unclosed <br> in one description', feed(item('a<br>'.repeat(400)))],
    ['400 unclosed <p> in one description', feed(item('<p>para'.repeat(400)))],
    ['unescaped HTML left open in 1,000 items, closed by each description', feed(item('<div><span><b>x').repeat(1000))],
    ['1,000 nested <div> inside CDATA', feed(item(`<![CDATA[${'<div>'.repeat(1000)}]]>`))],
    ['1,000 nested elements inside a comment', feed(`<!--${'<a>'.repeat(1000)}-->`)],
  ])('does not count a sloppy feed\'s HTML: %s', (_what, doc) => {
    expect(nestedDeeperThan(doc, MAX_DEPTH)).toBe(false);
  });

  it('counts real nesting, closed or not, self-closing tags as empty', () => {
    expect(nestedDeeperThan(feed(item(`${'<a><b>'.repeat(130)}${'</b></a>'.repeat(130)}`)), MAX_DEPTH)).toBe(true);
    expect(nestedDeeperThan(feed(item('<a><b>'.repeat(130))), MAX_DEPTH)).toBe(true);
    expect(nestedDeeperThan(feed(item(`${'<a><b>'.repeat(120)}${'</b></a>'.repeat(120)}`)), MAX_DEPTH)).toBe(false);
    expect(nestedDeeperThan(feed(item('<a/><b/>'.repeat(1000))), MAX_DEPTH)).toBe(false);
  });
});
