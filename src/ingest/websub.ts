import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import type { FeedStore, WebSubState } from '../store/feeds.ts';
import { checkLiteralHost, guardedLookup } from './address-guard.ts';

/**
 * WebSub (W3C Recommendation) subscriber side: subscribe to a feed's hub, answer its verification of intent,
 * check the HMAC of every delivery. Polling continues as the fallback at a longer interval.
 */
export interface WebSubSettings {
  enabled: boolean;
  /** Public base URL hubs can reach; the callback is `<base>/websub/<feedId>?token=<per subscription>`. */
  callbackBase: string;
  leaseSeconds: number;
  /** Poll interval of a feed with an active subscription. */
  fallbackSeconds: number;
  allowPrivate: boolean;
  userAgent: string;
  timeoutMs: number;
}

/**
 * WebSub §5.1: the callback "SHOULD be an unguessable URL that is unique per subscription". A hub's denial (§5.2)
 * is a bare GET that nothing else authenticates, and the topic is the feed's public URL: only the token tells the
 * hub's GET from anyone's. Derived from the secret, so a renewal (which keeps it) keeps the callback the hub knows.
 */
const callbackToken = (secret: string) => createHash('sha256').update(`websub-callback\n${secret}`).digest('base64url');
export const callbackUrl = (base: string, feedId: string, secret: string) =>
  `${base.replace(/\/+$/, '')}/websub/${encodeURIComponent(feedId)}?token=${callbackToken(secret)}`;

