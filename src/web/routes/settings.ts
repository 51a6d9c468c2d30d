import type { FastifyPluginAsync } from 'fastify';
import { rescheduleDigest } from '../../digest/send-digest.ts';
import type { WebContext } from '../context.ts';
import { HttpError, parseBody } from '../http-error.ts';
import { CreateSubscriberBody, SettingsBody } from '../schemas.ts';

export async function settingsView(ctx: WebContext, id: string) {
  const { deps } = ctx;
  const [sub, follows, devices, nextDigestAt] = await Promise.all([
    deps.subscribers.get(id),
    deps.subscribers.follows(id),
    deps.subscribers.pushSubscriptions(id),
    deps.digests.dueAt(id),
  ]);
  if (!sub) throw new HttpError(404, 'subscriber not found');
  return {
    id: sub.id,
    email: sub.email,
    timeZone: sub.timeZone,
    digestTime: sub.digestTime,
    topics: follows,
    devices: devices.map((d) => ({ id: d.id, service: new URL(d.endpoint).host, createdAt: new Date(d.createdAt).toISOString() })),
    nextDigestAt: nextDigestAt === null ? null : new Date(nextDigestAt).toISOString(),
  };
}

export const settingsRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;

  app.post('/api/subscribers', async (req, reply) => {
    const body = parseBody(CreateSubscriberBody, req.body);
    ctx.checkTopics(body.topics);
    const now = deps.clock.now();
    const { id, token } = await deps.subscribers.create({ email: body.email ?? null, timeZone: body.timeZone, digestTime: body.digestTime }, now);
    if (body.topics) await deps.subscribers.setFollows(id, body.topics);
    await rescheduleDigest(deps, id);
    ctx.setTokenCookie(reply, token);
    return reply.code(201).send({ ...(await settingsView(ctx, id)), token });
  });

  app.get('/api/me', async (req) => settingsView(ctx, await ctx.authenticate(req)));

  app.put('/api/me', async (req) => {
    const id = await ctx.authenticate(req);
    const body = parseBody(SettingsBody, req.body);
    ctx.checkTopics(body.topics);
    await deps.subscribers.update(id, { email: body.email, timeZone: body.timeZone, digestTime: body.digestTime }, deps.clock.now());
    if (body.topics) await deps.subscribers.setFollows(id, body.topics);
    await rescheduleDigest(deps, id);
    return settingsView(ctx, id);
  });
};
