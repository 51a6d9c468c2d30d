import { Pool, util } from 'undici';
import webpush from 'web-push';
import { createPushEncryptor } from './encrypt.ts';
import type { KeyAgreement } from './key-agreement.ts';
import { systemClock, type Clock, type PushSubscriptionRecord } from '../../model.ts';
import { createOriginLimiter, realSleep } from '../rate-limit.ts';

export interface VapidKeys {
  publicKey: string;
  privateKey: string;
  subject: string;
  /**
   * Pairs used before a rotation, newest first: subscriptions made with one of them keep being signed with
   * it. Subscriptions stored before Herald recorded the key are taken to be made with the oldest (last) one.
   */
  previous?: readonly { publicKey: string; privateKey: string }[];
}

export type VapidPair = { publicKey: string; privateKey: string };

/**
 * The key pair that signs for one subscription: the one it was made with. Null when that key is no longer
 * configured, which no push service would accept.
 */
export function vapidKeyFor(vapid: VapidKeys, sub: Pick<PushSubscriptionRecord, 'vapidPublicKey'>): VapidPair | null {
  const previous = vapid.previous ?? [];
  if (!sub.vapidPublicKey) return previous[previous.length - 1] ?? vapid;
  if (sub.vapidPublicKey === vapid.publicKey) return vapid;
  return previous.find((p) => p.publicKey === sub.vapidPublicKey) ?? null;
}

export type PushOutcome =
  | { kind: 'sent'; status: number }
  /** The subscription no longer exists at the push service: remove it. */
  | { kind: 'gone'; status: number }
  /** 413: the payload is too large for this service; the caller trims it and tries once more. */
  | { kind: 'too-large'; status: number }
  /** `unsent`: no request was made (the dispatcher is shutting down): no answer to count. */
  | { kind: 'retry'; status: number | null; reason: string; retryAfterMs: number | null; unsent?: true }
  | { kind: 'permanent'; status: number; reason: string };

export interface PushSendOptions {
  ttlSeconds: number;
  urgency: 'normal' | 'high';
  topic?: string;
}

export interface PushSender {
  send(sub: PushSubscriptionRecord, payload: string, opts: PushSendOptions): Promise<PushOutcome>;
  /** Counters for operators and the benchmark. */
  stats(): { requests: number; vapidSignatures: number };
  /** Shutdown begins: sends that would wait for the service (a 429 pause) answer 'retry' at once, unsent. */
  stopWaiting?(): void;
  close(): void;
}

export function parseRetryAfter(raw: string | string[] | undefined, now: number): number | null {
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (!v) return null;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const date = Date.parse(v);
  return Number.isFinite(date) ? Math.max(0, date - now) : null;
}

/** Maps a push service's answer to what the dispatcher does next; the one place status codes are read. */
export function classifyPushResponse(status: number, body: string, headers: Record<string, string | string[] | undefined>, now: number): PushOutcome {
  if (status >= 200 && status < 300) return { kind: 'sent', status };
  if (status === 404 || status === 410) return { kind: 'gone', status };
  if (status === 413) return { kind: 'too-large', status };
  if (status === 429 || status >= 500) {
    return { kind: 'retry', status, reason: `push service answered ${status}`, retryAfterMs: parseRetryAfter(headers['retry-after'], now) };
  }
  return { kind: 'permanent', status, reason: `push service answered ${status}${body ? `: ${body.slice(0, 200)}` : ''}` };
}

/** RFC 8030 section 5.4: a Topic is at most 32 characters of the URL-safe base64 alphabet. */
const TOPIC = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * The headers of one push request (RFC 8030 and 8291): what web-push's generateRequestDetails sets for
 * aes128gcm, with the VAPID header signed once per origin (createVapidCache). Throws on a Topic no push
 * service would accept, which is a bug in the caller, not in the subscription.
 */
