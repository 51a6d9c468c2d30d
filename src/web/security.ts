import fastifyCsrf from '@fastify/csrf-protection';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RedisClient } from '../store/redis.ts';
import { hashToken } from '../store/subscribers.ts';
import { requestToken, type WebDeps } from './context.ts';
import { HttpError } from './http-error.ts';

export interface SecuritySettings {
  writesPerMinute: number;
  emailsPerHour: number;
  /** Alert previews (and alert creations and query changes, which replay too) per subscriber. */
  previewsPerMinute: number;
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const HOUR_MS = 60 * 60 * 1000;

/**
 * CSRF: every state-changing request needs the token from GET /api/csrf in `x-csrf-token`, checked
 * against a secret in an HttpOnly SameSite=Strict cookie (@fastify/csrf-protection), except
 *  - requests with `Authorization: Bearer`: browsers never attach that header on their own, so a forged
 *    cross-site request cannot carry it;
 *  - POST /unsubscribe: RFC 8058 mail clients post there without any page or cookie; the signed link is the
 *    credential and the only effect is to stop email;
 *  - POST /confirm-email: the button of the page an emailed link opens, in whatever browser the mail app
 *    picks; the single-use token in the URL is the credential, and no other site can know it;
 *  - POST /websub/:feedId: a WebSub hub's server-to-server delivery, authenticated by its HMAC signature;
 *  - /admin/*: the operator console (src/web/admin/routes.ts) requires the admin token and a same-origin request.
 */
const LINK_CREDENTIAL_ROUTES = new Set(['/unsubscribe', '/confirm-email', '/websub/:feedId']);
function needsCsrf(req: FastifyRequest): boolean {
  if (!STATE_CHANGING.has(req.method)) return false;
  if (req.headers.authorization?.startsWith('Bearer ')) return false;
  // The operator console has no reader cookie: its own guard checks the admin token, then the request's origin.
  if (req.url === '/admin' || req.url.startsWith('/admin/')) return false;
  return !LINK_CREDENTIAL_ROUTES.has(req.routeOptions.url ?? '');
}

export interface Limiters {
  /** Counts one email about to be sent for each given key (ip, subscriber, address); 429 past the hourly cap. */
  email(req: FastifyRequest, keys: string[]): Promise<void>;
  /** Counts one replay of the recent stories (a preview, or a new or changed alert query); 429 past the cap. */
  replay(req: FastifyRequest, subscriberId: string): Promise<void>;
}

/** Registers helmet, CSRF and the write rate limits on the root instance; returns the email limiter for routes. */
export function registerSecurity(app: FastifyInstance, deps: Pick<WebDeps, 'redis' | 'secureCookies' | 'subscribers'> & { prefix: string }, settings: SecuritySettings): Limiters {
  app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        workerSrc: ["'self'"],
        manifestSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        ...(deps.secureCookies ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    // Links carry capability tokens (manage, confirm, unsubscribe): never leak them to the sites stories link to.
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: deps.secureCookies ? { maxAge: 31536000 } : false,
  });

  app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie',
    cookieOpts: { path: '/', sameSite: 'strict', httpOnly: true, secure: deps.secureCookies, signed: false },
    getToken: (req) => req.headers['x-csrf-token'] as string | undefined,
  });

  app.register(fastifyRateLimit, { global: false, redis: deps.redis, nameSpace: `${deps.prefix}:ratelimit:`, skipOnError: false });

  type Limiter = ReturnType<FastifyInstance['createRateLimit']>;
  // The key each limiter counts under for this request, set just before the limiter runs.
  const limitKey = new WeakMap<FastifyRequest, string>();
  const limiters = new Map<string, Limiter>();
  const limiter = (name: string, max: number, timeWindow: number) => {
    let l = limiters.get(name);
    if (!l) {
      l = app.createRateLimit({ max, timeWindow, keyGenerator: (r) => `${name}:${limitKey.get(r) ?? r.ip}` });
      limiters.set(name, l);
    }
    return l;
  };
  const check = async (name: string, max: number, windowMs: number, req: FastifyRequest, key: string, what: string) => {
    limitKey.set(req, key);
    const r = await limiter(name, max, windowMs)(req);
    // isAllowed only reports the allow list; isExceeded is the verdict.
    if (!r.isAllowed && r.isExceeded) {
      throw new HttpError(429, `too many ${what}: try again in ${r.ttlInSeconds} s`, { retryAfterSeconds: r.ttlInSeconds }, { 'retry-after': String(r.ttlInSeconds) });
    }
  };

  app.addHook('onRequest', (req, reply, done) => {
    if (!needsCsrf(req)) {
      done();
      return;
    }
    // Answers 403 itself (through the error handler) when the secret cookie or the token is missing or wrong.
    app.csrfProtection(req, reply, done);
  });

  app.addHook('preHandler', async (req) => {
    if (!STATE_CHANGING.has(req.method)) return;
    // A WebSub hub pushes every update of a feed from one address: its deliveries are signed feed content,
    // bounded by the body limit, not a reader's writes.
    if (req.routeOptions.url === '/websub/:feedId') return;
    // RFC 8058 one-click POSTs come from the mail provider's servers, a few addresses for all its users: counted per
    // address, the readers past the first 60 a minute got 429 and stayed subscribed (providers do not retry). The
    // signed link is the credential and its only effect is to stop email, so there is nothing to limit.
    if (req.routeOptions.url === '/unsubscribe') return;
    await check('writes-ip', settings.writesPerMinute, 60_000, req, req.ip, 'changes from this address');
    const token = requestToken(req);
    const id = token ? await deps.subscribers.idForToken(token) : null;
    if (id) await check('writes-sub', settings.writesPerMinute, 60_000, req, id, 'changes for this subscriber');
  });

  return {
    async email(req, keys) {
      // Addresses are counted by hash: the rate-limit keys in Redis should not list readers' addresses.
      for (const key of [`ip:${req.ip}`, ...keys]) await check('emails', settings.emailsPerHour, HOUR_MS, req, hashToken(key), 'emails');
    },
    async replay(req, subscriberId) {
      // A replay costs far more than any other write (thousands of stories matched): its own, lower cap.
      await check('previews', settings.previewsPerMinute, 60_000, req, subscriberId, 'previews for this subscriber');
    },
  };
}
