import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { rescheduleDigest } from '../../digest/send-digest.ts';
import { CONFIRM_TTL_SECONDS, LINK_TTL_SECONDS } from '../../store/subscribers.ts';
import type { WebContext } from '../context.ts';
import { renderConfirmEmail, renderManageLinkEmail } from '../emails.ts';
import { parseBody } from '../http-error.ts';
import { ManageLinkBody, TokenQuery } from '../schemas.ts';
import { renderConfirmPage, renderMessagePage } from '../pages.ts';

/** A fresh id per email; never derived from the token, since Message-IDs end up in mail logs. */
const messageId = (kind: string, subscriberId: string, baseUrl: string) => `<${kind}.${subscriberId}.${randomBytes(8).toString('hex')}@${new URL(baseUrl).hostname}>`;

/** Counts one email against the limits of the client, the subscriber (when known) and the address; 429 past them. */
export async function checkEmailLimit(ctx: WebContext, req: FastifyRequest, subscriberId: string | null, address: string) {
  await ctx.limiters.email(req, [...(subscriberId ? [`sub:${subscriberId}`] : []), `to:${address.toLowerCase()}`]);
}

/**
 * Double opt-in, step one: the address waits as pending and gets the only email it can get before it is
 * confirmed. The caller has counted it with checkEmailLimit before changing anything.
 */
export async function sendConfirmation(ctx: WebContext, req: FastifyRequest, subscriberId: string, address: string): Promise<string | null> {
  const { deps } = ctx;
  const token = await deps.subscribers.requestEmail(subscriberId, address, deps.clock.now());
  const mail = renderConfirmEmail({ address, confirmUrl: `${deps.baseUrl}/confirm-email?t=${token}`, validHours: CONFIRM_TTL_SECONDS / 3600 });
  const outcome = await deps.mailer.send({ ...mail, to: address, messageId: messageId('confirm', subscriberId, deps.baseUrl) });
  if (outcome.kind !== 'sent') {
    req.log.warn({ subscriber_id: subscriberId, reason: outcome.reason }, 'confirmation email not sent');
    // The settings are saved either way; the reader learns the email failed and can resend.
    return `the confirmation email to ${address} could not be sent (${outcome.reason}): use "Resend confirmation" later`;
  }
  req.log.info({ subscriber_id: subscriberId }, 'confirmation email sent');
  return null;
}

async function sendManageLink(ctx: WebContext, subscriberId: string, address: string) {
  const { deps } = ctx;
  const token = await deps.subscribers.issueLinkToken(subscriberId);
  const mail = renderManageLinkEmail({ manageUrl: `${deps.baseUrl}/manage?t=${token}`, validDays: LINK_TTL_SECONDS / 86400 });
  return deps.mailer.send({ ...mail, to: address, messageId: messageId('manage', subscriberId, deps.baseUrl) });
}

const html = 'text/html; charset=utf-8';

export const identityRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;

  // The page's script reads this token and sends it back in x-csrf-token; a cross-site page cannot read it.
  app.get('/api/csrf', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    return { token: reply.generateCsrf() };
  });

  /** A "manage your alerts" link: exchanged for this browser's own session cookie, then out of the address bar. */
  app.get('/manage', async (req, reply) => {
    const q = TokenQuery.safeParse(req.query);
    const id = q.success ? await deps.subscribers.idForLinkToken(q.data.t) : null;
    if (!id || !(await deps.subscribers.get(id))) {
      return reply
        .code(403)
        .type(html)
        .send(renderMessagePage({ title: 'This link does not work any more', message: 'It expired, was altered, or its alerts were deleted. Ask for a new link with your email address on the settings page.' }));
    }
    ctx.setTokenCookie(reply, await deps.subscribers.issueToken(id));
    return reply.redirect('/', 303);
  });

  /**
   * Lost link: the same answer whether or not the address belongs to anyone, and the email goes out after
   * the answer, so neither the body nor the timing tells who subscribes.
   */
  app.post('/api/manage-link', async (req, reply) => {
    const { email } = parseBody(ManageLinkBody, req.body);
    await ctx.limiters.email(req, [`to:${email.toLowerCase()}`]);
    const id = await deps.subscribers.idForEmail(email);
    if (id) {
      const sub = await deps.subscribers.get(id);
      if (sub?.email && sub.email.toLowerCase() === email.toLowerCase()) {
        setImmediate(() => {
          sendManageLink(ctx, id, sub.email!)
            .then((o) => req.log.info({ subscriber_id: id, outcome: o.kind }, 'manage link email'))
            .catch((err: unknown) => req.log.error({ err, subscriber_id: id }, 'manage link email failed'));
        });
      }
    }
    return reply.code(202).send({ message: `If this address has confirmed Herald alerts, a link to manage them is on its way. It works for ${LINK_TTL_SECONDS / 86400} days.` });
  });

  const linkProblem = (reply: FastifyReply, status: number, title: string, message: string) => reply.code(status).type(html).send(renderMessagePage({ title, message }));
  const incomplete = (reply: FastifyReply) => linkProblem(reply, 400, 'This confirmation link is incomplete', 'Copy the whole link from the email, or ask for a new one on the settings page.');
  const used = (reply: FastifyReply, superseded = false) =>
    linkProblem(
      reply,
      410,
      'This confirmation link was already used or has expired',
      superseded ? 'The address was changed since this link was sent.' : 'Each link works once. If your address is not confirmed yet, ask for a new link on the settings page.',
    );

  /** Double opt-in, step two, as a page: GET changes nothing, so link scanners that open every URL confirm nothing. */
  app.get('/confirm-email', async (req, reply) => {
    const q = TokenQuery.safeParse(req.query);
    if (!q.success) return incomplete(reply);
    if (!(await deps.subscribers.confirmationPending(q.data.t))) return used(reply);
    return reply.type(html).send(renderConfirmPage({ action: req.url }));
  });

  /** The page's button. The token is single-use: a replayed POST gets a 410 page and changes nothing. */
  app.post('/confirm-email', async (req, reply) => {
    const q = TokenQuery.safeParse(req.query);
    if (!q.success) return incomplete(reply);
    const result = await deps.subscribers.confirmEmail(q.data.t, deps.clock.now());
    if (!result.ok) return used(reply, result.reason === 'superseded');
    await rescheduleDigest(deps, result.subscriberId);
    const sent = await sendManageLink(ctx, result.subscriberId, result.email);
    req.log.info({ subscriber_id: result.subscriberId, manage_link: sent.kind }, 'email confirmed');
    return reply.type(html).send(
      renderMessagePage({
        title: 'Your address is confirmed',
        message: `Herald alerts can now reach ${result.email}.${sent.kind === 'sent' ? ' We also sent you a link to manage your alerts from any device.' : ''}`,
      }),
    );
  });
};
