import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import type { Role } from '../../src/runtime/herald.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore, type StoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore, type SubscriberStore } from '../../src/store/subscribers.ts';
import { startPushSink, type PushSink } from '../deliver/support/push-sink.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { spawnHerald, waitFor, type HeraldProcess } from '../helpers/processes.ts';
import { createReader } from '../helpers/readers.ts';
import { workerEnv } from '../helpers/worker-env.ts';
import { makeStory } from '../deliver/support/world.ts';

export const FAULT_TOPICS = [{ id: 'japan', name: 'Japan', group: 'Places', description: 'Japan', query: 'japan OR tokyo' }];

/**
 * The environment shared by every worker process of one fault test: one prefix, one VAPID pair, one
 * data dir with the test's own topic catalog and feed list; `extra` adds or overrides per test.
 */
export function faultEnv(prefix: string, opts: { feeds?: { id: string; url: string }[]; extra?: Record<string, string> } = {}) {
  const env = workerEnv(prefix, {
    HERALD_ALLOW_PRIVATE_FEEDS: 'true',
    // A killed process's jobs come back after the lock lapses: short, so the test does not wait long.
    HERALD_JOB_LOCK_SECONDS: '2',
    HERALD_SHUTDOWN_TIMEOUT_SECONDS: '20',
    HERALD_PUSH_BURST_WINDOW_SECONDS: '0',
    // Digests are handed out seconds after their stories were classified: with the default settle interval
    // those stories would wait for the next day's digest, which these tests never reach.
    HERALD_DIGEST_SETTLE_SECONDS: '0',
    LOG_LEVEL: 'info',
  });
  writeFileSync(env.HERALD_FEEDS_FILE!, JSON.stringify({ feeds: opts.feeds ?? [] }));
  env.HERALD_TOPICS_FILE = join(env.HERALD_DATA_DIR!, 'topics.json');
  writeFileSync(env.HERALD_TOPICS_FILE, JSON.stringify({ topics: FAULT_TOPICS }));
  return { ...env, ...opts.extra };
}

/** Readers who follow Japan instantly by push, each with one device of the sink, and stories stored for them. */
export async function pushReadersAndStories(
  deps: { subscribers: SubscriberStore; stories: StoryStore },
  sink: { newDevice(): { id: string; subscription: { endpoint: string; keys: { p256dh: string; auth: string } } } },
  opts: { readers: number; stories: number; title: string; now: number },
) {
  const storyList: ReturnType<typeof makeStory>[] = [];
  for (let i = 0; i < opts.stories; i++) {
    const s = makeStory(opts.now, { title: `${opts.title} ${i}` });
    await deps.stories.put(s);
    storyList.push(s);
  }
  const readers: { id: string; deviceId: string }[] = [];
  for (let r = 0; r < opts.readers; r++) {
    const { id } = await createReader(deps.subscribers, { email: null }, opts.now);
    await deps.subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
    const d = sink.newDevice();
    await deps.subscribers.addPushSubscription(id, d.subscription, opts.now);
    readers.push({ id, deviceId: d.id });
  }
  return { storyList, readers };
}

/** Runs `herald worker <role>` as its own process and waits until it says it is running. */
export async function startRole(role: Role, env: Record<string, string>): Promise<HeraldProcess> {
  const p = spawnHerald(['worker', role], env);
  try {
    await waitFor(() => p.out.stdout.includes('Herald worker is running'), 30_000, `the ${role} worker to start (${p.out.stderr.slice(-400)}${p.out.stdout.slice(-400)})`);
  } catch (err) {
    // Not handed to the caller, so nobody else would stop it.
    p.child.kill('SIGKILL');
    throw err;
  }
  return p;
}

export async function stopRole(p: HeraldProcess, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  await p.exited;
}

/**
 * A feed publisher on loopback whose answers take `delayMs`, so a fetch is in flight when the poller dies.
 */
export async function startSlowFeeds(feeds: Record<string, string>, delayMs: number) {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const body = feeds[path];
    res.on('error', () => undefined);
    setTimeout(() => {
      if (body === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'application/rss+xml; charset=utf-8' }).end(body);
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    hits: (path: string) => hits.get(path) ?? 0,
    totalHits: () => [...hits.values()].reduce((a, b) => a + b, 0),
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** One RSS 2.0 document with the given items. */
export function rss(title: string, items: { guid: string; title: string; link: string; description: string; pubDate: Date }[]): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>${esc(title)}</title><link>https://wire.example.test/</link><description>${esc(title)}</description>
${items.map((i) => `<item><guid isPermaLink="false">${esc(i.guid)}</guid><title>${esc(i.title)}</title><link>${esc(i.link)}</link><description>${esc(i.description)}</description><pubDate>${i.pubDate.toUTCString()}</pubDate></item>`).join('\n')}
</channel></rss>`;
}

/** Counts of a list of keys: how many distinct, and which appear more than once. */
export function tally(keys: Iterable<string>) {
  const n = new Map<string, number>();
  for (const k of keys) n.set(k, (n.get(k) ?? 0) + 1);
  return { distinct: new Set(n.keys()), repeated: [...n.entries()].filter(([, c]) => c > 1) };
}

/**
 * An SMTP server on loopback that can be taken down: while down it answers 421 to new connections and to
 * MAIL FROM on connections a sender's pool kept open, as a relay being restarted does. Each accepted
 * message is kept with its Message-ID.
 */
export async function startSwitchableSmtp() {
  const accepted: { messageId: string; to: string; at: number }[] = [];
  let down = false;
  let refusals = 0;
  const unavailable = () => {
    refusals++;
    return Object.assign(new Error('4.3.2 service shutting down, try again later'), { responseCode: 421 });
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onConnect(_session, callback) {
      callback(down ? unavailable() : undefined);
    },
    onMailFrom(_address, _session, callback) {
      callback(down ? unavailable() : undefined);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const head = Buffer.concat(chunks).toString('utf8').split(/\r?\n\r?\n/)[0] ?? '';
        const messageId = /^message-id:\s*(\S+)/im.exec(head)?.[1] ?? '';
        accepted.push({ messageId, to: session.envelope.rcptTo[0]?.address ?? '', at: Date.now() });
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    accepted,
    refusals: () => refusals,
    setDown: (value: boolean) => void (down = value),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * What a push fault test works with, set up for the file and torn down after it: Redis connections and stores under a
 * prefix of its own, the queues, a local push service (`sink`, from beforeAll) and the dispatcher the test starts
 * (`worker`), killed if it still runs.
 */
export function pushFaultWorld(name: string) {
  const prefix = uniquePrefix(name);
  const redis = createRedis(TEST_REDIS_URL, { name });
  const queueConnection = createRedis(TEST_REDIS_URL, { forQueue: true, name: `${name}-q` });
  const queues = createQueues(queueConnection, prefix);
  const world = {
    prefix, queues, enqueue: createEnqueue(queues),
    stories: createStoryStore(redis, prefix), subscribers: createSubscriberStore(redis, prefix), ledger: createLedger(redis, prefix),
    sink: undefined as unknown as PushSink,
    worker: undefined as HeraldProcess | undefined,
  };
  beforeAll(async () => {
    world.sink = await startPushSink({ delayMs: 5 });
  });
  afterAll(async () => {
    if (world.worker) await stopRole(world.worker, 'SIGKILL');
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueConnection.quit(), world.sink?.close()]);
  });
  return world;
}
