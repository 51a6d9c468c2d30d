import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Clock } from '../model.ts';
import type { FeedStore } from '../store/feeds.ts';
import type { IngestReport } from './poll.ts';
import { atCallbackOf, awaitsVerification, fallbackPollMs, verifySignature } from './websub.ts';

export interface IngestRouteDeps {
  feeds: FeedStore;
  clock: Clock;
  maxBytes: number;
  /** Poll interval of a feed once its subscription is verified (the fallback). */
  pushFallbackMs: number;
  /** The minimum poll interval: the soonest a short lease brings the fallback poll forward (fallbackPollMs). */
  minIntervalMs: number;
  /** The lease Herald asks hubs for (HERALD_WEBSUB_LEASE_SECONDS): taken as granted when a hub's verification names none. */
  leaseSeconds: number;
  /** Takes a pushed body into the pipeline exactly as a polled one. */
  ingest(feedId: string, body: Buffer, contentType: string | null, baseUrl: string): Promise<IngestReport>;
}

/**
 * Fastify plugin (encapsulated): the WebSub callback (the feed health API is the console's, behind the admin token). Registered by the runtime
 * next to the settings app, so the web server's own module does not need to know about ingestion.
 */
export async function ingestRoutes(app: FastifyInstance, deps: IngestRouteDeps) {
  // Hubs deliver the feed as it is (any XML or JSON type): take the raw bytes, the parser decides.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.maxBytes }, (_req, body, done) => done(null, body));

  type Verify = { Params: { feedId: string }; Querystring: Record<string, string | undefined> };
  // Verification of intent (WebSub §5.3): echo the challenge only for a subscription we asked for.
  app.get<Verify>('/websub/:feedId', async (req, reply) => {
    const { feedId } = req.params;
    const q = req.query;
    const mode = q['hub.mode'];
    const state = await deps.feeds.state(feedId);
    const ws = state.websub;
    const feed = await deps.feeds.get(feedId);
    const now = deps.clock.now();
    // Verifications and denials count only at the subscription's own callback: anyone can call the bare one.
    // (Deliveries, below, are checked by their signature: they still arrive at callbacks of before the token.)
    const ours = ws !== null && atCallbackOf(ws, q.token);
    // §5.2: a hub may deny a subscription at any point, an active one too; polling takes over at once.
    if (mode === 'denied' && ws && ours && q['hub.topic'] === ws.topic) {
      // requestedAt from now: the next request waits a day from the denial (needsSubscription), not from the last ask.
      await deps.feeds.setWebSub(feedId, { ...ws, status: 'denied', leaseUntil: null, requestedAt: now, reason: q['hub.reason'] ?? 'denied by the hub' });
      await deps.feeds.scheduleNext(feedId, now);
      req.log.warn({ feed_id: feedId, reason: q['hub.reason'] }, 'websub subscription denied by the hub');
      return reply.code(200).send('');
    }
    if (mode === 'subscribe' && feed && ws && ours && awaitsVerification(ws, q['hub.topic'], now) && q['hub.challenge']) {
      // §5.3 requires hub.lease_seconds, but some hubs leave it out. Without a lease, leaseUntil was null, which
      // needsSubscription reads as a lapsed lease: every poll subscribed again. The lease asked for is the best guess.
      const given = Number(q['hub.lease_seconds']);
      const fromHub = q['hub.lease_seconds'] !== undefined && Number.isFinite(given) && given > 0;
      const lease = fromHub ? given : deps.leaseSeconds;
      const leaseUntil = now + lease * 1000;
      await deps.feeds.setWebSub(feedId, { ...ws, status: 'active', leaseUntil });
      // Updates now arrive by push: polling drops to the fallback interval, or to the renewal of a shorter lease.
      await deps.feeds.scheduleNext(feedId, now + fallbackPollMs(deps.pushFallbackMs, deps.minIntervalMs, leaseUntil, now));
      req.log.info({ feed_id: feedId, lease_seconds: lease, lease_from_hub: fromHub }, 'websub subscription verified');
      return reply.code(200).type('text/plain').send(q['hub.challenge']);
    }
    // We unsubscribe by forgetting: confirm an unsubscription only for a feed we no longer follow by push.
    if (mode === 'unsubscribe' && (!feed || !ws) && q['hub.challenge']) return reply.code(200).type('text/plain').send(q['hub.challenge']);
    return reply.code(404).send({ error: 'no such subscription' });
  });

  type Deliver = { Params: { feedId: string }; Body: Buffer };
  /**
   * A delivery larger than the body limit, unread (so unsigned as far as we know). WebSub §7: any answer but 2xx
   * (or 410) is a failure to the hub, which retries the same body; Fastify's generic 413 did that, and the items
   * it carried waited for the fallback poll, up to hours. The hub is acknowledged, told why in the body, and the
   * feed is polled as soon as the minimum interval allows: anyone can send a big body, so it is no sooner.
   */
  const tooLargeDelivery = async (feedId: string, log: FastifyBaseLogger) => {
    const [feed, state] = await Promise.all([deps.feeds.get(feedId), deps.feeds.state(feedId)]);
    if (!feed || !state.websub) return { code: 410, body: { error: 'not subscribed' } };
    let nextCheckAt = state.nextCheckAt;
    if (!state.disabledAt) {
      const soonest = Math.max(deps.clock.now(), (state.lastCheckAt ?? 0) + deps.minIntervalMs);
      if (nextCheckAt === null || soonest < nextCheckAt) {
        nextCheckAt = soonest;
        await deps.feeds.scheduleNext(feedId, soonest);
      }
    }
    log.warn({ feed_id: feedId, max_bytes: deps.maxBytes, next_check_at: nextCheckAt }, 'websub delivery over the size limit not read: the feed is polled instead');
    const message = `the delivery is larger than HERALD_FETCH_MAX_BYTES (${deps.maxBytes} bytes) and was not read; Herald polls the feed instead`;
    return { code: 202, body: { accepted: false, error: 'too-large', message } };
  };
  app.post<Deliver>('/websub/:feedId', {
    bodyLimit: deps.maxBytes,
    // Every other error goes on to the app's own handler (rethrown).
    errorHandler: async (err: Error & { code?: string }, req, reply) => {
      if (err.code !== 'FST_ERR_CTP_BODY_TOO_LARGE') throw err;
      const answer = await tooLargeDelivery((req.params as Deliver['Params']).feedId, req.log);
      return reply.code(answer.code).send(answer.body);
    },
  }, async (req, reply) => {
    const { feedId } = req.params;
    const [feed, state] = await Promise.all([deps.feeds.get(feedId), deps.feeds.state(feedId)]);
    if (!feed || !state.websub) return reply.code(410).send({ error: 'not subscribed' });
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    // WebSub §8: a delivery with a missing or wrong signature is acknowledged but ignored.
    if (!verifySignature(state.websub.secret, body, req.headers['x-hub-signature'] as string | undefined)) {
      req.log.warn({ feed_id: feedId }, 'websub delivery ignored: X-Hub-Signature missing or wrong');
      return reply.code(202).send({ accepted: false });
    }
    // A paused or disabled feed takes no items, pushed or polled: the hub is acknowledged (it delivers until its
    // lease ends, and a 410 could make it drop a subscription that resuming expects to find) and ignored.
    if (state.disabledAt) {
      req.log.info({ feed_id: feedId, reason: state.disabledReason }, 'websub delivery ignored: the feed is paused or disabled');
      return reply.code(202).send({ accepted: false });
    }
    const report = await deps.ingest(feedId, body, (req.headers['content-type'] as string | undefined) ?? null, feed.url);
    return reply.code(202).send({ accepted: true, created: report.created, items: report.items });
  });
}