export function pushRequestHeaders(o: PushSendOptions, authorization: string, bodyBytes: number): Record<string, string> {
  if (o.topic && !TOPIC.test(o.topic)) throw new Error(`push Topic "${o.topic}" is not 1-32 URL-safe base64 characters`);
  return {
    TTL: String(Math.max(0, Math.floor(o.ttlSeconds))),
    Urgency: o.urgency,
    ...(o.topic ? { Topic: o.topic } : {}),
    'Content-Length': String(bodyBytes),
    'Content-Type': 'application/octet-stream',
    'Content-Encoding': 'aes128gcm',
    Authorization: authorization,
  };
}

/** web-push signs for 12 hours; a header is reused until one hour before it expires. */
const VAPID_LIFETIME_S = 12 * 60 * 60;
const VAPID_RENEW_MARGIN_MS = 60 * 60 * 1000;

/**
 * Signs one VAPID JWT per push-service origin (the audience) and reuses it until it nears expiry: a fresh
 * ECDSA signature per message costs most of a dispatcher's CPU at volume.
 */
export function createVapidCache(vapid: VapidKeys, clock: Clock) {
  const cache = new Map<string, { header: string; renewAt: number }>();
  let signatures = 0;
  return {
    header(audience: string, pair: VapidPair = vapid): string {
      const now = clock.now();
      const cacheKey = `${pair.publicKey} ${audience}`;
      const hit = cache.get(cacheKey);
      if (hit && hit.renewAt > now) return hit.header;
      const expiration = Math.floor(now / 1000) + VAPID_LIFETIME_S;
      const h = webpush.getVapidHeaders(audience, vapid.subject, pair.publicKey, pair.privateKey, 'aes128gcm', expiration);
      signatures++;
      cache.set(cacheKey, { header: String(h.Authorization), renewAt: expiration * 1000 - VAPID_RENEW_MARGIN_MS });
      return String(h.Authorization);
    },
    get signatures() {
      return signatures;
    },
  };
}

/** new URL without the throw (URL.parse is Node 22). */
function parseUrl(s: string): URL | null {
  try {
    return new URL(s);
  } catch {
    return null;
  }
}

const MAX_PAUSE_MS = 60_000;

/** Connections kept open to one push service: enough for a dispatcher's concurrency, bounded for the service. */
const CONNECTIONS_PER_ORIGIN = 64;
/** Of an error answer's body, what is kept as the reason. */
const MAX_REASON_BODY = 2000;

