// End-to-end latency: a story appears in a local feed, its WebSub hub delivers the new feed to Herald,
// and the alert arrives at a local push service. Every stage runs as its own process (web, poller,
// classifier, push dispatcher). p50 and p99 over 1,000 stories (quick: 100), published one after another.
// Beside each: the same quantile of the hub's delivery being acknowledged (the ingest leg alone), measured
// on the same stories. `npx tsx tests/bench/run.ts [--quick] e2e`.
import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import webpush from 'web-push';
import { storyIdFor } from '../../src/ingest/normalize.ts';
import { closeQueues, createQueues } from '../../src/queue/queues.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { startFixtureServer } from '../helpers/http-fixtures.ts';
import { freePort } from '../helpers/herald.ts';
import { spawnHerald, type HeraldProcess } from '../helpers/processes.ts';
import { createReader } from '../helpers/readers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { startLocalHub } from '../ingest/local-hub.ts';
import { quantile, sleepUntil, startTimingPushSink, startWorker, stopWorkers } from './support.ts';
import { ratio, type Benchmark } from './types.ts';

const atom = (hub: string, self: string, entries: { id: string; title: string }[]) => `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Wire</title>
  <link rel="hub" href="${hub}"/>
  <link rel="self" href="${self}"/>
  <id>urn:bench-wire</id>
  <updated>${new Date().toISOString()}</updated>
  ${entries.map((e) => `<entry><id>${e.id}</id><title>${e.title}</title><link href="https://wire.example.test/${e.id}"/><updated>${new Date().toISOString()}</updated><summary>Talks in Japan.</summary></entry>`).join('\n')}
</feed>`;

const bench: Benchmark = {
  name: 'end-to-end latency: WebSub feed to push',
  async run(ctx) {
    const stories = ctx.quick ? 100 : 1000;
    const prefix = uniquePrefix('bench-e2e');
    const redis = createRedis(TEST_REDIS_URL, { name: 'bench-e2e' });
    const queueConnection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'bench-e2e-q' });
    const queues = createQueues(queueConnection, prefix);
    const subscribers = createSubscriberStore(redis, prefix);
    const sink = await startTimingPushSink();
    const hub = await startLocalHub();
    const site = await startFixtureServer();
    const feedUrl = site.url('/wire.xml');
    site.set('/wire.xml', { headers: { 'content-type': 'application/atom+xml' }, body: atom(hub.url, feedUrl, [{ id: 'e0', title: 'Opening entry' }]) });
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'herald-bench-e2e-'));
    writeFileSync(join(dir, 'feeds.json'), JSON.stringify({ feeds: [{ id: 'wire', url: feedUrl }] }));
    writeFileSync(join(dir, 'topics.json'), JSON.stringify({ topics: [{ id: 'japan', name: 'Japan', group: 'Places', description: 'Japan', query: 'japan OR tokyo' }] }));
    const vapid = webpush.generateVAPIDKeys();
    const env = {
      REDIS_URL: TEST_REDIS_URL, HERALD_REDIS_PREFIX: prefix, HERALD_DATA_DIR: dir,
      HERALD_FEEDS_FILE: join(dir, 'feeds.json'), HERALD_TOPICS_FILE: join(dir, 'topics.json'),
      HERALD_PORT: String(port), HERALD_PUBLIC_URL: `http://127.0.0.1:${port}`, HERALD_ALLOW_PRIVATE_FEEDS: 'true',
      HERALD_SCHEDULERS: 'false', HERALD_SIGNING_KEY: 'bench-signing-key-0123456789abcdef0123456789',
      HERALD_ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef',
      VAPID_PUBLIC_KEY: vapid.publicKey, VAPID_PRIVATE_KEY: vapid.privateKey, LOG_LEVEL: 'warn',
      HERALD_PUSH_CA_FILE: sink.caFile, HERALD_PUSH_BURST_WINDOW_SECONDS: '0', HERALD_PUSH_RATE_PER_SECOND: '100000',
      // Fetched once to find the hub; from then on the hub's deliveries are the only way stories arrive.
      HERALD_WEBSUB_FALLBACK_POLL_SECONDS: '7200',
      // The per-address write limit counts hub deliveries too; the hub here sends far more than 60 a minute.
      HERALD_RATE_LIMIT_WRITES_PER_MINUTE: '100000',
    };
    const procs: HeraldProcess[] = [];
    try {
      const now = Date.now();
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const { id } = await createReader(subscribers, { email: null }, now);
      await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
      await subscribers.addPushSubscription(id, { endpoint: sink.endpoint('reader'), keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') } }, now);

      const web = spawnHerald(['worker', 'web'], env);
      procs.push(web);
      const started = await Promise.allSettled([startWorker('push', env, queues.push), startWorker('classifier', env, queues.classify), startWorker('poller', env, queues.feeds)]);
      for (const r of started) if (r.status === 'fulfilled') procs.push(r.value);
      for (const r of started) if (r.status === 'rejected') throw r.reason;
      await sleepUntil(() => web.out.stdout.includes('Herald is running') || web.out.stderr.includes('Herald is running'), 30_000, `the web process (${web.out.stderr.slice(-300)})`);
      await queues.feeds.add('FeedFetch', { feedId: 'wire' }, { jobId: 'bench-first-fetch' });
      await sleepUntil(() => hub.subscriptions[0]?.verified === true, 30_000, 'the WebSub subscription to be verified');
      const sub = hub.subscriptions[0]!;
      ctx.log(`subscribed via the local hub; publishing ${stories} stories one after another`);

      const endToEnd: number[] = [];
      const acked: number[] = [];
      for (let i = 1; i <= stories; i++) {
        const entry = { id: `e${i}`, title: `Tokyo summit update ${i}` };
        const body = atom(hub.url, feedUrl, [entry]);
        const storyId = storyIdFor('wire', entry.id);
        const t0 = Date.now();
        const res = await hub.publish(sub, body);
        acked.push(Date.now() - t0);
        if (res.status !== 202 || res.body.created !== 1) throw new Error(`delivery ${i} not taken: ${res.status} ${JSON.stringify(res.body)}`);
        await sleepUntil(() => sink.arrivedAt(storyId) !== undefined, 30_000, `the push for story ${i}`);
        endToEnd.push(sink.arrivedAt(storyId)! - t0);
      }
      endToEnd.sort((a, b) => a - b);
      acked.sort((a, b) => a - b);
      const p50 = quantile(endToEnd, 0.5);
      const p99 = quantile(endToEnd, 0.99);
      const a50 = quantile(acked, 0.5);
      const a99 = quantile(acked, 0.99);
      ctx.log(`feed to push: p50 ${p50} ms, p99 ${p99} ms; hub delivery acknowledged: p50 ${a50} ms, p99 ${a99} ms`);
      return [
        { name: `end-to-end latency p50, WebSub feed to push (${stories} stories)`, value: p50, unit: 'ms', baseline: { name: 'hub delivery acknowledged p50', value: a50 }, ratio: ratio(p50, a50) },
        { name: `end-to-end latency p99, WebSub feed to push (${stories} stories)`, value: p99, unit: 'ms', baseline: { name: 'hub delivery acknowledged p99', value: a99 }, ratio: ratio(p99, a99) },
      ];
    } finally {
      await stopWorkers(procs);
      await closeQueues(queues);
      await deletePrefix(redis, prefix);
      await Promise.all([redis.quit(), queueConnection.quit(), sink.close(), hub.close(), site.close()]);
    }
  },
};
export default bench;
