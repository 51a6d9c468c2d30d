import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isForbiddenAddress } from '../../src/ingest/address-guard.ts';
import { fetchFeed, FetchError, isPermanentHop, type FetchRequest } from '../../src/ingest/fetch-feed.ts';
import { fixture } from '../helpers/http-fixtures.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface Local {
  url(path: string): string;
  on(path: string, h: Handler): void;
  requests: { path: string; headers: IncomingMessage['headers'] }[];
  bytesSent: Map<string, number>;
  close(): Promise<void>;
}

async function startServer(host = '127.0.0.1'): Promise<Local> {
  const routes = new Map<string, Handler>();
  const requests: Local['requests'] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ path, headers: req.headers });
    const h = routes.get(path);
    if (h) h(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p) => `http://${host}:${port}${p}`,
    on: (p, h) => void routes.set(p, h),
    requests,
    bytesSent: new Map(),
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

const feedBody = fixture('feeds/formats/rss092.xml');
let srv: Local;
const req = (path: string, over: Partial<FetchRequest> = {}): FetchRequest => ({
  url: srv.url(path), etag: null, lastModified: null, connectTimeoutMs: 2000, timeoutMs: 5000, maxBytes: 5 * 1024 * 1024,
  userAgent: 'Herald-test/1', allowPrivate: true, ...over,
});
const failure = async (r: FetchRequest) => fetchFeed(r).then(() => { throw new Error('expected a FetchError'); }, (e: FetchError) => e);

beforeAll(async () => {
  srv = await startServer();
  // Conditional GET the way servers do it: If-None-Match first (RFC 9110 §13.2.2), If-Modified-Since only without it.
  srv.on('/conditional.xml', (rq, res) => {
    const inm = rq.headers['if-none-match'];
    const ims = rq.headers['if-modified-since'];
    if ((inm && inm === '"v1"') || (!inm && ims === 'Wed, 13 Jan 2027 10:00:00 GMT')) return void res.writeHead(304, { etag: '"v1"' }).end();
    res.writeHead(200, { etag: '"v1"', 'last-modified': 'Wed, 13 Jan 2027 10:00:00 GMT', 'cache-control': 'max-age=600', 'content-type': 'application/rss+xml' }).end(feedBody);
  });
  srv.on('/gzip.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(feedBody)));
  srv.on('/deflate.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': 'deflate' }).end(deflateSync(feedBody)));
  // Raw deflate without the zlib wrapper, as some servers send "deflate".
  srv.on('/raw-deflate.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': 'deflate' }).end(deflateRawSync(feedBody)));
  srv.on('/br.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': 'br' }).end(brotliCompressSync(feedBody)));
  // RFC 9110 §8.4: codings listed in the order they were applied (gzip first, then br), one header or several.
  srv.on('/gzip-br.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': 'gzip, br' }).end(brotliCompressSync(gzipSync(feedBody))));
  srv.on('/gzip-identity.xml', (_q, res) => void res.writeHead(200, [['content-encoding', 'identity'], ['content-encoding', 'GZIP']]).end(gzipSync(feedBody)));
  // A bomb in two layers: the cap is on what comes out of the last decoder.
  srv.on('/gzip-gzip-bomb.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': 'gzip, gzip' }).end(gzipSync(gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20)))));
  srv.on('/long-chain.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': Array(20).fill('gzip').join(', ') }).end('x'));
  srv.on('/bad-gzip.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': 'gzip' }).end('this is not gzip'));
  // 50 MB announced and streamed: the download must stop at the cap, long before the end.
  srv.on('/huge.xml', (_q, res) => {
    res.writeHead(200, { 'content-length': String(50 * 1024 * 1024) });
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (sent < 50 * 1024 * 1024) {
        sent += chunk.length;
        srv.bytesSent.set('/huge.xml', sent);
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('error', () => undefined);
    pump();
  });
  srv.on('/huge-chunked.xml', (_q, res) => {
    res.writeHead(200);
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (sent < 50 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length;
        srv.bytesSent.set('/huge-chunked.xml', sent);
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('error', () => undefined);
    pump();
  });
  // The connection drops in the middle of a compressed body.
  srv.on('/gzip-cut.xml', (_q, res) => {
    res.writeHead(200, { 'content-encoding': 'gzip' });
    res.write(gzipSync(Buffer.alloc(100_000, 0x61)).subarray(0, 30));
    setTimeout(() => res.socket?.destroy(), 50);
  });
  srv.on('/gzip-bomb.xml', (_q, res) => void res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20))));
  // Slow loris: headers at once, then a byte every 100 ms, forever.
  srv.on('/slow.xml', (_q, res) => {
    res.writeHead(200);
    const timer = setInterval(() => res.write('<'), 100);
    res.on('close', () => clearInterval(timer));
  });
  srv.on('/loop-a', (_q, res) => void res.writeHead(302, { location: '/loop-b' }).end());
  srv.on('/loop-b', (_q, res) => void res.writeHead(302, { location: '/loop-a' }).end());
  for (let i = 0; i < 7; i++) srv.on(`/hop${i}`, (_q, res) => void res.writeHead(301, { location: `/hop${i + 1}` }).end());
  srv.on('/hop7', (_q, res) => void res.writeHead(200).end(feedBody));
  srv.on('/moved', (_q, res) => void res.writeHead(301, { location: '/moved-2' }).end());
  srv.on('/moved-2', (_q, res) => void res.writeHead(308, { location: '/new-home.xml' }).end());
  srv.on('/temporary', (_q, res) => void res.writeHead(301, { location: '/temporary-2' }).end());
  srv.on('/temporary-2', (_q, res) => void res.writeHead(302, { location: '/new-home.xml' }).end());
  srv.on('/new-home.xml', (_q, res) => void res.writeHead(200).end(feedBody));
  // A redirect and an error whose bodies never end: nothing Herald reads, nothing it should download.
  for (const [path, status] of [['/redirect-flood', 302], ['/error-flood', 500]] as const) {
    srv.on(path, (_q, res) => {
      res.writeHead(status, { location: '/new-home.xml' });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (!res.destroyed) {
          srv.bytesSent.set(path, (srv.bytesSent.get(path) ?? 0) + chunk.length);
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      res.on('error', () => undefined);
      pump();
    });
  }
  // A broken server (or cache in front of it) that answers 304 whatever it is asked.
  srv.on('/always-304.xml', (_q, res) => void res.writeHead(304).end());
  srv.on('/gone.xml', (_q, res) => void res.writeHead(410).end('gone'));
  srv.on('/busy.xml', (_q, res) => void res.writeHead(503, { 'retry-after': '7200' }).end());
  srv.on('/hub-header.xml', (_q, res) => void res.writeHead(200, { link: '<https://hub.example.test/>; rel="hub", <https://f.example.test/feed>; rel="self"' }).end(feedBody));
});
afterAll(async () => srv.close());

