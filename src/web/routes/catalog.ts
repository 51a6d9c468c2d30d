import type { FastifyPluginAsync } from 'fastify';
import type { WebContext } from '../context.ts';

export const catalogRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  app.get('/api/topics', async () => ({
    topics: ctx.deps.topics.map(({ id, name, group, description, parent }) => ({ id, name, group, description, parent: parent ?? null })),
  }));

  app.get('/api/push/public-key', async () => ({ publicKey: ctx.deps.vapidPublicKey }));
};
