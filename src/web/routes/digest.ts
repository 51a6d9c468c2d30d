import type { FastifyPluginAsync } from 'fastify';
import { verifyDigestView } from '../../deliver/email/signed-links.ts';
import { DIGEST_VIEW_TTL_SECONDS } from '../../store/digests.ts';
import type { WebContext } from '../context.ts';
import { renderDigestPage } from '../digest-page.ts';
import { renderMessagePage } from '../pages.ts';

type DigestQuery = { Querystring: { s?: string; d?: string; sig?: string } };

/** A digest's own page, opened from its email with a signed link: no sign-in, nothing else reachable with it. */
export const digestRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;
  app.get<DigestQuery>('/digest', async (req, reply) => {
    const { s, d, sig } = req.query;
    reply.type('text/html; charset=utf-8').header('X-Robots-Tag', 'noindex');
    if (!s || !d || !sig || !verifyDigestView(deps.signingKey, s, d, sig)) {
      return reply.code(400).send(renderMessagePage({ title: 'This link does not work', message: 'This digest link is incomplete or was altered. Open it again from the email.' }));
    }
    const view = await deps.digests.view(s, d);
    if (!view) {
      const days = DIGEST_VIEW_TTL_SECONDS / 86_400;
      return reply.code(404).send(renderMessagePage({ title: 'This digest is no longer kept', message: `Digests can be opened here for ${days} days after they are sent.` }));
    }
    const found = new Map((await deps.stories.getMany(view.groups.flatMap((g) => g.storyIds))).map((st) => [st.id, st]));
    const groups = view.groups.map((g) => {
      const pushed = new Set(g.pushedIds);
      const stories = g.storyIds.flatMap((id) => {
        const st = found.get(id);
        return st ? [{ title: st.title, summary: st.summary, url: st.url, pushed: pushed.has(id) }] : [];
      });
      return { topicId: g.topicId, topicName: g.topicName, stories, gone: g.storyIds.length - stories.length };
    });
    return reply.send(renderDigestPage({ localDate: d, groups }));
  });
};
