import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { pipeline, Transform, type Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate, createInflateRaw } from 'node:zlib';
import { checkLiteralHost, ForbiddenAddressError, guardedLookup, type AddressException } from './address-guard.ts';

/** HTTP side of polling: one conditional GET with redirects, decompression, time limits and a size cap. */

export interface FetchRequest {
  url: string;
  etag: string | null;
  lastModified: string | null;
  /**
   * The URL whose answer gave the validators (the final URL of that fetch); they are sent to the hop with this
   * URL. Unknown (state written before it was kept): the first hop, as before.
   */
  validatorsUrl?: string | null;
  /** Limit for the TCP (and TLS) connection of each hop. */
  connectTimeoutMs: number;
  /** Limit for the whole exchange, redirects and body included: a slow-loris server cannot hold a worker. */
  timeoutMs: number;
  maxBytes: number;
  userAgent: string;
  /** Tests (and operators polling an intranet) allow loopback and private addresses; off by default. */
  allowPrivate: boolean;
  /** Addresses let through although private (tests); never set from configuration. */
  allowAddress?: AddressException;
  maxRedirects?: number;
  agents?: { http: HttpAgent; https: HttpsAgent };
}

/** Caching and rate-limit headers the scheduler reads. */
export interface CacheHeaders {
  cacheControl: string | null;
  age: string | null;
  expires: string | null;
  retryAfter: string | null;
}

interface Common {
  status: number;
  finalUrl: string;
  /** Set when every redirect hop was permanent (301/308): the feed's stored URL should become this. */
  permanentUrl: string | null;
  cache: CacheHeaders;
}
export type FetchResult =
  /** `etag`, `lastModified`: validators the 304 itself names (null when it names none), which replace the stored ones. */
  | (Common & { kind: 'not-modified'; etag: string | null; lastModified: string | null })
  | (Common & { kind: 'ok'; body: Buffer; contentType: string | null; etag: string | null; lastModified: string | null; hubLinks: { rel: string; href: string }[] });

export type FetchErrorCode =
  | 'bad-url' | 'forbidden-address' | 'connect-timeout' | 'timeout' | 'too-large' | 'network'
  | 'too-many-redirects' | 'redirect-loop' | 'gone' | 'http-status' | 'decompress';

export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    readonly code: FetchErrorCode,
    message: string,
    readonly status: number | null = null,
    readonly cache: CacheHeaders | null = null,
  ) {
    super(message);
  }
}

const defaultAgents = {
  http: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
  https: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
};
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Whether a redirect hop may change the feed's stored URL: a 301 or 308 (RFC 9110 §15.4.2, §15.4.9), and not
 * from https to http. A downgrade is followed for this fetch, but stored it would send every later poll, and the
 * conditional-GET validators with it, in clear text on the word of one answer.
 */
export function isPermanentHop(status: number, from: URL, to: URL): boolean {
  return (status === 301 || status === 308) && !(from.protocol === 'https:' && to.protocol === 'http:');
}