describe('fetchFeed', () => {
  it('conditional GET: validators are sent, and a 304 comes back with no body', async () => {
    const first = await fetchFeed(req('/conditional.xml'));
    expect(first).toMatchObject({ kind: 'ok', status: 200, etag: '"v1"', lastModified: 'Wed, 13 Jan 2027 10:00:00 GMT', cache: { cacheControl: 'max-age=600' } });
    const second = await fetchFeed(req('/conditional.xml', { etag: '"v1"', lastModified: 'Wed, 13 Jan 2027 10:00:00 GMT' }));
    expect(second.kind).toBe('not-modified');
    const sent = srv.requests.filter((r) => r.path === '/conditional.xml').at(-1)!.headers;
    expect(sent['if-none-match']).toBe('"v1"');
    expect(sent['if-modified-since']).toBe('Wed, 13 Jan 2027 10:00:00 GMT');
    expect(sent['user-agent']).toBe('Herald-test/1');
    expect(sent['accept-encoding']).toBe('gzip, deflate, br');
    // Only Last-Modified known: If-Modified-Since alone still gets the 304.
    expect((await fetchFeed(req('/conditional.xml', { lastModified: 'Wed, 13 Jan 2027 10:00:00 GMT' }))).kind).toBe('not-modified');
    // A stale ETag with a matching date: If-None-Match takes precedence, so the body is sent again.
    expect((await fetchFeed(req('/conditional.xml', { etag: '"old"', lastModified: 'Wed, 13 Jan 2027 10:00:00 GMT' }))).kind).toBe('ok');
  });

  it('a 304 to a request that sent no validators is an error, not an unchanged feed', async () => {
    // Before: "not modified", recorded as a success: a feed never fetched once stayed "ok" with no items, for ever.
    expect(await failure(req('/always-304.xml'))).toMatchObject({ code: 'http-status', status: 304 });
    expect((await fetchFeed(req('/always-304.xml', { etag: '"v1"' }))).kind).toBe('not-modified');
  });

  it.each(['/gzip.xml', '/deflate.xml', '/raw-deflate.xml', '/br.xml', '/gzip-br.xml', '/gzip-identity.xml'])('%s is decompressed', async (path) => {
    const r = await fetchFeed(req(path));
    expect(r.kind === 'ok' && r.body.equals(feedBody)).toBe(true);
  });

  it('a body that is not what Content-Encoding says: decompress error', async () => {
    expect((await failure(req('/bad-gzip.xml'))).code).toBe('decompress');
  });

  it('a 50 MB body is refused at the 5 MB cap, announced or not, and the download stops', async () => {
    expect((await failure(req('/huge.xml'))).code).toBe('too-large');
    const e = await failure(req('/huge-chunked.xml'));
    expect(e.code).toBe('too-large');
    // The server could not push the whole 50 MB: the connection was dropped soon after the cap.
    await new Promise((r) => setTimeout(r, 200));
    expect(srv.bytesSent.get('/huge-chunked.xml')!).toBeLessThan(30 * 1024 * 1024);
  });

  it('a connection dropped in the middle of a gzip body fails at once as a network error, not at the timeout', async () => {
    const started = Date.now();
    const e = await failure(req('/gzip-cut.xml', { timeoutMs: 4000 }));
    expect(e.code).toBe('network');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('the endless body of a redirect or an error is not downloaded', async () => {
    expect((await fetchFeed(req('/redirect-flood'))).kind).toBe('ok');
    expect((await failure(req('/error-flood'))).code).toBe('http-status');
    // Drained, both went on downloading after fetchFeed returned (gigabytes in a second from a local server).
    await new Promise((r) => setTimeout(r, 500));
    expect(srv.bytesSent.get('/redirect-flood')!).toBeLessThan(20 * 1024 * 1024);
    expect(srv.bytesSent.get('/error-flood')!).toBeLessThan(20 * 1024 * 1024);
  });

  it('a gzip bomb is stopped at the cap on the decompressed size', async () => {
    expect((await failure(req('/gzip-bomb.xml', { maxBytes: 1024 * 1024 }))).code).toBe('too-large');
    expect((await failure(req('/gzip-gzip-bomb.xml', { maxBytes: 1024 * 1024 }))).code).toBe('too-large');
    // Each coding is a decoder to run: a list longer than any server applies is refused, not built.
    expect((await failure(req('/long-chain.xml'))).code).toBe('decompress');
  });

  it('a server that accepts the connection but never completes the TLS handshake hits the connect timeout', async () => {
    const sockets: import('node:net').Socket[] = [];
    const silent = createNetServer((sock) => void sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as AddressInfo).port;
      const e = await failure(req('/', { url: `https://127.0.0.1:${port}/feed.xml`, connectTimeoutMs: 300, timeoutMs: 10_000 }));
      expect(e.code).toBe('connect-timeout');
    } finally {
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('a slow-loris server is cut off by the whole-exchange timeout', async () => {
    const e = await failure(req('/slow.xml', { timeoutMs: 800 }));
    expect(e.code).toBe('timeout');
  });

  it('a redirect loop and a chain longer than 5 redirects are refused', async () => {
    expect((await failure(req('/loop-a'))).code).toBe('redirect-loop');
    expect((await failure(req('/hop0'))).code).toBe('too-many-redirects');
    expect((await fetchFeed(req('/hop2'))).kind).toBe('ok');
  });

  it.each([
    [301, 'https://a.test/feed', 'https://b.test/feed', true],
    [308, 'http://a.test/feed', 'https://a.test/feed', true],
    [302, 'https://a.test/feed', 'https://a.test/new', false],
    [307, 'https://a.test/feed', 'https://a.test/new', false],
    // Followed, but not stored: later polls would go out in clear text.
    [301, 'https://a.test/feed', 'http://a.test/feed', false],
    [308, 'https://a.test/feed', 'http://mirror.test/feed', false],
  ])('a %i from %s to %s changes the stored URL: %s', (status, from, to, permanent) => {
    expect(isPermanentHop(status, new URL(from), new URL(to))).toBe(permanent);
  });

  it('301 and 308 all the way: the new URL is permanent; a 302 on the way keeps the old one', async () => {
    expect(await fetchFeed(req('/moved'))).toMatchObject({ kind: 'ok', finalUrl: srv.url('/new-home.xml'), permanentUrl: srv.url('/new-home.xml') });
    expect(await fetchFeed(req('/temporary'))).toMatchObject({ kind: 'ok', finalUrl: srv.url('/new-home.xml'), permanentUrl: null });
  });

  it('410 Gone is its own error; 503 carries Retry-After for the scheduler', async () => {
    expect(await failure(req('/gone.xml'))).toMatchObject({ code: 'gone', status: 410 });
    expect(await failure(req('/busy.xml'))).toMatchObject({ code: 'http-status', status: 503, cache: { retryAfter: '7200' } });
  });

  it('a WebSub hub advertised in the Link header is returned', async () => {
    const r = await fetchFeed(req('/hub-header.xml'));
    expect(r.kind === 'ok' && r.hubLinks).toEqual([{ rel: 'hub', href: 'https://hub.example.test/' }, { rel: 'self', href: 'https://f.example.test/feed' }]);
  });

  it('non-http schemes and broken URLs are refused', async () => {
    expect((await failure(req('/', { url: 'file:///etc/passwd' }))).code).toBe('bad-url');
    expect((await failure(req('/', { url: 'not a url' }))).code).toBe('bad-url');
  });
});

describe('SSRF guard (on by default)', () => {
  let other: Local;
  beforeAll(async () => {
    // A second server on 127.0.0.2 plays the "public" site; the guard lets only that address through.
    other = await startServer('127.0.0.2');
    other.on('/feed.xml', (_q, res) => void res.writeHead(200).end(feedBody));
    other.on('/to-loopback', (_q, res) => void res.writeHead(302, { location: srv.url('/new-home.xml') }).end());
    other.on('/to-localhost', (_q, res) => void res.writeHead(302, { location: srv.url('/new-home.xml').replace('127.0.0.1', 'localhost') }).end());
    other.on('/to-metadata', (_q, res) => void res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end());
  });
  afterAll(async () => other.close());
  const guarded = (url: string) => ({ ...req('/'), url, allowPrivate: false, allowAddress: (a: string) => a === '127.0.0.2' });

  it('refuses loopback, private and metadata addresses, literal or resolved', async () => {
    for (const url of [
      srv.url('/new-home.xml'), 'http://10.0.0.1/feed', 'http://169.254.169.254/latest/meta-data/', 'http://[::1]/feed', srv.url('/new-home.xml').replace('127.0.0.1', 'localhost'),
      // IPv6 forms that reach an IPv4 address, which the URL parser writes in hex ([64:ff9b::a9fe:a9fe]).
      'http://[::ffff:127.0.0.1]/feed', 'http://[64:ff9b::169.254.169.254]/latest/meta-data/', 'http://[64:ff9b::10.0.0.1]/feed', 'http://[::127.0.0.1]/feed', 'http://[2002:a00:1::1]/feed',
    ]) {
      const e = await failure(guarded(url));
      expect(e.code, url).toBe('forbidden-address');
    }
  });

  it('an IPv6 address is judged by the IPv4 address it carries, however it is written', () => {
    for (const a of ['::ffff:7f00:1', '::ffff:127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b::169.254.169.254', '64:ff9b::a00:1', '::7f00:1', '::ffff:0:a00:1', '2002:c0a8:101::1', '64:ff9b:1::808:808', 'fe80::1%eth0']) {
      expect(isForbiddenAddress(a), a).toBe(true);
    }
    for (const a of ['::ffff:808:808', '64:ff9b::808:808', '2002:808:808::1', '2606:4700:4700::1111']) expect(isForbiddenAddress(a), a).toBe(false);
  });

  it('checks every redirect hop: a public feed redirecting to 127.0.0.1, localhost or 169.254.169.254 is refused', async () => {
    const before = srv.requests.length;
    expect((await fetchFeed(guarded(other.url('/feed.xml')))).kind).toBe('ok');
    for (const path of ['/to-loopback', '/to-localhost', '/to-metadata']) {
      const e = await failure(guarded(other.url(path)));
      expect(e.code, path).toBe('forbidden-address');
      expect(e.message).toContain('HERALD_ALLOW_PRIVATE_FEEDS');
    }
    // The loopback server never saw a request.
    expect(srv.requests.length).toBe(before);
  });
});
