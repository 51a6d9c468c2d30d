import type { FastifyPluginAsync } from 'fastify';
import type { WebContext } from '../context.ts';
import { parseBody } from '../http-error.ts';
import { PushSubscriptionBody } from '../schemas.ts';

export const pushSubscriptionRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;

  app.post('/api/me/push-subscriptions', async (req, reply) => {
    const id = await ctx.authenticate(req);
    const body = parseBody(PushSubscriptionBody, req.body);
    const record = await deps.subscribers.addPushSubscription(id, body, deps.clock.now());
    return reply.code(201).send({ id: record.id });
  });

  app.delete<{ Params: { deviceId: string } }>('/api/me/push-subscriptions/:deviceId', async (req, reply) => {
    const id = await ctx.authenticate(req);
    await deps.subscribers.removePushSubscription(id, req.params.deviceId);
    return reply.code(204).send();
  });
};
