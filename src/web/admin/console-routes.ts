import { Readable } from 'node:stream';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { FeedSchema, type Topic } from '../../config/catalog.ts';
import type { AnalysisCache } from '../../classify/analysis-cache.ts';
import { backtestQuery, type PreviewResult } from '../../classify/preview.ts';
import { CATALOG_QUERY_LIMITS } from '../../classify/registry.ts';
import { compileTopic, type StoryLimits, type TopicIndex } from '../../classify/match.ts';
import { feedIdFor } from '../../ingest/cli.ts';
import { describeFeedHealth } from '../../ingest/health.ts';
import type { IngestReport, PollDeps } from '../../ingest/poll.ts';
import { probeFeed } from '../../ingest/probe.ts';
import type { Channel, Clock } from '../../model.ts';
import { exportLedger, parseExportRange } from '../../ops/ledger-export.ts';
import { traceAlert, TraceLookupError } from '../../ops/trace.ts';
import { PAUSED_REASON, type FeedStore } from '../../store/feeds.ts';
import type { Ledger } from '../../store/ledger.ts';
import type { RecentStories } from '../../store/recent-stories.ts';
import type { StoryStore } from '../../store/stories.ts';
import type { SubscriberStore } from '../../store/subscribers.ts';
import { renderLineChart } from './charts.ts';
import { renderBacktest, renderFeeds, renderLedgerPage, renderTopics, renderTrace, type FeedRow } from './console-pages.ts';

export interface ConsoleDeps {
  clock: Clock;
  feeds: FeedStore;
  stories: StoryStore;
  subscribers: SubscriberStore;
  ledger: Ledger;
  recent: RecentStories;
  /** The catalog as loaded from the topics file. */
  topics: readonly Topic[];
  index: () => Promise<TopicIndex>;
  topicName: (id: string) => string;
  bestMinScore: number;
  storyLimits: StoryLimits;
  /** The recent stories' analyses, shared with readers' previews. */
  analyses: AnalysisCache;
  previewMaxDays: number;
  previewMaxStories: number;
  /** The poller's dependencies: "add" runs its probe. */
  poll: PollDeps;
  /** "Check now": the poller's own fetch of one feed, counted like a scheduled one. */
  checkFeed: (feedId: string) => Promise<IngestReport>;
  queues: Partial<Record<Channel, Queue>>;
}

const DAY_MS = 86_400_000;
const SPARK_DAYS = 7;
const html = (reply: FastifyReply, code: number, body: string) => reply.code(code).type('text/html; charset=utf-8').send(body);
const str = (v: unknown) => (typeof v === 'string' ? v : '');

