import type { FastifyPluginAsync } from 'fastify';
import type { WebContext } from '../context.ts';

export const inboxRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;

  app.get('/api/me/inbox', async (req) => ({ items: await deps.ledger.inbox(await ctx.authenticate(req)) }));

  app.delete('/api/me/inbox', async (req, reply) => {
    await deps.ledger.clearInbox(await ctx.authenticate(req));
    return reply.code(204).send();
  });
};