/** Whether a GET reached this subscription's own callback (the token of `callbackUrl`), in constant time. */
export function atCallbackOf(ws: WebSubState, token: unknown): boolean {
  if (typeof token !== 'string') return false;
  const expected = Buffer.from(callbackToken(ws.secret));
  const given = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Renew when less than this share of the lease is left (and at least a day before it ends). */
const RENEW_SHARE = 0.2;
/** A hub that never verified is asked again after this long. */
const PENDING_RETRY_MS = 60 * 60 * 1000;

/** How long before a lease ends the fallback poll that renews it comes: the hub's verification takes a moment. */
const LEASE_RENEW_AHEAD_MS = 10 * 60_000;

/**
 * The wait until the next poll of a feed whose updates arrive by push: the fallback interval, but never later than a
 * little before the lease ends, since that poll is also what renews it (maybeSubscribe). A hub may grant less than
 * was asked (WebSub §5.3): an hour's lease with two-hourly fallback polls lapsed for an hour, in which the hub pushed
 * nothing and nothing polled. Never sooner than `minMs` (the minimum poll interval), however short the lease.
 */
export function fallbackPollMs(fallbackMs: number, minMs: number, leaseUntil: number | null, now: number): number {
  if (leaseUntil === null) return fallbackMs;
  return Math.min(fallbackMs, Math.max(minMs, leaseUntil - now - LEASE_RENEW_AHEAD_MS));
}

export function needsSubscription(current: WebSubState | null, want: { hub: string; topic: string }, now: number, leaseSeconds: number): boolean {
  if (!current || current.hub !== want.hub || current.topic !== want.topic) return true;
  if (current.status === 'pending') return now - current.requestedAt > PENDING_RETRY_MS;
  if (current.status === 'denied') return now - current.requestedAt > 24 * PENDING_RETRY_MS;
  const left = (current.leaseUntil ?? 0) - now;
  return left < Math.max(leaseSeconds * 1000 * RENEW_SHARE, 0) || left < 86_400_000;
}

/**
 * Whether a verification of intent for `topic` is one we wait for: hubs verify right after our (new or renewed)
 * request, which sets requestedAt. Any other is refused: anyone can call the callback with the feed's public URL
 * as topic, and honouring a forged "subscribe" with a ten-year lease would stop every renewal while the hub's
 * real lease ran out. A verification that comes too late is asked for again with the next request.
 */
export function awaitsVerification(ws: WebSubState, topic: string | undefined, now: number): boolean {
  // No lower bound: the web process's clock may be a little behind the poller's that set requestedAt.
  return ws.status !== 'denied' && ws.topic === topic && now - ws.requestedAt <= PENDING_RETRY_MS;
}

/** Asks the hub for a (new or renewed) subscription when needed; the outcome is kept on the feed's state. */
export async function maybeSubscribe(
  deps: { feeds: FeedStore; log: Logger; settings: { websub: WebSubSettings } },
  feedId: string,
  current: WebSubState | null,
  want: { hub: string; topic: string },
  now: number,
): Promise<WebSubState | null> {
  const s = deps.settings.websub;
  if (!s.enabled || !needsSubscription(current, want, now, s.leaseSeconds)) return current;
  // A renewal keeps the secret the hub already signs with until it verifies the new request.
  const secret = current && current.hub === want.hub ? current.secret : randomBytes(24).toString('hex');
  const form = new URLSearchParams({
    'hub.mode': 'subscribe',
    'hub.topic': want.topic,
    'hub.callback': callbackUrl(s.callbackBase, feedId, secret),
    'hub.secret': secret,
    'hub.lease_seconds': String(s.leaseSeconds),
  });
  // Recorded before the request is sent: a hub may verify intent before its answer reaches us, and the callback
  // honours only a request on record (awaitsVerification). A renewal stays active on its current lease meanwhile.
  const renewing = current?.status === 'active' && current.hub === want.hub && current.topic === want.topic;
  const asked: WebSubState = { hub: want.hub, topic: want.topic, secret, status: renewing ? 'active' : 'pending', leaseUntil: renewing ? current.leaseUntil : null, requestedAt: now };
  await deps.feeds.setWebSub(feedId, asked);
  let next: WebSubState;
  try {
    const status = await postForm(want.hub, form.toString(), s);
    // Accepted: the state is left as recorded, or as the hub's verification (already in, perhaps) set it.
    next = status >= 200 && status < 300 ? asked : { ...asked, status: 'denied', leaseUntil: null, reason: `hub answered HTTP ${status}` };
  } catch (err) {
    next = { ...asked, status: 'denied', leaseUntil: null, reason: `hub unreachable: ${(err as Error).message}` };
  }
  if (next !== asked) await deps.feeds.setWebSub(feedId, next);
  deps.log.info({ feed_id: feedId, hub: want.hub, websub_status: next.status, reason: next.reason }, 'websub subscription requested');
  return next;
}

/** Redirects of a subscription request followed before giving up: a hub that moved, not a chain of them. */
const MAX_HUB_REDIRECTS = 3;

function postForm(url: string, body: string, s: WebSubSettings, hops = 0): Promise<number> {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return Promise.reject(new Error(`hub URL must be http(s): ${url}`));
  checkLiteralHost(u.hostname, s.allowPrivate);
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), 'user-agent': s.userAgent },
      lookup: guardedLookup(s.allowPrivate) as never,
      timeout: s.timeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${s.timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      // A hub that moved answers 307 or 308, which keep the method and body (RFC 9110 §15.4.8-9); the WebSub test
      // suite (websub.rocks 203, 204) expects subscribers to follow. Taken as a refusal, the feed waited a day to
      // ask again, at the same address. Each hop is checked by the address guard as the first one was.
      const location = res.headers.location;
      if ((status === 307 || status === 308) && location && hops < MAX_HUB_REDIRECTS) {
        // In a try: a bad Location or a refused address throws here, in an event handler, not in the caller's await.
        try {
          resolve(postForm(new URL(location, u).toString(), body, s, hops + 1));
        } catch (err) {
          reject(err as Error);
        }
        return;
      }
      resolve(status);
    });
    req.end(body);
  });
}

/**
 * Checks `X-Hub-Signature: <algo>=<hex>` (sha1, sha256, sha384 or sha512) over the raw body with the
 * subscription's secret, in constant time.
 */
export function verifySignature(secret: string, body: Uint8Array, header: string | undefined): boolean {
  if (!header) return false;
  const m = /^(sha1|sha256|sha384|sha512)=([0-9a-f]+)$/i.exec(header.trim());
  if (!m) return false;
  const expected = createHmac(m[1]!.toLowerCase(), secret).update(body).digest();
  const given = Buffer.from(m[2]!, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