/** Feeds, topics, trace and ledger export of the operator console; registered inside the admin plugin, behind its guard. */
export function consoleRoutes(deps: ConsoleDeps) {
  return async (app: FastifyInstance) => {
    const feedRows = async (): Promise<FeedRow[]> => {
      const now = deps.clock.now();
      const feeds = await deps.feeds.list();
      return Promise.all(
        feeds.map(async (f) => {
          const [state, itemsPerDay] = await Promise.all([deps.feeds.state(f.id), deps.feeds.itemsPerDay(f.id, SPARK_DAYS, now)]);
          return { health: describeFeedHealth(f, state, now), paused: state.disabledReason === PAUSED_REASON, itemsPerDay };
        }),
      );
    };

    // The health API the ingest stage documented, now behind the admin token: it lists every feed's URL and errors.
    app.get('/api/feeds', async () => ({ feeds: (await feedRows()).map((r) => r.health) }));

    app.get('/admin/feeds', async (_req, reply) => html(reply, 200, renderFeeds({ rows: await feedRows() })));

    type Add = { Body: Record<string, unknown> | undefined };
    app.post<Add>('/admin/feeds', async (req, reply) => {
      const form = { url: str(req.body?.url).trim(), id: str(req.body?.id).trim(), title: str(req.body?.title).trim() };
      const fail = async (code: number, text: string, probe: Awaited<ReturnType<typeof probeFeed>> | null = null) =>
        html(reply, code, renderFeeds({ rows: await feedRows(), notice: { kind: 'error', text }, probe, form }));
      const taken = new Set((await deps.feeds.list()).map((f) => f.id));
      let id = form.id;
      if (!id) {
        try {
          id = feedIdFor(form.url, taken);
        } catch {
          return fail(400, `not a URL: "${form.url}"`);
        }
      }
      const parsed = FeedSchema.safeParse({ id, url: form.url, ...(form.title ? { title: form.title } : {}) });
      if (!parsed.success) return fail(400, `feed not added: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      if (taken.has(parsed.data.id)) return fail(409, `feed not added: the id "${parsed.data.id}" is taken`);
      const probe = await probeFeed(parsed.data.url, deps.poll.settings);
      if (!probe.ok) return fail(422, `feed not added: ${probe.error.message}`, probe);
      const now = deps.clock.now();
      if (!(await deps.feeds.add(parsed.data, now))) return fail(409, `feed not added: the id "${parsed.data.id}" is taken`);
      req.log.info({ feed_id: parsed.data.id, url: parsed.data.url }, 'feed added from the console');
      return html(reply, 201, renderFeeds({ rows: await feedRows(), notice: { kind: 'ok', text: `Added ${parsed.data.id}: the poller fetches it now.` }, probe }));
    });

    type Action = { Params: { id: string; action: string } };
    app.post<Action>('/admin/feeds/:id/:action', async (req, reply) => {
      const { id, action } = req.params;
      const feed = await deps.feeds.get(id);
      if (!feed) return html(reply, 404, renderFeeds({ rows: await feedRows(), notice: { kind: 'error', text: `no feed "${id}"` } }));
      const now = deps.clock.now();
      let text: string;
      let kind: 'ok' | 'error' = 'ok';
      switch (action) {
        case 'check': {
          const state = await deps.feeds.state(id);
          if (state.disabledAt) {
            kind = 'error';
            text = `${id} is ${state.disabledReason === PAUSED_REASON ? 'paused' : 'disabled'}: resume it to check it`;
            break;
          }
          try {
            const r = await deps.checkFeed(id);
            text = r.status === 'not-modified' ? `Checked ${id}: not modified since the last fetch.` : `Checked ${id}: ${r.items} items, ${r.created} new, ${r.updated} updated, ${r.merged} merged.`;
          } catch (err) {
            kind = 'error';
            text = `Checked ${id}: ${(err as Error).message}`;
          }
          break;
        }
        case 'pause':
          await deps.feeds.pause(id, now);
          text = `Paused ${id}: it is not polled until resumed.`;
          break;
        case 'resume':
          await deps.feeds.resume(id, now);
          text = `Resumed ${id}: the poller fetches it now.`;
          break;
        case 'remove':
          await deps.feeds.remove(id);
          text = `Removed ${id}. A feed still listed in the feeds file comes back at the next start.`;
          break;
        default:
          return html(reply, 404, renderFeeds({ rows: await feedRows(), notice: { kind: 'error', text: `no action "${action}": check, pause, resume or remove` } }));
      }
      req.log.info({ feed_id: id, action }, 'feed action from the console');
      return html(reply, kind === 'ok' ? 200 : 422, renderFeeds({ rows: await feedRows(), notice: { kind, text } }));
    });

    const dayStarts = (now: number) => Array.from({ length: SPARK_DAYS }, (_, i) => (Math.floor(now / DAY_MS) - SPARK_DAYS + 1 + i) * DAY_MS);

    app.get('/admin/topics', async (_req, reply) => {
      const now = deps.clock.now();
      const days = dayStarts(now);
      const rows = await Promise.all(
        deps.topics.map(async (t) => ({
          id: t.id, name: t.name, group: t.group,
          followers: await deps.subscribers.followerCounts(t.id),
          matchesPerDay: await Promise.all(days.map((d) => deps.stories.countLogged(t.id, d, d + DAY_MS))),
        })),
      );
      const busiest = [...rows].sort((a, b) => b.matchesPerDay.reduce((x, y) => x + y, 0) - a.matchesPerDay.reduce((x, y) => x + y, 0)).slice(0, 6);
      const chart = renderLineChart({
        title: 'Matches per day (the six busiest topics)', from: days[0]!, to: days[days.length - 1]!,
        series: busiest.map((r) => ({ name: r.name, points: r.matchesPerDay.map((value, i) => ({ at: days[i]!, value })) })),
      });
      return html(reply, 200, renderTopics({ rows, chart }));
    });

    const replayStories = async () => {
      const now = deps.clock.now();
      const ids = await deps.recent.between(now - deps.previewMaxDays * DAY_MS, now, deps.previewMaxStories);
      return deps.stories.getMany(ids);
    };
    const backtest = (t: Topic, query: string, stories: Awaited<ReturnType<typeof replayStories>>): Promise<PreviewResult> =>
      backtestQuery(compileTopic({ id: t.id, name: t.name, query, minScore: t.minScore }, CATALOG_QUERY_LIMITS), stories, {
        quality: 'all', bestMinScore: deps.bestMinScore, analyses: deps.analyses,
      });

    type TopicReq = { Params: { id: string }; Body: Record<string, unknown> | undefined };
    app.get<TopicReq>('/admin/topics/:id', async (req, reply) => {
      const t = deps.topics.find((x) => x.id === req.params.id);
      if (!t) return reply.code(404).send({ error: `no catalog topic "${req.params.id}"` });
      const current = await backtest(t, t.query, await replayStories());
      return html(reply, 200, renderBacktest({ topic: t, edited: t.query, days: deps.previewMaxDays, current, result: null, error: null }));
    });

    app.post<TopicReq>('/admin/topics/:id/backtest', async (req, reply) => {
      const t = deps.topics.find((x) => x.id === req.params.id);
      if (!t) return reply.code(404).send({ error: `no catalog topic "${req.params.id}"` });
      const edited = str(req.body?.query);
      const stories = await replayStories();
      const current = await backtest(t, t.query, stories);
      let result: PreviewResult;
      try {
        if (!edited.trim()) throw new Error('the query is empty');
        result = await backtest(t, edited, stories);
      } catch (err) {
        return html(reply, 400, renderBacktest({ topic: t, edited, days: deps.previewMaxDays, current, result: null, error: `the edited query does not compile: ${(err as Error).message}` }));
      }
      return html(reply, 200, renderBacktest({ topic: t, edited, days: deps.previewMaxDays, current, result, error: null }));
    });

    type TraceReq = { Querystring: { subscriber?: string; story?: string; format?: string } };
    app.get<TraceReq>('/admin/trace', async (req, reply) => {
      const subscriber = str(req.query.subscriber);
      const story = str(req.query.story);
      const json = req.query.format === 'json';
      if (!subscriber && !story) return html(reply, 200, renderTrace({ subscriber, story, trace: null, error: null }));
      try {
        const trace = await traceAlert(
          { ...deps, queues: deps.queues, now: deps.clock.now() },
          { subscriber, story },
        );
        return json ? reply.send(trace) : html(reply, 200, renderTrace({ subscriber, story, trace, error: null }));
      } catch (err) {
        if (!(err instanceof TraceLookupError)) throw err;
        return json ? reply.code(404).send({ error: err.message }) : html(reply, 404, renderTrace({ subscriber, story, trace: null, error: err.message }));
      }
    });

    app.get('/admin/ledger', async (_req, reply) => {
      const now = deps.clock.now();
      return html(reply, 200, renderLedgerPage({ from: new Date(now - DAY_MS).toISOString(), to: new Date(now).toISOString(), error: null }));
    });

    type Export = { Querystring: { from?: string; to?: string; format?: string } };
    app.get<Export>('/admin/ledger/export', async (req, reply) => {
      const range = parseExportRange(req.query, deps.clock.now());
      if ('error' in range) return html(reply, 400, renderLedgerPage({ from: str(req.query.from), to: str(req.query.to), error: range.error }));
      const name = `herald-ledger-${new Date(range.from).toISOString().slice(0, 10)}-${new Date(range.to).toISOString().slice(0, 10)}.${range.format}`;
      reply
        .type(range.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}"`)
        .header('cache-control', 'no-store');
      // A Readable pulls the next record only when the client has taken the previous ones.
      return reply.send(Readable.from(exportLedger(deps.ledger.between(range.from, range.to), range.format)));
    });
  };
}
