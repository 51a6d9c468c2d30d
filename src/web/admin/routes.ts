import { readFileSync } from 'node:fs';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { RedisClient } from '../../store/redis.ts';
import type { Clock } from '../../model.ts';
import { createLoginAttempts, ADMIN_FAILURE_WINDOW_SECONDS } from '../../store/login-attempts.ts';
import type { Stats } from '../../store/stats.ts';
import { adminTokenFrom, tokenMatches } from '../routes/ops.ts';
import { renderLineChart } from './charts.ts';
import { consoleRoutes, type ConsoleDeps } from './console-routes.ts';
import { OVERVIEW_CHARTS, RANGES, sumSeries, total, type Range } from './overview.ts';
import { renderOverview, type QueueRow } from './pages.ts';

export interface AdminDeps {
  redis: RedisClient;
  prefix: string;
  queues: Readonly<Record<string, Queue>>;
  stats: Stats;
  adminToken: string;
  clock: Clock;
  /** How often the live view pushes a snapshot (tests shorten it). */
  liveIntervalMs?: number;
  /** Feeds, topics, trace and ledger pages. */
  console: Omit<ConsoleDeps, 'clock'>;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * CSRF defence of the console: a browser attaches Basic credentials to any request to this origin, even
 * one a hostile page makes it send, so a state-changing request must come from a page of this origin.
 * Browsers say so in Sec-Fetch-Site, which no page can set. Without it (older browsers), the Origin header
 * must name this host; Herald's Referrer-Policy (no-referrer) makes a browser send "Origin: null" on form
 * posts, so those browsers are refused rather than trusted. A token sent as Bearer cannot be forged
 * cross-site (no browser adds that header by itself), so scripts and curl need neither header.
 */
export function sameOriginWrite(
  method: string,
  headers: { origin?: string | undefined; host?: string | undefined; authorization?: string | undefined; 'sec-fetch-site'?: string | undefined },
): boolean {
  if (SAFE_METHODS.has(method)) return true;
  if (headers.authorization?.startsWith('Bearer ')) return true;
  const site = headers['sec-fetch-site'];
  if (site) return site === 'same-origin';
  if (!headers.origin || !headers.host) return false;
  try {
    return new URL(headers.origin).host === headers.host;
  } catch {
    return false;
  }
}

const ASSETS: Record<string, { file: URL; type: string }> = {
  'admin.css': { file: new URL('./assets/admin.css', import.meta.url), type: 'text/css; charset=utf-8' },
  'admin.js': { file: new URL('./assets/admin.js', import.meta.url), type: 'text/javascript; charset=utf-8' },
};

const parseRange = (v: unknown): Range => (v === '7d' ? '7d' : '24h');

async function queueRows(queues: AdminDeps['queues']): Promise<QueueRow[]> {
  return Promise.all(
    Object.entries(queues).map(async ([queue, q]) => {
      const c = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
      return { queue, waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 };
    }),
  );
}

/**
 * The operator console under /admin: every route behind the admin token (Bearer, or the password of HTTP
 * Basic so a browser can log in), compared in constant time, with failed attempts limited per address.
 */
export function adminRoutes(deps: AdminDeps): FastifyPluginAsync {
  const attempts = createLoginAttempts(deps.redis, deps.prefix);
  return async (app: FastifyInstance) => {
    app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
      if (await attempts.blocked(req.ip)) {
        return reply.code(429).header('retry-after', String(ADMIN_FAILURE_WINDOW_SECONDS)).send({ error: 'too many failed attempts: wait a minute' });
      }
      if (!tokenMatches(adminTokenFrom(req), deps.adminToken)) {
        // A request without credentials is a browser's first try, not a guess.
        if (req.headers.authorization) await attempts.fail(req.ip);
        return reply.code(401).header('www-authenticate', 'Basic realm="Herald admin", charset="UTF-8"').send({ error: 'admin token required' });
      }
      if (!sameOriginWrite(req.method, req.headers as Parameters<typeof sameOriginWrite>[1])) {
        return reply.code(403).send({ error: 'cross-site request refused: change things from the console pages of this Herald' });
      }
    });

