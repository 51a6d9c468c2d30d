import type { FastifyPluginAsync } from 'fastify';
import { addressTag, verifyUnsubscribe } from '../../deliver/email/signed-links.ts';
import { rescheduleDigest } from '../../digest/send-digest.ts';
import type { WebContext } from '../context.ts';
import { HttpError } from '../http-error.ts';
import { renderUnsubscribePage } from '../unsubscribe-page.ts';

type UnsubQuery = { Querystring: { s?: string; t?: string; a?: string; sig?: string } };
type StopLink = { subscriberId: string; topic: string; address: string | null };

export const unsubscribeRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;
  // RFC 8058 3.1: a provider's one-click POST may be multipart/form-data, which Fastify refuses (415) without a
  // parser, so the click did nothing. Scoped to this plugin; the body is never read: the signed link says it all.
  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer' }, (_req, _body, done) => done(null, null));
  const checkUnsubscribe = (q: UnsubQuery['Querystring']): StopLink => {
    const { s, t, a, sig } = q;
    if (!s || !t || !sig || !verifyUnsubscribe(deps.signingKey, s, t, a ?? null, sig)) {
      throw new HttpError(400, 'this unsubscribe link is incomplete or was altered');
    }
    return { subscriberId: s, topic: t, address: a ?? null };
  };
  /**
   * A link stops only the emails of the address it was mailed to: once the reader has moved to another one (or
   * removed theirs), an old email's link, clicked or one-click POSTed, must not take the new address's emails away.
   */
  const reachesAddressOnFile = async (link: StopLink) => {
    const current = await deps.subscribers.confirmedEmail(link.subscriberId);
    if (!current) return false;
    // A link mailed before links named their address went to this one only if no change of address was recorded since.
    if (link.address === null) return current.since === null;
    return addressTag(deps.signingKey, current.address) === link.address;
  };
  /** The reader sees the name they know: the catalog topic's, or their own alert's as they named it. */
  const topicLabel = async (subscriberId: string, t: string) => {
    if (t === 'all') return 'all Herald emails';
    const name = deps.topics.find((x) => x.id === t)?.name ?? (await deps.alerts.customs.get(subscriberId, t))?.name ?? t;
    return `${name} emails`;
  };
  const page = async (state: 'confirm' | 'done', link: StopLink, action: string) =>
    renderUnsubscribePage({ state, what: await topicLabel(link.subscriberId, link.topic), action });

  app.get<UnsubQuery>('/unsubscribe', async (req, reply) => {
    const link = checkUnsubscribe(req.query);
    const html = (await reachesAddressOnFile(link)) ? await page('confirm', link, req.url) : renderUnsubscribePage({ state: 'stale' });
    return reply.type('text/html; charset=utf-8').send(html);
  });

  // RFC 8058: mail clients POST "List-Unsubscribe=One-Click" here; the page's button posts the same form.
  app.post<UnsubQuery>('/unsubscribe', async (req, reply) => {
    const link = checkUnsubscribe(req.query);
    const { subscriberId, topic } = link;
    if (!(await reachesAddressOnFile(link))) {
      // 200 all the same: the address the email went to gets no Herald email now, which is what the click asked for.
      req.log.info({ subscriber_id: subscriberId, topic }, 'unsubscribe link of an address no longer on file: nothing changed');
      return reply.type('text/html; charset=utf-8').send(renderUnsubscribePage({ state: 'stale' }));
    }
    await deps.subscribers.stopEmail(subscriberId, topic, deps.clock.now());
    await rescheduleDigest(deps, subscriberId);
    req.log.info({ subscriber_id: subscriberId, topic }, 'unsubscribed');
    return reply.type('text/html; charset=utf-8').send(await page('done', link, req.url));
  });
};
