import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AnalysisCache } from '../../classify/analysis-cache.ts';
import { compileTopic, type CompiledTopic } from '../../classify/match.ts';
import { backtestQuery, tooBroad, type PreviewResult } from '../../classify/preview.ts';
import { QueryError, type QueryLimits } from '../../classify/query.ts';
import type { Clock, Follow } from '../../model.ts';
import { CustomTopicLimitError, type CustomTopic, type CustomTopicStore } from '../../store/custom-topics.ts';
import type { Ledger, TopicStats } from '../../store/ledger.ts';
import type { RecentStories } from '../../store/recent-stories.ts';
import type { StoryStore } from '../../store/stories.ts';
import type { SubscriberStore } from '../../store/subscribers.ts';
import { describeZodError } from '../schemas.ts';

/**
 * JSON API of readers' own alerts (custom queries): create, list, rename or change, delete, and a
 * preview that replays a query over the last days' stories. The settings page's alert editor calls it.
 */
export interface AlertRoutesOptions {
  /** Resolves the signed-in subscriber's id or throws the server's 401/403. */
  authenticate: (req: FastifyRequest) => Promise<string>;
  customs: CustomTopicStore;
  subscribers: SubscriberStore;
  stories: StoryStore;
  recent: RecentStories;
  /** The delivery counters of each alert (its topic id): the reader sees them, and they go with the alert. */
  ledger: Pick<Ledger, 'topicStats' | 'forgetTopicStats'>;
  clock: Clock;
  queryLimits: QueryLimits;
  /** The recent stories' analyses, kept across previews. */
  analyses: AnalysisCache;
  /** Counts one replay for the subscriber; throws the server's 429 past the cap. */
  limitReplay: (req: FastifyRequest, subscriberId: string) => Promise<void>;
  bestMinScore: number;
  maxAlertsPerSubscriber: number;
  previewMaxDays: number;
  previewMaxStories: number;
  queryMaxMatchRatio: number;
}

const Name = z.string().trim().min(1).max(80);
const Query = z.string().min(1);
const Cadence = z.enum(['instant', 'daily']);
const Channels = z.array(z.enum(['push', 'email'])).max(2);
const CreateAlertBody = z.object({ name: Name, query: Query, cadence: Cadence.default('instant'), channels: Channels.default(['push']) }).strict();
const UpdateAlertBody = z.object({ name: Name.optional(), query: Query.optional(), cadence: Cadence.optional(), channels: Channels.optional() }).strict();
const PreviewBody = z.object({ query: Query, days: z.number().int().positive().optional() }).strict();

const DAY_MS = 24 * 60 * 60 * 1000;

function alertView(t: CustomTopic, follow: Follow | undefined, stats?: TopicStats) {
  return {
    id: t.id,
    name: t.name,
    query: t.query,
    cadence: follow?.cadence ?? 'off',
    channels: follow?.channels ?? [],
    createdAt: new Date(t.createdAt).toISOString(),
    updatedAt: new Date(t.updatedAt).toISOString(),
    ...(stats ? { stats } : {}),
  };
}

/** Answers 400 for a bad body; returns null so the route stops. */
function parseBody<S extends z.ZodType>(schema: S, body: unknown, reply: FastifyReply): z.output<S> | null {
  const parsed = schema.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const d = describeZodError(parsed.error);
  void reply.code(400).send({ error: d.error, fields: d.fields });
  return null;
}

