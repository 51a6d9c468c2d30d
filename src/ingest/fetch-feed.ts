/** HTTP side of polling: one conditional GET with a time limit and a size cap. */

export interface FetchRequest {
  url: string;
  etag: string | null;
  lastModified: string | null;
  timeoutMs: number;
  maxBytes: number;
  userAgent: string;
}

export type FetchResult =
  | { kind: 'not-modified'; status: 304 }
  | { kind: 'ok'; status: number; body: Buffer; contentType: string | null; etag: string | null; lastModified: string | null; finalUrl: string };

export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    readonly code: 'http-status' | 'timeout' | 'too-large' | 'network',
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
  }
}

export async function fetchFeed(req: FetchRequest): Promise<FetchResult> {
  const headers: Record<string, string> = {
    'user-agent': req.userAgent,
    accept: 'application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5',
  };
  if (req.etag) headers['if-none-match'] = req.etag;
  if (req.lastModified) headers['if-modified-since'] = req.lastModified;
  const signal = AbortSignal.timeout(req.timeoutMs);
  let res: Response;
  try {
    res = await fetch(req.url, { headers, signal, redirect: 'follow' });
  } catch (err) {
    throw toFetchError(err, req);
  }
  if (res.status === 304) return { kind: 'not-modified', status: 304 };
  if (res.status < 200 || res.status >= 300) {
    await res.body?.cancel();
    throw new FetchError('http-status', `HTTP ${res.status} ${res.statusText} from ${req.url}`, res.status);
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > req.maxBytes) {
    await res.body?.cancel();
    throw new FetchError('too-large', `body of ${declared} bytes exceeds the ${req.maxBytes}-byte limit`, res.status);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    // Stream and count: Content-Length may be absent or lie.
    for await (const chunk of res.body ?? []) {
      size += chunk.byteLength;
      if (size > req.maxBytes) {
        await res.body?.cancel().catch(() => undefined);
        throw new FetchError('too-large', `body exceeds the ${req.maxBytes}-byte limit`, res.status);
      }
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    throw toFetchError(err, req);
  }
  return {
    kind: 'ok',
    status: res.status,
    body: Buffer.concat(chunks),
    contentType: res.headers.get('content-type'),
    etag: res.headers.get('etag'),
    lastModified: res.headers.get('last-modified'),
    finalUrl: res.url || req.url,
  };
}

function toFetchError(err: unknown, req: FetchRequest): FetchError {
  if (err instanceof FetchError) return err;
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') {
    return new FetchError('timeout', `no complete answer from ${req.url} within ${req.timeoutMs} ms`);
  }
  const detail = e.cause?.code ?? e.cause?.message ?? e.message;
  return new FetchError('network', `cannot reach ${req.url}: ${detail}`);
}
