import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { createWebContext, type WebDeps } from './context.ts';
import { HttpError } from './http-error.ts';
import { registerSecurity } from './security.ts';
import { identityRoutes } from './routes/identity.ts';
import { catalogRoutes } from './routes/catalog.ts';
import { healthRoutes } from './routes/health.ts';
import { inboxRoutes } from './routes/inbox.ts';
import { pushSubscriptionRoutes } from './routes/push-subscriptions.ts';
import { settingsRoutes } from './routes/settings.ts';
import { unsubscribeRoutes } from './routes/unsubscribe.ts';
import { alertRoutes } from './routes/alerts.ts';
import { deliveryRoutes } from './routes/delivery.ts';
import { digestRoutes } from './routes/digest.ts';

export { TOKEN_COOKIE, type WebDeps } from './context.ts';

export const BODY_LIMIT_BYTES = 16 * 1024;
const publicDir = fileURLToPath(new URL('./public/', import.meta.url));

/**
 * Query parameters whose values are credentials: a sign-in link's token (`t`, also an unsubscribe link's topic,
 * which costs nothing to hide), the signatures and address tags of unsubscribe and digest links, and a WebSub
 * callback's token. Whoever reads the logs must not be able to sign in as a reader or forge a hub's request.
 */
const SECRET_PARAMS = /([?&](?:t|token|sig|a)=)[^&#]*/g;

/** A request URL as the request log shows it: every credential in its query replaced. */
export const loggedUrl = (url: string): string => url.replace(SECRET_PARAMS, '$1[redacted]');

/** Fastify's own request serializer, with the URL's credentials redacted. */
const serializeRequest = (req: { method: string; url: string; host?: string; ip?: string; socket?: { remotePort?: number } }) => ({
  method: req.method,
  url: loggedUrl(req.url),
  host: req.host,
  remoteAddress: req.ip,
  remotePort: req.socket?.remotePort,
});

/** The web app: plugins first, then one route plugin per concern (each in src/web/routes/). */
export function buildWebApp(deps: WebDeps): FastifyInstance {
  const log = deps.log.child({ role: 'web' }, { serializers: { req: serializeRequest } });
  // Settings bodies are a few KB; 16 KB leaves room for a full topic list and refuses anything abusive with 413.
  const app = Fastify({ loggerInstance: log as FastifyBaseLogger, bodyLimit: BODY_LIMIT_BYTES, trustProxy: deps.trustProxy });

  app.register(fastifyCookie);
  app.register(fastifyFormbody);
  const limiters = registerSecurity(app, deps, deps.limits);
  const ctx = createWebContext(deps, limiters);
  app.register(fastifyStatic, { root: publicDir, index: ['index.html'] });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).headers(err.headers).send({ error: err.message, ...err.extra });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'request failed');
    return reply.code(status).send({ error: status === 500 ? 'internal error' : err.message });
  });

  app.register(healthRoutes(ctx));
  app.register(catalogRoutes(ctx));
  app.register(identityRoutes(ctx));
  app.register(settingsRoutes(ctx));
  app.register(pushSubscriptionRoutes(ctx));
  app.register(inboxRoutes(ctx));
  app.register(unsubscribeRoutes(ctx));
  app.register(alertRoutes, { ...deps.alerts, authenticate: ctx.authenticate, limitReplay: limiters.replay });
  app.register(deliveryRoutes(ctx));
  app.register(digestRoutes(ctx));

  return app;
}