export function createWebPushSender(
  vapid: VapidKeys,
  opts: { ca?: string | Buffer; timeoutMs?: number; ratePerSecondPerOrigin?: number; wallClock?: Clock; keyAgreement?: KeyAgreement } = {},
): PushSender {
  // The JWT's expiry is checked by the push service against real time (and by web-push against at most
  // 24 h ahead of it), so signing reads the wall clock even when Herald's clock is injected.
  const wall = opts.wallClock ?? systemClock;
  const vapidCache = createVapidCache(vapid, wall);
  // Rate limiting waits in real time too: it paces real requests, whatever clock the alerts are stamped with.
  const limiter = createOriginLimiter(opts.ratePerSecondPerOrigin ?? 500, wall, realSleep);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  // One keep-alive pool per origin: TLS handshakes are paid once per connection, not per message. undici
  // rather than node:https: a push costs the dispatcher about half the CPU in its HTTP client (measured
  // side by side on loopback HTTPS: 43 against 91 µs per 3.6 KB push), the largest cost after encryption.
  const pools = new Map<string, Pool>();
  const poolFor = (origin: string) => {
    let p = pools.get(origin);
    if (!p) {
      p = new Pool(origin, {
        connections: CONNECTIONS_PER_ORIGIN,
        // Connect (TCP and TLS handshake), the answer's headers and its body each within the timeout.
        connect: { timeout: timeoutMs, ...(opts.ca ? { ca: opts.ca } : {}) },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      pools.set(origin, p);
    }
    return p;
  };
  let requests = 0;
  const encrypt = createPushEncryptor(opts.keyAgreement);

  // undici's callback interface rather than request(): no body stream or async iterator per push, where a
  // push service's answer to a push is a status line and a few headers.
  const post = (pool: Pool, path: string, details: { headers: Record<string, string>; body: Buffer }) =>
    new Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
      let status = 0;
      let rawHeaders: Buffer[] = [];
      let body = '';
      pool.dispatch({ path, method: 'POST', headers: details.headers, body: details.body }, {
        // Required by undici's handler check; nothing to do on connect.
        onConnect() {},
        onError: reject,
        onHeaders(statusCode, headers) {
          status = statusCode;
          rawHeaders = headers;
          return true;
        },
        // Read to the end so the connection is reused; of an error page only the start is kept as the reason.
        onData(chunk) {
          if (body.length < MAX_REASON_BODY) body += chunk.toString('utf8');
          return true;
        },
        onComplete() {
          // Only a refusal's headers are read (Retry-After): a success's are not parsed at all.
          resolve({ status, body: body.slice(0, MAX_REASON_BODY), headers: status >= 300 ? util.parseHeaders(rawHeaders) : {} });
        },
      });
    });

  return {
    async send(sub, payload, o) {
      // A stored endpoint the settings API would refuse today (stored before it checked them, or by hand): only an
      // https URL names a push service. "mailto:x" parses with the origin "null", and signing the VAPID header for
      // it threw out of send, failing the whole alert (the reader's other devices too) on every attempt.
      const url = parseUrl(String(sub.endpoint));
      if (!url || url.protocol !== 'https:') {
        return { kind: 'permanent', status: 0, reason: `invalid push endpoint "${String(sub.endpoint).slice(0, 100)}": not an https URL` };
      }
      const pair = vapidKeyFor(vapid, sub);
      if (!pair) {
        return {
          kind: 'permanent', status: 0,
          reason: `subscription was made with VAPID key ${sub.vapidPublicKey?.slice(0, 12)}…, which is neither VAPID_PUBLIC_KEY nor in VAPID_PREVIOUS_KEYS: add that pair back to VAPID_PREVIOUS_KEYS`,
        };
      }
      const origin = url.origin;
      const authorization = vapidCache.header(origin, pair);
      let body: Buffer;
      try {
        body = encrypt(sub.keys, payload);
      } catch (err) {
        // Keys that cannot be used will never work: permanent for this device, not retried.
        return { kind: 'permanent', status: 0, reason: `invalid subscription keys: ${(err as Error).message}` };
      }
      let headers: Record<string, string>;
      try {
        headers = pushRequestHeaders(o, authorization, body.length);
      } catch (err) {
        return { kind: 'permanent', status: 0, reason: (err as Error).message };
      }
      const stoppedFor = await limiter.take(origin);
      // The dispatcher is stopping and this send would wait (a 429 pause): not sent, the alert goes back to its queue.
      if (stoppedFor > 0) return { kind: 'retry', status: null, reason: 'not sent: the dispatcher is shutting down', retryAfterMs: stoppedFor, unsent: true };
      requests++;
      try {
        const res = await post(poolFor(origin), url.pathname + url.search, { headers, body });
        const outcome = classifyPushResponse(res.status, res.body, res.headers, wall.now());
        if (outcome.kind === 'retry' && outcome.status === 429) {
          limiter.pause(origin, wall.now() + Math.min(MAX_PAUSE_MS, outcome.retryAfterMs ?? 1000));
        }
        return outcome;
      } catch (err) {
        const e = err as Error & { code?: string };
        // "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:443", "UND_ERR_HEADERS_TIMEOUT: Headers Timeout Error"
        const cause = e.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : (e.message || e.code);
        return { kind: 'retry', status: null, reason: `network error: ${cause}`, retryAfterMs: null };
      }
    },
    stats: () => ({ requests, vapidSignatures: vapidCache.signatures }),
    stopWaiting: () => limiter.stop(),
    close() {
      for (const p of pools.values()) void p.destroy();
      pools.clear();
    },
  };
}
