import type { FastifyPluginAsync } from 'fastify';
import type { WebContext } from '../context.ts';
import { HttpError, parseBody } from '../http-error.ts';
import { mergeInbox } from '../inbox-view.ts';
import { StoryRefBody } from '../schemas.ts';

export const inboxRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;

  app.get('/api/me/inbox', async (req) => {
    const items = mergeInbox(await deps.ledger.inbox(await ctx.authenticate(req), 100));
    return { items: items.map((i) => ({ ...i, at: new Date(i.at).toISOString() })), unread: items.filter((i) => !i.read).length };
  });

  app.post('/api/me/inbox/read', async (req, reply) => {
    const id = await ctx.authenticate(req);
    const { storyId } = parseBody(StoryRefBody, req.body);
    if (!(await deps.ledger.markRead(id, storyId))) throw new HttpError(404, 'this alert is not in your inbox');
    return reply.code(204).send();
  });

  app.post('/api/me/inbox/read-all', async (req, reply) => {
    await deps.ledger.markAllRead(await ctx.authenticate(req));
    return reply.code(204).send();
  });

  app.delete('/api/me/inbox', async (req, reply) => {
    await deps.ledger.clearInbox(await ctx.authenticate(req));
    return reply.code(204).send();
  });
};
