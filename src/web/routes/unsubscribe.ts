import type { FastifyPluginAsync } from 'fastify';
import { verifyUnsubscribe } from '../../deliver/email/signed-links.ts';
import { rescheduleDigest } from '../../digest/send-digest.ts';
import type { WebContext } from '../context.ts';
import { HttpError } from '../http-error.ts';
import { renderUnsubscribePage } from '../unsubscribe-page.ts';

type UnsubQuery = { Querystring: { s?: string; t?: string; sig?: string } };

export const unsubscribeRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;
  const checkUnsubscribe = (q: UnsubQuery['Querystring']) => {
    const { s, t, sig } = q;
    if (!s || !t || !sig || !verifyUnsubscribe(deps.signingKey, s, t, sig)) {
      throw new HttpError(400, 'this unsubscribe link is incomplete or was altered');
    }
    return { subscriberId: s, topic: t };
  };
  /** The reader sees the name they know: the catalog topic's, or their own alert's as they named it. */
  const topicLabel = async (subscriberId: string, t: string) => {
    if (t === 'all') return 'all Herald emails';
    const name = deps.topics.find((x) => x.id === t)?.name ?? (await deps.alerts.customs.get(subscriberId, t))?.name ?? t;
    return `${name} emails`;
  };

  app.get<UnsubQuery>('/unsubscribe', async (req, reply) => {
    const { subscriberId, topic } = checkUnsubscribe(req.query);
    return reply.type('text/html; charset=utf-8').send(renderUnsubscribePage({ state: 'confirm', what: await topicLabel(subscriberId, topic), action: req.url }));
  });

  // RFC 8058: mail clients POST "List-Unsubscribe=One-Click" here; the page's button posts the same form.
  app.post<UnsubQuery>('/unsubscribe', async (req, reply) => {
    const { subscriberId, topic } = checkUnsubscribe(req.query);
    await deps.subscribers.stopEmail(subscriberId, topic, deps.clock.now());
    await rescheduleDigest(deps, subscriberId);
    req.log.info({ subscriber_id: subscriberId, topic }, 'unsubscribed');
    return reply.type('text/html; charset=utf-8').send(renderUnsubscribePage({ state: 'done', what: await topicLabel(subscriberId, topic), action: req.url }));
  });
};
