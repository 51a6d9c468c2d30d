import type { FastifyPluginAsync } from 'fastify';
import { renderDeliveryMetrics } from '../../deliver/metrics.ts';
import { viaOfBundleLedgerId } from '../../deliver/push/send-bundle.ts';
import type { WebContext } from '../context.ts';
import { parseBody } from '../http-error.ts';
import { ClickBody } from '../schemas.ts';
import { isCustomTopicId } from '../../store/custom-topics.ts';

/** The delivery ledger's counters per topic and channel, and the clicks that feed them. */
export const deliveryRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;
  const topicIds = deps.topics.map((t) => t.id);

  // Aggregates only (sent, failed, skipped, clicked per topic and channel): no reader data.
  app.get('/api/delivery/stats', async () => ({ topics: await deps.ledger.topicStats(topicIds) }));

  app.get('/metrics/delivery', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(renderDeliveryMetrics(await deps.ledger.topicStats(topicIds))));

  // The service worker reports a notification click; counted once per alert.
  app.post('/api/me/clicks', async (req) => {
    const id = await ctx.authenticate(req);
    const body = parseBody(ClickBody, req.body);
    const now = deps.clock.now();
    // An own alert is followed by its owner only, so the clicking reader owns it: deleted, it counts no more.
    const topicLive = async (topicId: string) => !isCustomTopicId(topicId) || (await deps.alerts.customs.get(id, topicId)) !== null;
    if (!body.stories) return { counted: await deps.ledger.recordClick(id, body.storyId, body.channel, now, { topicLive }) };
    // A bundle (its notification names its ledger id): its sends were counted on the alerts it carried, under
    // their topics, so its click is too.
    const via = viaOfBundleLedgerId(body.storyId);
    if (via === null) return { counted: false };
    const counted = await Promise.all(body.stories.map((s) => deps.ledger.recordClick(id, s, 'push', now, { via, topicLive })));
    return { counted: counted.some(Boolean) };
  });
};
