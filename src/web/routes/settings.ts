import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { rescheduleBundles } from '../../deliver/push/send-bundle.ts';
import { rescheduleDigest } from '../../digest/send-digest.ts';
import type { Follow } from '../../model.ts';
import { TOKEN_COOKIE, type WebContext } from '../context.ts';
import { mergeFollows, muteFollow, raiseThreshold, resetTuning } from '../follows.ts';
import { HttpError, parseBody } from '../http-error.ts';
import { CreateSubscriberBody, SettingsBody, TopicParams } from '../schemas.ts';
import { checkEmailLimit, sendConfirmation } from './identity.ts';

const followView = (f: Follow) => ({
  cadence: f.cadence,
  channels: f.channels,
  minScore: f.minScore ?? null,
  mutedUntil: f.mutedUntil === undefined ? null : new Date(f.mutedUntil).toISOString(),
});

export async function settingsView(ctx: WebContext, id: string) {
  const { deps } = ctx;
  const [who, follows, devices, nextDigestAt, digestState] = await Promise.all([
    deps.subscribers.forDelivery(id),
    deps.subscribers.follows(id),
    deps.subscribers.pushSubscriptions(id),
    deps.digests.dueAt(id),
    deps.digests.state(id),
  ]);
  if (!who) throw new HttpError(404, 'subscriber not found');
  const { subscriber: sub, prefs: delivery, emailHealth } = who;
  return {
    id: sub.id,
    email: sub.email,
    pendingEmail: sub.pendingEmail,
    quality: sub.quality,
    timeZone: sub.timeZone,
    digestTime: sub.digestTime,
    delivery,
    topics: Object.fromEntries(Object.entries(follows).map(([t, f]) => [t, followView(f)])),
    devices: devices.map((d) => ({ id: d.id, service: new URL(d.endpoint).host, createdAt: new Date(d.createdAt).toISOString() })),
    nextDigestAt: nextDigestAt === null ? null : new Date(nextDigestAt).toISOString(),
    // Shown on the page: why emails stopped, so the reader can fix the address.
    emailStatus: {
      disabled: emailHealth.disabledAt !== null,
      hardBounces: emailHealth.hardBounces,
      reason: emailHealth.disabledReason,
      disabledAt: emailHealth.disabledAt === null ? null : new Date(emailHealth.disabledAt).toISOString(),
    },
    digestProblem: digestState.problem,
  };
}