export async function fetchFeed(req: FetchRequest): Promise<FetchResult> {
  const deadline = Date.now() + req.timeoutMs;
  const maxRedirects = req.maxRedirects ?? 5;
  const seen = new Set<string>();
  let url = req.url;
  let permanent = true;
  for (let hop = 0; ; hop++) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new FetchError('bad-url', `not a valid URL: ${url}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FetchError('bad-url', `only http and https URLs can be polled, not ${u.protocol} (${url})`);
    seen.add(u.toString());
    // Validators belong to the URL that gave them: behind a temporary redirect that is the target, and sent only
    // to the first hop (the redirector) they never reached it, so such a feed was downloaded in full every poll.
    const withValidators = req.validatorsUrl ? u.toString() === req.validatorsUrl : hop === 0;
    const res = await requestOnce(u, req, deadline, withValidators);
    const status = res.statusCode ?? 0;
    const cache = cacheHeaders(res);
    if (REDIRECTS.has(status)) {
      discard(res);
      const location = res.headers.location;
      if (!location) throw new FetchError('http-status', `HTTP ${status} redirect without a Location from ${u}`, status, cache);
      if (hop >= maxRedirects) throw new FetchError('too-many-redirects', `more than ${maxRedirects} redirects starting at ${req.url}`, status, cache);
      const next = new URL(location, u).toString();
      if (seen.has(next)) throw new FetchError('redirect-loop', `redirect loop: ${u} leads back to ${next}`, status, cache);
      permanent &&= isPermanentHop(status, u, new URL(next));
      url = next;
      continue;
    }
    const finalUrl = u.toString();
    const common: Common = { status, finalUrl, permanentUrl: hop > 0 && permanent ? finalUrl : null, cache };
    if (status === 304) {
      discard(res);
      // RFC 9110 §15.4.5: a 304 answers a conditional request. To a plain GET it says nothing about the feed, and
      // taken as "unchanged" it recorded a success: a feed never fetched once showed "ok" with no items, for ever.
      if (!(withValidators && (req.etag || req.lastModified))) {
        throw new FetchError('http-status', `HTTP 304 Not Modified from ${finalUrl} to a request without validators (ETag or Last-Modified): the server sends no feed`, status, cache);
      }
      return { ...common, kind: 'not-modified', etag: header(res, 'etag'), lastModified: header(res, 'last-modified') };
    }
    if (status === 410) {
      discard(res);
      throw new FetchError('gone', `HTTP 410 Gone from ${finalUrl}: the publisher removed this feed`, status, cache);
    }
    if (status < 200 || status >= 300) {
      discard(res);
      throw new FetchError('http-status', `HTTP ${status} ${res.statusMessage ?? ''} from ${finalUrl}`.trim(), status, cache);
    }
    const body = await readBody(res, u, req, deadline);
    return {
      ...common,
      kind: 'ok',
      body,
      contentType: header(res, 'content-type'),
      etag: header(res, 'etag'),
      lastModified: header(res, 'last-modified'),
      hubLinks: parseLinkHeader(header(res, 'link')),
    };
  }
}

/** Past this, the body of an answer Herald does not read is not worth a reusable connection. */
const DISCARD_LIMIT = 64 * 1024;

/**
 * Drops the body of an answer Herald does not read (a redirect, a 304, an error). A short one is drained, so
 * the keep-alive connection can serve the next request; a longer one closes the connection. Drained
 * unbounded, a redirect or a 500 with an endless body kept downloading after fetchFeed had returned, past
 * the size cap and until the deadline: gigabytes a poll from a local server.
 */
function discard(res: IncomingMessage) {
  if (Number(res.headers['content-length'] ?? 0) > DISCARD_LIMIT) return void res.destroy();
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    size += chunk.byteLength;
    if (size > DISCARD_LIMIT) res.destroy();
  });
  res.resume();
}

const header = (res: IncomingMessage, name: string) => {
  const v = res.headers[name];
  return Array.isArray(v) ? v.join(', ') : (v ?? null);
};
const cacheHeaders = (res: IncomingMessage): CacheHeaders => ({
  cacheControl: header(res, 'cache-control'),
  age: header(res, 'age'),
  expires: header(res, 'expires'),
  retryAfter: header(res, 'retry-after'),
});

/** RFC 8288 Link header entries (WebSub hubs may be advertised there instead of in the feed). */
export function parseLinkHeader(value: string | null): { rel: string; href: string }[] {
  if (!value) return [];
  const out: { rel: string; href: string }[] = [];
  for (const m of value.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]+)*)/g)) {
    const rel = /;\s*rel\s*=\s*"?([^";]+)"?/i.exec(m[2] ?? '')?.[1];
    if (rel) for (const r of rel.toLowerCase().split(/\s+/)) out.push({ rel: r, href: m[1]! });
  }
  return out;
}

function requestOnce(u: URL, req: FetchRequest, deadline: number, withValidators: boolean): Promise<IncomingMessage> {
  try {
    checkLiteralHost(u.hostname, req.allowPrivate, req.allowAddress);
  } catch (err) {
    return Promise.reject(new FetchError('forbidden-address', `refusing ${u}: ${(err as Error).message} (set HERALD_ALLOW_PRIVATE_FEEDS=true to allow)`));
  }
  const headers: Record<string, string> = {
    'user-agent': req.userAgent,
    accept: 'application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5',
    'accept-encoding': 'gzip, deflate, br',
  };
  // RFC 9110 §13.2.2: a server evaluates If-None-Match first and ignores If-Modified-Since when it is present;
  // sending both lets servers that only know one of them answer 304.
  if (withValidators && req.etag) headers['if-none-match'] = req.etag;
  if (withValidators && req.lastModified) headers['if-modified-since'] = req.lastModified;
  const agents = req.agents ?? defaultAgents;
  const isHttps = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const r = (isHttps ? httpsRequest : httpRequest)(u, {
      method: 'GET',
      headers,
      agent: isHttps ? agents.https : agents.http,
      lookup: guardedLookup(req.allowPrivate, req.allowAddress) as never,
    });
    const remaining = deadline - Date.now();
    const total = setTimeout(() => r.destroy(new FetchError('timeout', `no complete answer from ${u} within ${req.timeoutMs} ms`)), Math.max(0, remaining));
    let connectTimer: NodeJS.Timeout | null = null;
    r.on('socket', (socket) => {
      if (!socket.connecting) return;
      connectTimer = setTimeout(() => r.destroy(new FetchError('connect-timeout', `cannot connect to ${u.host} within ${req.connectTimeoutMs} ms`)), req.connectTimeoutMs);
      socket.once(isHttps ? 'secureConnect' : 'connect', () => connectTimer && clearTimeout(connectTimer));
    });
    r.on('response', (res) => {
      if (connectTimer) clearTimeout(connectTimer);
      // The whole-exchange timer keeps running while the body streams in.
      res.once('close', () => clearTimeout(total));
      res.once('end', () => clearTimeout(total));
      resolve(res);
    });
    r.on('error', (err) => {
      clearTimeout(total);
      if (connectTimer) clearTimeout(connectTimer);
      reject(toFetchError(err, u));
    });
    r.end();
  });
}

async function readBody(res: IncomingMessage, u: URL, req: FetchRequest, deadline: number): Promise<Buffer> {
  const declared = Number(res.headers['content-length'] ?? NaN);
  const encoding = (header(res, 'content-encoding') ?? '').trim().toLowerCase();
  // RFC 9110 §8.4: a list, in the order the codings were applied ("gzip, br" is br over gzip), possibly over
  // several header lines (joined by `header`). Compared whole, any list fell through undecoded and the
  // compressed bytes went to the parser as the feed.
  const codings = encoding.split(',').map((c) => c.trim()).filter((c) => c !== '' && c !== 'identity');
  if (declared > req.maxBytes && codings.length === 0) {
    res.destroy();
    throw new FetchError('too-large', `body of ${declared} bytes exceeds the ${req.maxBytes}-byte limit`, res.statusCode ?? null);
  }
  // Each coding is a decoder with its own buffers: no server applies more than a couple, a hostile list could name thousands.
  if (codings.length > MAX_CODINGS) {
    res.destroy();
    throw new FetchError('decompress', `body declared with ${codings.length} content codings ("${clip(encoding)}"); at most ${MAX_CODINGS} are decoded`, res.statusCode ?? null);
  }
  // An unknown coding (a server's "Content-Encoding: utf-8") is left as it is, as before: the body is often plain.
  const decoders = codings.reverse().map(decoderFor).filter((d): d is Transform => d !== null);
  // pipeline, not pipe: pipe does not pass the response's errors on, so a connection dropped in the middle
  // of a compressed body left the decompressor waiting for the whole-exchange timeout, reported as one.
  const stream: Readable = decoders.length ? (pipeline([res, ...decoders], () => undefined) as unknown as Readable) : res;
  const chunks: Buffer[] = [];
  let size = 0;
  const timer = setTimeout(() => {
    const err = new FetchError('timeout', `body of ${u} not complete within ${req.timeoutMs} ms`);
    res.destroy(err);
    stream.destroy(err);
  }, Math.max(0, deadline - Date.now()));
  try {
    // Count decoded bytes: Content-Length may be absent or lie, and a small gzip body can expand enormously.
    for await (const chunk of stream) {
      size += (chunk as Buffer).byteLength;
      if (size > req.maxBytes) {
        res.destroy();
        stream.destroy();
        throw new FetchError('too-large', `body exceeds the ${req.maxBytes}-byte limit`, res.statusCode ?? null);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof FetchError) throw err;
    // The request's whole-exchange timer and this body timer share one deadline; when the request's fires
    // first, the stream ends with a socket error, but what happened is the same timeout.
    if (Date.now() >= deadline) throw new FetchError('timeout', `body of ${u} not complete within ${req.timeoutMs} ms`);
    const e = err as NodeJS.ErrnoException;
    if (e.code?.startsWith('Z_') || e.code === 'ERR_BROTLI_DECOMPRESSION_FAILED' || /incorrect header|invalid|unexpected end/i.test(e.message)) {
      throw new FetchError('decompress', `body declared "${encoding}" cannot be decompressed: ${e.message}`, res.statusCode ?? null);
    }
    throw toFetchError(err, u);
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}

const MAX_CODINGS = 3;
const clip = (s: string) => (s.length > 80 ? `${s.slice(0, 80)}…` : s);

function decoderFor(coding: string): Transform | null {
  if (coding === 'gzip' || coding === 'x-gzip') return createGunzip();
  if (coding === 'deflate') return createDeflateDecoder();
  if (coding === 'br') return createBrotliDecompress();
  return null;
}

/**
 * "deflate" means zlib-wrapped deflate (RFC 9110 §8.4.1.2), but some servers (old IIS, hand-written PHP) send
 * raw deflate, which browsers and feed readers accept: the first two bytes tell which, a zlib header being
 * compression method 8 with a check value that makes the pair a multiple of 31.
 */
function createDeflateDecoder(): Transform {
  let inner: Transform | null = null;
  let head = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (!inner) {
        head = Buffer.concat([head, chunk]);
        if (head.length < 2) return done();
        const zlibWrapped = (head[0]! & 0x0f) === 8 && ((head[0]! << 8) | head[1]!) % 31 === 0;
        inner = zlibWrapped ? createInflate() : createInflateRaw();
        inner.on('data', (data: Buffer) => this.push(data));
        inner.on('error', (err) => this.destroy(err));
        chunk = head;
      }
      if (inner.write(chunk)) done();
      else inner.once('drain', () => done());
    },
    flush(done) {
      if (!inner) return done(head.length > 0 ? Object.assign(new Error('unexpected end of file'), { code: 'Z_BUF_ERROR' }) : null);
      inner.once('end', () => done());
      inner.end();
    },
    destroy(err, done) {
      inner?.destroy();
      done(err);
    },
  });
}

function toFetchError(err: unknown, u: URL): FetchError {
  if (err instanceof FetchError) return err;
  if (err instanceof ForbiddenAddressError) {
    return new FetchError('forbidden-address', `refusing ${u}: ${err.message} (set HERALD_ALLOW_PRIVATE_FEEDS=true to allow)`);
  }
  const e = err as NodeJS.ErrnoException;
  return new FetchError('network', `cannot reach ${u.host}: ${e.code ?? e.message}`);
}
