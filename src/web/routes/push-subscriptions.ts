import type { FastifyPluginAsync } from 'fastify';
import { renderPushPayload } from '../../deliver/push/payload.ts';
import type { WebContext } from '../context.ts';
import { HttpError, parseBody } from '../http-error.ts';
import { PushDeviceLimitError } from '../../store/subscribers.ts';
import { isAllowedPushEndpoint } from '../push-endpoint.ts';
import { DeviceParams, PushSubscriptionBody } from '../schemas.ts';

export const pushSubscriptionRoutes = (ctx: WebContext): FastifyPluginAsync => async (app) => {
  const { deps } = ctx;

  app.post('/api/me/push-subscriptions', async (req, reply) => {
    const id = await ctx.authenticate(req);
    const body = parseBody(PushSubscriptionBody, req.body);
    if (!isAllowedPushEndpoint(body.endpoint, deps.pushServices)) {
      throw new HttpError(400, `invalid request: endpoint: ${new URL(body.endpoint).host} is not a known push service`, {
        fields: [{ field: 'endpoint', message: 'must be an https endpoint of a known push service' }],
      });
    }
    try {
      // The page hands the browser the current key, so that is the key this subscription is bound to.
      const record = await deps.subscribers.addPushSubscription(id, body, deps.clock.now(), deps.vapidPublicKey, deps.maxPushDevices);
      return reply.code(201).send({ id: record.id });
    } catch (err) {
      // Every alert fans out to every device: without a cap one reader could make each push cost hundreds.
      if (err instanceof PushDeviceLimitError) throw new HttpError(409, err.message);
      throw err;
    }
  });

  app.delete('/api/me/push-subscriptions/:deviceId', async (req, reply) => {
    const id = await ctx.authenticate(req);
    const { deviceId } = parseBody(DeviceParams, req.params);
    if (!(await deps.subscribers.removePushSubscription(id, deviceId))) throw new HttpError(404, 'no such device');
    return reply.code(204).send();
  });

  /** "Send a test notification": straight to every device, now, so the reader sees at once whether push works. */
  app.post('/api/me/push-test', async (req) => {
    const id = await ctx.authenticate(req);
    const devices = await deps.subscribers.pushSubscriptions(id);
    if (devices.length === 0) throw new HttpError(409, 'no device gets notifications yet: press "Allow notifications" first');
    const now = deps.clock.now();
    const payload = renderPushPayload(
      { id: `test-${now}`, title: 'Herald test notification', summary: 'Notifications work on this device.', url: `${deps.baseUrl}/` },
      'Herald',
      'You asked for a test notification',
    );
    const results = [];
    for (const device of devices) {
      const outcome = await deps.pushSender.send(device, payload, { ttlSeconds: 300, urgency: 'high' });
      if (outcome.kind === 'gone') await deps.subscribers.removePushSubscription(id, device.id);
      results.push({ id: device.id, service: new URL(device.endpoint).host, outcome: outcome.kind, ...('reason' in outcome ? { reason: outcome.reason } : {}) });
    }
    return { devices: results };
  });
};
