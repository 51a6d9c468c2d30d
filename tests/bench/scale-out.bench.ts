// Scale-out: push throughput with one push dispatcher process, then two on the same queue (the second
// machine of the README, here a second process on this one), measured side by side in the same run.
// `npx tsx tests/bench/run.ts [--quick] scale-out`. Full: 20,000 alerts per case; quick: 2,000.
import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import webpush from 'web-push';
import { makeStory } from '../deliver/support/world.ts';
import { jobIds } from '../../src/queue/jobs.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { createReader } from '../helpers/readers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { redisCpuSeconds, sleepUntil, startTimingPushSink, startWorker, stopWorkers } from './support.ts';
import { ratio, type Benchmark } from './types.ts';

const bench: Benchmark = {
  name: 'scale-out: push dispatcher processes',
  async run(ctx) {
    const readers = ctx.quick ? 300 : 2000;
    const storiesPerCase = ctx.quick ? 3 : 10;
    const alerts = readers * storiesPerCase;
    const prefix = uniquePrefix('bench-scale');
    const redis = createRedis(TEST_REDIS_URL, { name: 'bench-scale' });
    const queueConnection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'bench-scale-q' });
    const queues = createQueues(queueConnection, prefix);
    const enqueue = createEnqueue(queues);
    const subscribers = createSubscriberStore(redis, prefix);
    const stories = createStoryStore(redis, prefix);
    const sink = await startTimingPushSink();
    const vapid = webpush.generateVAPIDKeys();
    const env = {
      REDIS_URL: TEST_REDIS_URL, HERALD_REDIS_PREFIX: prefix, HERALD_DATA_DIR: mkdtempSync(join(tmpdir(), 'herald-bench-')),
      HERALD_SCHEDULERS: 'false', HERALD_SIGNING_KEY: 'bench-signing-key-0123456789abcdef0123456789',
      VAPID_PUBLIC_KEY: vapid.publicKey, VAPID_PRIVATE_KEY: vapid.privateKey, LOG_LEVEL: 'warn',
      HERALD_PUSH_CA_FILE: sink.caFile, HERALD_PUSH_BURST_WINDOW_SECONDS: '0',
      // The per-origin pacing would cap both cases at the same rate: this measures the dispatchers.
      HERALD_PUSH_RATE_PER_SECOND: '100000', HERALD_PUSH_CONCURRENCY: '100',
    };
    try {
      const now = Date.now();
      // One device key pair for all: encryption cost is the same per message whatever the key.
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const keys = { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
      const ids: string[] = [];
      for (let r = 0; r < readers; r++) {
        const { id } = await createReader(subscribers, { email: null }, now);
        await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
        await subscribers.addPushSubscription(id, { endpoint: sink.endpoint(`d${r}`), keys }, now);
        ids.push(id);
      }
      ctx.log(`${readers} readers, ${alerts} alerts per case`);

      const queueAlerts = async (storyIds: string[], readerIds: string[]) => {
        for (let i = 0; i < readerIds.length; i += 1000) {
          await enqueue.bulk('AlertSendPush', readerIds.slice(i, i + 1000).flatMap((subscriberId) => storyIds.map((storyId) => ({
            data: { subscriberId, storyId, topicId: 'japan', why: 'Matched: Tokyo' },
            opts: { jobId: jobIds.alert(subscriberId, storyId, 'push') },
          }))));
        }
      };
      const newStories = async (label: string, n: number) => {
        const out: string[] = [];
        for (let i = 0; i < n; i++) {
          const s = makeStory(now, { title: `Tokyo scale-out ${label}-${i}` });
          await stories.put(s);
          out.push(s.id);
        }
        return out;
      };
      const runCase = async (processes: number) => {
        const procs = [];
        for (let p = 0; p < processes; p++) procs.push(await startWorker('push', env, queues.push));
        // Warm-up round (connections opened, code optimised), not measured: a cold start is not throughput.
        const warmReaders = ids.slice(0, 200 * processes);
        sink.restartWindow();
        await queueAlerts(await newStories(`warm-${processes}`, 1), warmReaders);
        await sleepUntil(() => sink.count() >= warmReaders.length, 60_000, `the warm-up with ${processes} process(es)`);
        // Paused while the batch is queued, so every process starts on a full queue at the same moment.
        await queues.push.pause();
        await queueAlerts(await newStories(`case-${processes}`, storiesPerCase), ids);
        const redisCpu0 = await redisCpuSeconds(redis);
        sink.restartWindow();
        await queues.push.resume();
        await sleepUntil(() => sink.count() >= alerts, ctx.quick ? 60_000 : 180_000, `${alerts} pushes with ${processes} process(es)`);
        // First push to last of the measured batch.
        const seconds = (sink.lastAt() - sink.firstAt()) / 1000;
        if (sink.count() !== alerts) throw new Error(`expected ${alerts} pushes, the push service got ${sink.count()}`);
        await stopWorkers(procs);
        const rate = alerts / seconds;
        // Where the time went: a Redis near one full core is the ceiling more dispatchers cannot lift.
        const redisCpu = (await redisCpuSeconds(redis)) - redisCpu0;
        ctx.log(`${processes} process(es): ${alerts} pushes in ${seconds.toFixed(2)} s = ${rate.toFixed(0)}/s; redis-server used ${redisCpu.toFixed(1)} s of CPU`);
        return rate;
      };
      const one = await runCase(1);
      const two = await runCase(2);
      return [
        { name: 'push throughput, 1 dispatcher process', value: Math.round(one), unit: 'pushes/s', baseline: null, ratio: null },
        {
          name: `push throughput, 2 dispatcher processes (ratio vs 1; ${alerts} alerts each)`,
          value: Math.round(two), unit: 'pushes/s',
          baseline: { name: '1 dispatcher process', value: Math.round(one) }, ratio: ratio(two, one),
        },
      ];
    } finally {
      await closeQueues(queues);
      await deletePrefix(redis, prefix);
      await Promise.all([redis.quit(), queueConnection.quit(), sink.close()]);
    }
  },
};
export default bench;
