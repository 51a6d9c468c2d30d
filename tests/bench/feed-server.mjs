// A stand-in publisher for the ingest benchmark, in its own process so that serving (and generating) the
// bytes does not compete with the pipeline being measured. Prints its port, then serves:
//   /doc/<doc>/<first>.xml  feed <doc> with items <first>..<first+49> (generated once, then cached)
//   /poll/<anything>        304 to If-None-Match "same", else a small feed
import { createServer } from 'node:http';

const WORDS = 'minister council budget election storm harbour rail strike court ruling market shares energy prices water supply school hospital bridge festival museum river coast police report talks summit trade vaccine satellite launch drought harvest'.split(' ');

/** Deterministic pseudo-random text, so every run measures the same documents. */
function rng(seed) {
  // mulberry32 over a mixed seed: nearby seeds must not give look-alike texts (the near-duplicate detector
  // would rightly merge them).
  let s = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
/** Items `first`..`first + items - 1` of feed `doc`; an item's text depends only on (doc, index). */
export function makeFeed(doc, items, first = 0) {
  const body = Array.from({ length: items }, (_, k) => {
    const i = first + k;
    const r = rng(doc * 100_003 + i + 1);
    const words = (n) => Array.from({ length: n }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ');
    const title = `${words(9)} ${doc}-${i}`;
    // About 2 KB per item, the median of the real feeds in the shared corpus (news feeds with a teaser and full text).
    const desc = `<p>${words(40)}</p><p><a href="https://news.example.test/${doc}/${i}">${words(6)}</a> &amp; ${words(20)}</p>`;
    const full = `<p>${words(60)}</p><figure><img src="https://news.example.test/${doc}/${i}.jpg" alt="${words(5)}"/><figcaption>${words(8)}</figcaption></figure><p>${words(70)}</p><p>${words(50)}</p>`;
    return `<item><title>${title}</title><link>https://news.example.test/${doc}/${i}?utm_source=rss</link><guid isPermaLink="false">g-${doc}-${i}</guid>
<description><![CDATA[${desc}]]></description><content:encoded><![CDATA[${full}]]></content:encoded><pubDate>${new Date(Date.UTC(2027, 0, 1) + (doc * items + i) * 60_000).toUTCString()}</pubDate>
<category>${WORDS[i % WORDS.length]}</category><dc:creator>Reporter ${i % 7}</dc:creator></item>`;
  }).join('\n');
  return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Bench feed ${doc}</title><link>https://news.example.test/</link>
<description>Benchmark feed</description><language>en</language><ttl>30</ttl>
${body}
</channel></rss>`);
}


const cache = new Map();
const server = createServer((req, res) => {
  const path = req.url ?? '/';
  if (path.startsWith('/poll/')) {
    if (req.headers['if-none-match'] === '"same"') return void res.writeHead(304, { etag: '"same"' }).end();
    return void res.writeHead(200, { etag: '"same"' }).end(makeFeed(0, 5));
  }
  const m = /^\/doc\/(\d+)\/(\d+)\.xml$/.exec(path);
  if (!m) return void res.writeHead(404).end();
  const key = `${m[1]}/${m[2]}`;
  let body = cache.get(key);
  if (!body) cache.set(key, (body = makeFeed(Number(m[1]), 50, Number(m[2]))));
  res.writeHead(200, { 'content-type': 'application/rss+xml; charset=utf-8' }).end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
