import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Topic } from '../config/catalog.ts';
import { verifyUnsubscribe } from '../deliver/email/unsubscribe-link.ts';
import { renderDeliveryMetrics } from '../deliver/metrics.ts';
import { rescheduleDigest } from '../digest/send-digest.ts';
import type { Clock, Follow } from '../model.ts';
import type { DigestStore } from '../store/digests.ts';
import type { Ledger } from '../store/ledger.ts';
import type { SubscriberStore } from '../store/subscribers.ts';
import { ClickBody, CreateSubscriberBody, describeZodError, PushSubscriptionBody, SettingsBody } from './schemas.ts';
import { renderUnsubscribePage } from './unsubscribe-page.ts';

export interface WebDeps {
  redis: Redis;
  subscribers: SubscriberStore;
  digests: DigestStore;
  ledger: Ledger;
  topics: readonly Topic[];
  vapidPublicKey: string;
  signingKey: string;
  /** Cookies get the Secure flag when the public URL is https. */
  secureCookies: boolean;
  clock: Clock;
  log: Logger;
}

export const TOKEN_COOKIE = 'herald_token';
const publicDir = fileURLToPath(new URL('./public/', import.meta.url));
const ONE_YEAR_SECONDS = 365 * 24 * 60 * 60;

class HttpError extends Error {
  constructor(readonly statusCode: number, message: string, readonly extra: Record<string, unknown> = {}) {
    super(message);
  }
}

function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    const d = describeZodError(parsed.error);
    throw new HttpError(400, d.error, { fields: d.fields });
  }
  return parsed.data;
}