export const settingsRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;

  /**
   * A changed address becomes pending and gets a confirmation link; the same address again sends nothing
   * (the form re-sends it with every save); null forgets both the confirmed and the pending address.
   * Decided (and rate-limited) before anything is stored, so a refused request changes nothing.
   */
  type EmailPlan = { kind: 'none' } | { kind: 'remove' } | { kind: 'cancel-pending' } | { kind: 'confirm'; address: string };
  const planEmail = async (req: FastifyRequest, id: string | null, email: string | null | undefined): Promise<EmailPlan> => {
    if (email === undefined) return { kind: 'none' };
    if (email === null) return { kind: 'remove' };
    const sub = id ? await deps.subscribers.get(id) : null;
    const same = (a: string | null | undefined) => !!a && a.toLowerCase() === email.toLowerCase();
    // The same address again is no change, unless hard bounces disabled it: then the reader says it works again,
    // which a confirmation proves (before, re-saving it did nothing, and only removing and re-adding it helped).
    const disabled = id !== null && sub?.email ? (await deps.subscribers.forDelivery(id))?.emailHealth.disabledAt != null : false;
    if (same(sub?.email) && !disabled) return sub?.pendingEmail ? { kind: 'cancel-pending' } : { kind: 'none' };
    if (same(sub?.pendingEmail)) return { kind: 'none' };
    await checkEmailLimit(ctx, req, id, email);
    return { kind: 'confirm', address: email };
  };
  /** Returns a notice for the reader when the confirmation email could not be sent (the settings are saved). */
  const applyEmail = async (req: FastifyRequest, id: string, plan: EmailPlan): Promise<string | null> => {
    const now = deps.clock.now();
    if (plan.kind === 'remove') await deps.subscribers.removeEmail(id, now);
    else if (plan.kind === 'cancel-pending') await deps.subscribers.cancelPendingEmail(id, now);
    else if (plan.kind === 'confirm') return sendConfirmation(ctx, req, id, plan.address);
    return null;
  };
  const withNotice = (view: object, notice: string | null) => (notice ? { ...view, notice } : view);

  app.post('/api/subscribers', async (req, reply) => {
    const body = parseBody(CreateSubscriberBody, req.body);
    ctx.checkTopics(body.topics);
    const emailPlan = await planEmail(req, null, body.email);
    const now = deps.clock.now();
    const { id, token } = await deps.subscribers.create({ timeZone: body.timeZone, digestTime: body.digestTime }, now);
    ctx.setTokenCookie(reply, token);
    if (body.quality) await deps.subscribers.update(id, { quality: body.quality }, now);
    if (body.delivery) await deps.subscribers.setPrefs(id, body.delivery, now);
    if (body.topics) await deps.subscribers.setFollows(id, mergeFollows({}, body.topics));
    const notice = await applyEmail(req, id, emailPlan);
    await rescheduleDigest(deps, id);
    return reply.code(201).send(withNotice({ ...(await settingsView(ctx, id)), token }, notice));
  });

  app.get('/api/me', async (req) => settingsView(ctx, await ctx.authenticate(req)));

  app.put('/api/me', async (req) => {
    const id = await ctx.authenticate(req);
    const body = parseBody(SettingsBody, req.body);
    ctx.checkTopics(body.topics);
    const emailPlan = await planEmail(req, id, body.email);
    await deps.subscribers.update(id, { timeZone: body.timeZone, digestTime: body.digestTime, quality: body.quality }, deps.clock.now());
    if (body.delivery) await deps.subscribers.setPrefs(id, body.delivery, deps.clock.now());
    if (body.topics) await deps.subscribers.setFollows(id, mergeFollows(await deps.subscribers.follows(id), body.topics));
    const notice = await applyEmail(req, id, emailPlan);
    await rescheduleDigest(deps, id);
    // Shorter quiet hours (or a time zone where they are over) release the held pushes sooner.
    await rescheduleBundles(deps, id);
    return withNotice(await settingsView(ctx, id), notice);
  });

  app.post('/api/me/email/resend', async (req, reply) => {
    const id = await ctx.authenticate(req);
    const sub = await deps.subscribers.get(id);
    if (!sub?.pendingEmail) throw new HttpError(409, 'no address is waiting for confirmation');
    await checkEmailLimit(ctx, req, id, sub.pendingEmail);
    const notice = await sendConfirmation(ctx, req, id, sub.pendingEmail);
    if (notice) throw new HttpError(502, notice);
    return reply.code(202).send({ message: `a new confirmation link is on its way to ${sub.pendingEmail}` });
  });

  /** Deletes the subscriber and all their data; this browser's cookie goes too. */
  app.delete('/api/me', async (req, reply) => {
    const id = await ctx.authenticate(req);
    await deps.digests.forgetSubscriber(id);
    await deps.ledger.forgetSubscriber(id);
    // Own alerts first: until each is announced gone, every classifier keeps matching it.
    const ownAlerts = await deps.alerts.customs.removeAll(id);
    for (const alertId of ownAlerts) await deps.stories.forgetTopicLog(alertId);
    // Their delivery counters count this reader's alerts only: reader data, erased with the rest.
    await deps.ledger.forgetTopicStats(ownAlerts, deps.clock.now());
    await deps.subscribers.delete(id);
    req.log.info({ subscriber_id: id }, 'subscriber deleted');
    reply.clearCookie(TOKEN_COOKIE, { path: '/' });
    return reply.code(204).send();
  });

  const tune = (change: (f: Follow, now: number) => Follow) => async (req: FastifyRequest) => {
    const id = await ctx.authenticate(req);
    const { topicId } = parseBody(TopicParams, req.params);
    const follows = await deps.subscribers.follows(id);
    // Own properties only: "constructor" from the URL must not find Object.prototype's.
    const follow = Object.hasOwn(follows, topicId) ? follows[topicId] : undefined;
    if (!follow) throw new HttpError(404, `you do not follow topic "${topicId}"`);
    follows[topicId] = change(follow, deps.clock.now());
    await deps.subscribers.setFollows(id, follows);
    return { topicId, ...followView(follows[topicId]) };
  };
  app.post('/api/me/topics/:topicId/less', tune((f) => raiseThreshold(f)));
  app.post('/api/me/topics/:topicId/mute', tune((f, now) => muteFollow(f, now)));
  app.post('/api/me/topics/:topicId/reset', tune((f) => resetTuning(f)));
};