export async function alertRoutes(app: FastifyInstance, opts: AlertRoutesOptions) {
  /** Compiles a reader's query, answering 400 with the position and what was expected when it is bad. */
  const compile = (id: string, name: string, query: string, reply: FastifyReply): CompiledTopic | null => {
    try {
      return compileTopic({ id, name, query }, opts.queryLimits);
    } catch (err) {
      if (!(err instanceof QueryError)) throw err;
      void reply.code(400).send({ ...err.toJSON(), error: `invalid query: ${err.message}`, field: 'query' });
      return null;
    }
  };

  const replay = async (req: FastifyRequest, subscriberId: string, topic: CompiledTopic, days: number): Promise<PreviewResult> => {
    await opts.limitReplay(req, subscriberId);
    const now = opts.clock.now();
    const ids = await opts.recent.between(now - days * DAY_MS, now, opts.previewMaxStories);
    const [stories, sub] = await Promise.all([opts.stories.getMany(ids), opts.subscribers.get(subscriberId)]);
    return backtestQuery(topic, stories, { quality: sub?.quality ?? 'all', bestMinScore: opts.bestMinScore, analyses: opts.analyses });
  };

  /** Refuses (400) a query that would have matched most recent stories. */
  const refuseIfTooBroad = async (req: FastifyRequest, subscriberId: string, topic: CompiledTopic, reply: FastifyReply): Promise<boolean> => {
    const why = tooBroad(await replay(req, subscriberId, topic, opts.previewMaxDays), opts.queryMaxMatchRatio, opts.previewMaxDays);
    if (!why) return false;
    void reply.code(400).send({ error: `query refused: ${why}`, code: 'refused', position: 0, expected: 'a more specific query', field: 'query' });
    return true;
  };

  const setFollow = async (subscriberId: string, topicId: string, follow: Follow) => {
    const follows = await opts.subscribers.follows(subscriberId);
    await opts.subscribers.setFollows(subscriberId, { ...follows, [topicId]: follow });
  };

  app.get('/api/me/alerts', async (req) => {
    const id = await opts.authenticate(req);
    const [alerts, follows] = await Promise.all([opts.customs.list(id), opts.subscribers.follows(id)]);
    // An own alert is a topic of one reader: its per-topic counters are that reader's own delivery stats.
    const stats = await opts.ledger.topicStats(alerts.map((a) => a.id));
    return { alerts: alerts.map((a) => alertView(a, follows[a.id], stats[a.id])) };
  });

  app.post('/api/me/alerts', async (req, reply) => {
    const id = await opts.authenticate(req);
    const body = parseBody(CreateAlertBody, req.body, reply);
    if (!body) return reply;
    const topic = compile('preview', body.name, body.query, reply);
    if (!topic) return reply;
    let created: CustomTopic;
    try {
      // A reader at the limit is told so for one HLEN, before the replay of every recent story.
      await opts.customs.checkRoom(id, opts.maxAlertsPerSubscriber);
      if (await refuseIfTooBroad(req, id, topic, reply)) return reply;
      created = await opts.customs.create(id, { name: body.name, query: body.query }, opts.clock.now(), opts.maxAlertsPerSubscriber);
    } catch (err) {
      if (err instanceof CustomTopicLimitError) return reply.code(409).send({ error: err.message });
      throw err;
    }
    const follow: Follow = { cadence: body.cadence, channels: body.cadence === 'instant' ? body.channels : [] };
    await setFollow(id, created.id, follow);
    return reply.code(201).send(alertView(created, follow));
  });

  app.patch<{ Params: { alertId: string } }>('/api/me/alerts/:alertId', async (req, reply) => {
    const id = await opts.authenticate(req);
    const body = parseBody(UpdateAlertBody, req.body, reply);
    if (!body) return reply;
    const current = await opts.customs.get(id, req.params.alertId);
    if (!current) return reply.code(404).send({ error: 'you have no alert with this id' });
    if (body.query !== undefined) {
      const topic = compile(current.id, body.name ?? current.name, body.query, reply);
      if (!topic || (await refuseIfTooBroad(req, id, topic, reply))) return reply;
    }
    const updated = body.name !== undefined || body.query !== undefined
      ? await opts.customs.update(id, current.id, { ...(body.name !== undefined ? { name: body.name } : {}), ...(body.query !== undefined ? { query: body.query } : {}) }, opts.clock.now())
      : current;
    if (!updated) return reply.code(404).send({ error: 'you have no alert with this id' });
    let follow = (await opts.subscribers.follows(id))[current.id];
    if (body.cadence !== undefined || body.channels !== undefined) {
      const cadence = body.cadence ?? (follow?.cadence === 'daily' ? 'daily' : 'instant');
      follow = { cadence, channels: cadence === 'instant' ? (body.channels ?? follow?.channels ?? ['push']) : [] };
      await setFollow(id, current.id, follow);
    }
    return alertView(updated, follow);
  });

  app.delete<{ Params: { alertId: string } }>('/api/me/alerts/:alertId', async (req, reply) => {
    const id = await opts.authenticate(req);
    if (!(await opts.customs.remove(id, req.params.alertId))) return reply.code(404).send({ error: 'you have no alert with this id' });
    await opts.stories.forgetTopicLog(req.params.alertId);
    await opts.ledger.forgetTopicStats([req.params.alertId], opts.clock.now());
    await setFollow(id, req.params.alertId, { cadence: 'off', channels: [] });
    return reply.code(204).send();
  });

  app.post('/api/me/alerts/preview', async (req, reply) => {
    const id = await opts.authenticate(req);
    const body = parseBody(PreviewBody, req.body, reply);
    if (!body) return reply;
    const days = body.days ?? opts.previewMaxDays;
    if (days > opts.previewMaxDays) {
      return reply.code(400).send({ error: `invalid request: days: at most ${opts.previewMaxDays} days can be replayed`, fields: [{ field: 'days', message: `at most ${opts.previewMaxDays}` }] });
    }
    const topic = compile('query', 'Preview', body.query, reply);
    if (!topic) return reply;
    const result = await replay(req, id, topic, days);
    const why = tooBroad(result, opts.queryMaxMatchRatio, days);
    if (why) return reply.code(400).send({ error: `query refused: ${why}`, code: 'refused', position: 0, expected: 'a more specific query', field: 'query' });
    return { query: body.query, days, ...result };
  });
}