    app.get<{ Params: { name: string } }>('/admin/assets/:name', async (req, reply) => {
      const asset = ASSETS[req.params.name];
      if (!asset) return reply.code(404).send({ error: 'not found' });
      return reply.type(asset.type).send(readFileSync(asset.file));
    });

    const chartSvgs = async (range: Range) => {
      const now = deps.clock.now();
      const { resolution, spanMs } = RANGES[range];
      const buckets = await deps.stats.series(resolution, now - spanMs, now);
      const from = buckets[0]?.at ?? now - spanMs;
      return {
        buckets,
        charts: OVERVIEW_CHARTS.map((c) => ({ id: c.id, svg: renderLineChart({ title: c.title, series: c.series(buckets), from, to: now, ...(c.unit ? { unit: c.unit } : {}) }) })),
      };
    };

    app.get<{ Querystring: { range?: string } }>('/admin', async (req, reply) => {
      const range = parseRange(req.query.range);
      const { buckets, charts } = await chartSvgs(range);
      const sum = (name: string, filter: Record<string, string>) => total(sumSeries(buckets, name, filter, ''));
      const totals = [
        { label: 'stories ingested', value: sum('herald_stories_ingested_total', {}) },
        { label: 'push alerts sent', value: sum('herald_alerts_total', { channel: 'push', outcome: 'sent' }) },
        { label: 'email alerts sent', value: sum('herald_alerts_total', { channel: 'email', outcome: 'sent' }) },
        { label: 'digests sent', value: sum('herald_digests_total', { outcome: 'sent' }) },
        { label: 'alerts failed', value: sum('herald_alerts_total', { outcome: 'failed' }) },
        { label: 'feed fetch errors', value: sum('herald_feed_fetches_total', { result: 'error' }) },
      ];
      const html = renderOverview({ range, rangeLabel: RANGES[range].label, totals, charts, queues: await queueRows(deps.queues) });
      return reply.type('text/html; charset=utf-8').send(html);
    });

    app.get<{ Params: { chart: string }; Querystring: { range?: string } }>('/admin/charts/:chart', async (req, reply) => {
      const id = req.params.chart.replace(/\.svg$/, '');
      const { charts } = await chartSvgs(parseRange(req.query.range));
      const chart = charts.find((c) => c.id === id);
      if (!chart) return reply.code(404).send({ error: `no chart "${id}"` });
      return reply.type('image/svg+xml; charset=utf-8').send(chart.svg);
    });

    // Server-sent events: a queue snapshot every few seconds while the page is open. The streams are ended when
    // the server closes: an open console tab held app.close() (and so a graceful shutdown) for as long as it stayed.
    const live = new Set<() => void>();
    // preClose: it runs before the server waits for its open connections, onClose only after.
    app.addHook('preClose', async () => {
      for (const end of live) end();
    });
    app.get('/admin/events', (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      const send = async () => {
        try {
          res.write(`event: snapshot\ndata: ${JSON.stringify({ at: deps.clock.now(), queues: await queueRows(deps.queues) })}\n\n`);
        } catch (err) {
          req.log.warn({ err: (err as Error).message }, 'admin live snapshot failed');
        }
      };
      void send();
      const timer = setInterval(() => void send(), deps.liveIntervalMs ?? 5000);
      const end = () => {
        clearInterval(timer);
        live.delete(end);
        res.end();
      };
      live.add(end);
      req.raw.on('close', end);
    });

    await app.register(consoleRoutes({ ...deps.console, clock: deps.clock }));

    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath('/admin/queues');
    createBullBoard({ queues: Object.values(deps.queues).map((q) => new BullMQAdapter(q)), serverAdapter });
    await app.register(serverAdapter.registerPlugin(), { prefix: '/admin/queues' });
  };
}
