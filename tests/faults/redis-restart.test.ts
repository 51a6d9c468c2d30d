import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobIds } from '../../src/queue/jobs.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { startPushSink, type PushSink } from '../deliver/support/push-sink.ts';
import { waitFor, type HeraldProcess } from '../helpers/processes.ts';
import { startLocalRedis, type LocalRedis } from '../helpers/redis-server.ts';
import { faultEnv, startRole, stopRole, tally, pushReadersAndStories } from './support.ts';

const READERS = 400;
const STORIES = 5;
const CONCURRENCY = 16;

/**
 * Herald's own redis-server (AOF everysec, as docker-compose runs it) is stopped with SIGTERM while the
 * push dispatcher process is sending 2,000 alerts, and started again on the same port and data directory
 * two seconds later. The alerts still queued survive in the AOF and each reaches its device once.
 */
describe('Redis restarted during work', () => {
  let server: LocalRedis;
  let sink: PushSink;
  let worker: HeraldProcess | undefined;
  const prefix = 'faultredis';

  beforeAll(async () => {
    server = await startLocalRedis();
    sink = await startPushSink({ delayMs: 5 });
  });
  afterAll(async () => {
    if (worker) await stopRole(worker, 'SIGKILL');
    await server?.stop();
    await sink?.close();
  });

  it('queued alerts survive the restart and are delivered once', async () => {
    const redis = createRedis(server.url, { name: 'fault-redis' });
    const queueConnection = createRedis(server.url, { forQueue: true, name: 'fault-redis-q' });
    const queues = createQueues(queueConnection, prefix);
    const enqueue = createEnqueue(queues);
    // The test's own clients see the outage too: they reconnect, nothing to report.
    for (const c of [redis, queueConnection]) c.on('error', () => undefined);
    for (const q of Object.values(queues)) q.on('error', () => undefined);
    const subscribers = createSubscriberStore(redis, prefix);
    const stories = createStoryStore(redis, prefix);
    const ledger = createLedger(redis, prefix);
    try {
      const now = Date.now();
      const { storyList, readers } = await pushReadersAndStories({ subscribers, stories }, sink, { readers: READERS, stories: STORIES, title: 'Tokyo restart', now });
      await enqueue.bulk('AlertSendPush', readers.flatMap((r) => storyList.map((s) => ({
        data: { subscriberId: r.id, storyId: s.id, topicId: 'japan', why: 'Matched: Tokyo' },
        opts: { jobId: jobIds.alert(r.id, s.id, 'push'), backoff: { type: 'delivery', delay: 200 } },
      }))));
      // Everything above is on disk before the fault, as everysec promises within a second.
      await new Promise((r) => setTimeout(r, 1500));

      worker = await startRole('push', faultEnv(prefix, {
        extra: { REDIS_URL: server.url, HERALD_PUSH_CA_FILE: sink.caFile, HERALD_PUSH_CONCURRENCY: String(CONCURRENCY) },
      }));
      await waitFor(() => sink.received.length >= 300, 60_000, 'pushes to be under way');
      await server.stop();
      const atStop = sink.received.length;
      expect(atStop).toBeLessThan(READERS * STORIES);
      await new Promise((r) => setTimeout(r, 2000));
      await server.start();

      const records = async () => Promise.all(readers.flatMap((r) => storyList.map((s) => ledger.get(r.id, s.id, 'push'))));
      await waitFor(async () => (await records()).every((r) => r?.status === 'sent' || r?.status === 'failed'), 120_000, 'every alert to end after the restart');
      await stopRole(worker, 'SIGTERM');

      expect((await records()).filter((r) => r?.status === 'sent')).toHaveLength(READERS * STORIES);
      expect(sink.received.length).toBeGreaterThan(atStop);
      const shown = tally(sink.received.map((p) => `${p.deviceId}/${String(p.payload.storyId)}`));
      expect(shown.distinct).toEqual(new Set(readers.flatMap((r) => storyList.map((s) => `${r.deviceId}/${s.id}`))));
      // A send whose "sent" could not be written while Redis was away goes again with the same Topic, once.
      expect(shown.repeated.every(([, n]) => n === 2)).toBe(true);
      expect(shown.repeated.length).toBeLessThanOrEqual(CONCURRENCY);
    } finally {
      await closeQueues(queues);
      redis.disconnect();
      queueConnection.disconnect();
    }
  }, 200_000);
});