export function buildWebApp(deps: WebDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.log.child({ role: 'web' }) as FastifyBaseLogger, bodyLimit: 64 * 1024 });
  const topicIds = new Set(deps.topics.map((t) => t.id));

  app.register(fastifyCookie);
  app.register(fastifyFormbody);
  app.register(fastifyStatic, { root: publicDir, index: ['index.html'] });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).send({ error: err.message, ...err.extra });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'request failed');
    return reply.code(status).send({ error: status === 500 ? 'internal error' : err.message });
  });

  const authenticate = async (req: FastifyRequest): Promise<string> => {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7) : req.cookies[TOKEN_COOKIE];
    if (!token) throw new HttpError(401, 'not signed in: save your settings first, or open your "manage your alerts" link');
    const id = await deps.subscribers.idForToken(token);
    if (!id) throw new HttpError(403, 'this alert link or cookie is not valid any more');
    return id;
  };

  const checkTopics = (topics: Record<string, Follow> | undefined) => {
    for (const id of Object.keys(topics ?? {})) {
      if (!topicIds.has(id)) throw new HttpError(400, `invalid request: topics.${id}: unknown topic`, { fields: [{ field: `topics.${id}`, message: 'unknown topic' }] });
    }
  };

  const settingsView = async (id: string) => {
    const [who, follows, devices, nextDigestAt, digestState] = await Promise.all([
      deps.subscribers.forDelivery(id),
      deps.subscribers.follows(id),
      deps.subscribers.pushSubscriptions(id),
      deps.digests.dueAt(id),
      deps.digests.state(id),
    ]);
    if (!who) throw new HttpError(404, 'subscriber not found');
    const sub = who.subscriber;
    return {
      id: sub.id,
      email: sub.email,
      timeZone: sub.timeZone,
      digestTime: sub.digestTime,
      topics: follows,
      devices: devices.map((d) => ({ id: d.id, service: new URL(d.endpoint).host, createdAt: new Date(d.createdAt).toISOString() })),
      nextDigestAt: nextDigestAt === null ? null : new Date(nextDigestAt).toISOString(),
      delivery: who.prefs,
      // Shown on the page: why emails stopped, so the reader can fix the address.
      emailStatus: {
        disabled: who.emailHealth.disabledAt !== null,
        hardBounces: who.emailHealth.hardBounces,
        reason: who.emailHealth.disabledReason,
        disabledAt: who.emailHealth.disabledAt === null ? null : new Date(who.emailHealth.disabledAt).toISOString(),
      },
      digestProblem: digestState.problem,
    };
  };

  const setTokenCookie = (reply: FastifyReply, token: string) =>
    reply.setCookie(TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'lax', secure: deps.secureCookies, path: '/', maxAge: ONE_YEAR_SECONDS });

  app.get('/healthz', async (_req, reply) => {
    try {
      await deps.redis.ping();
      return { status: 'ok' };
    } catch (err) {
      return reply.code(503).send({ status: 'unavailable', error: `Redis does not answer: ${(err as Error).message}` });
    }
  });

  app.get('/api/topics', async () => ({
    topics: deps.topics.map(({ id, name, group, description, parent }) => ({ id, name, group, description, parent: parent ?? null })),
  }));

  app.get('/api/push/public-key', async () => ({ publicKey: deps.vapidPublicKey }));

  app.post('/api/subscribers', async (req, reply) => {
    const body = parseBody(CreateSubscriberBody, req.body);
    checkTopics(body.topics);
    const now = deps.clock.now();
    const { id, token } = await deps.subscribers.create({ email: body.email ?? null, timeZone: body.timeZone, digestTime: body.digestTime }, now);
    if (body.topics) await deps.subscribers.setFollows(id, body.topics);
    if (body.delivery) await deps.subscribers.setPrefs(id, body.delivery, now);
    await rescheduleDigest(deps, id);
    setTokenCookie(reply, token);
    return reply.code(201).send({ ...(await settingsView(id)), token });
  });

  app.get('/api/me', async (req) => settingsView(await authenticate(req)));

  app.put('/api/me', async (req) => {
    const id = await authenticate(req);
    const body = parseBody(SettingsBody, req.body);
    checkTopics(body.topics);
    await deps.subscribers.update(id, { email: body.email, timeZone: body.timeZone, digestTime: body.digestTime }, deps.clock.now());
    if (body.topics) await deps.subscribers.setFollows(id, body.topics);
    if (body.delivery) await deps.subscribers.setPrefs(id, body.delivery, deps.clock.now());
    await rescheduleDigest(deps, id);
    return settingsView(id);
  });

  app.post('/api/me/push-subscriptions', async (req, reply) => {
    const id = await authenticate(req);
    const body = parseBody(PushSubscriptionBody, req.body);
    const record = await deps.subscribers.addPushSubscription(id, body, deps.clock.now());
    return reply.code(201).send({ id: record.id });
  });

  app.delete<{ Params: { deviceId: string } }>('/api/me/push-subscriptions/:deviceId', async (req, reply) => {
    const id = await authenticate(req);
    await deps.subscribers.removePushSubscription(id, req.params.deviceId);
    return reply.code(204).send();
  });

  app.get('/api/me/inbox', async (req) => ({ items: await deps.ledger.inbox(await authenticate(req)) }));

  // Delivery counters per topic and channel (sent, failed, skipped, clicked): aggregates, no reader data.
  app.get('/api/delivery/stats', async () => ({ topics: await deps.ledger.topicStats(deps.topics.map((t) => t.id)) }));

  app.get('/metrics/delivery', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4').send(renderDeliveryMetrics(await deps.ledger.topicStats(deps.topics.map((t) => t.id)))));

  app.post('/api/me/clicks', async (req, reply) => {
    const id = await authenticate(req);
    const body = parseBody(ClickBody, req.body);
    const counted = await deps.ledger.recordClick(id, body.storyId, body.channel, deps.clock.now());
    return reply.code(200).send({ counted });
  });

  app.delete('/api/me/inbox', async (req, reply) => {
    await deps.ledger.clearInbox(await authenticate(req));
    return reply.code(204).send();
  });

  type UnsubQuery = { Querystring: { s?: string; t?: string; sig?: string } };
  const checkUnsubscribe = (q: UnsubQuery['Querystring']) => {
    const { s, t, sig } = q;
    if (!s || !t || !sig || !verifyUnsubscribe(deps.signingKey, s, t, sig)) {
      throw new HttpError(400, 'this unsubscribe link is incomplete or was altered');
    }
    return { subscriberId: s, topic: t };
  };
  const topicLabel = (t: string) => (t === 'all' ? 'all Herald emails' : `${deps.topics.find((x) => x.id === t)?.name ?? t} emails`);

  app.get<UnsubQuery>('/unsubscribe', async (req, reply) => {
    const { topic } = checkUnsubscribe(req.query);
    return reply.type('text/html; charset=utf-8').send(renderUnsubscribePage({ state: 'confirm', what: topicLabel(topic), action: req.url }));
  });

  // RFC 8058: mail clients POST "List-Unsubscribe=One-Click" here; the page's button posts the same form.
  app.post<UnsubQuery>('/unsubscribe', async (req, reply) => {
    const { subscriberId, topic } = checkUnsubscribe(req.query);
    await deps.subscribers.stopEmail(subscriberId, topic, deps.clock.now());
    await rescheduleDigest(deps, subscriberId);
    req.log.info({ subscriber_id: subscriberId, topic }, 'unsubscribed');
    return reply.type('text/html; charset=utf-8').send(renderUnsubscribePage({ state: 'done', what: topicLabel(topic), action: req.url }));
  });

  return app;
}
