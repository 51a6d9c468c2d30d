import type { FastifyPluginAsync } from 'fastify';
import type { WebContext } from '../context.ts';

export const healthRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  app.get('/healthz', async (_req, reply) => {
    try {
      await ctx.deps.redis.ping();
      return { status: 'ok' };
    } catch (err) {
      return reply.code(503).send({ status: 'unavailable', error: `Redis does not answer: ${(err as Error).message}` });
    }
  });
};
