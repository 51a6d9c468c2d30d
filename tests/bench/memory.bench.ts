import { createECDH, randomBytes } from 'node:crypto';
import { createRedis } from '../../src/store/redis.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { createConfirmedReader } from '../helpers/worker-env.ts';
import type { Benchmark } from './types.ts';

const TOPICS = ['world', 'india', 'japan', 'politics', 'business', 'technology', 'science', 'health', 'sports', 'cricket', 'football', 'entertainment'];

/** Redis memory per subscriber with 10 topics, one push subscription and an email, from MEMORY USAGE of every key. */
const bench: Benchmark = {
  name: 'redis memory per subscriber',
  async run(ctx) {
    const n = ctx.quick ? 5_000 : 100_000;
    const prefix = uniquePrefix('bench-memory');
    const redis = createRedis(TEST_REDIS_URL);
    const subscribers = createSubscriberStore(redis, prefix);
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const p256dh = ecdh.getPublicKey().toString('base64url');
    try {
      const batch = 200;
      for (let i = 0; i < n; i += batch) {
        await Promise.all(
          Array.from({ length: Math.min(batch, n - i) }, async (_, j) => {
            const k = i + j;
            const id = await createConfirmedReader(subscribers, `reader${k}@example.org`, { timeZone: 'Asia/Kolkata', digestTime: '08:00' });
            const follows = Object.fromEntries(
              Array.from({ length: 10 }, (_, t) => [TOPICS[(k + t) % TOPICS.length]!, t % 2 === 0 ? { cadence: 'instant' as const, channels: ['push' as const, 'email' as const] } : { cadence: 'daily' as const, channels: [] }]),
            );
            await subscribers.setFollows(id, follows);
            await subscribers.addPushSubscription(id, {
              endpoint: `https://fcm.googleapis.com/fcm/send/${randomBytes(70).toString('base64url')}`,
              keys: { p256dh, auth: randomBytes(16).toString('base64url') },
            }, Date.now());
          }),
        );
        if ((i / batch) % 50 === 0) ctx.log(`${i + batch} subscribers written`);
      }
      let bytes = 0;
      let keys = 0;
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
        cursor = next;
        if (found.length === 0) continue;
        const pipe = redis.pipeline();
        for (const key of found) pipe.memory('USAGE', key, 'SAMPLES', 0);
        for (const [, v] of (await pipe.exec()) ?? []) bytes += Number(v ?? 0);
        keys += found.length;
      } while (cursor !== '0');
      ctx.log(`${keys} keys, ${(bytes / 1024 / 1024).toFixed(1)} MiB for ${n} subscribers`);
      return [{ name: `redis memory per subscriber (10 topics, 1 push subscription, email; ${n} subscribers)`, value: Math.round(bytes / n), unit: 'bytes', baseline: null, ratio: null }];
    } finally {
      await deletePrefix(redis, prefix);
      await redis.quit();
    }
  },
};
export default bench;
