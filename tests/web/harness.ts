import { manualClock } from '../helpers/clock.ts';
import { startTestHerald, type TestHerald } from '../helpers/herald.ts';
import { startPushService, type LocalPushService } from '../helpers/push-server.ts';
import { testRedis } from '../helpers/redis.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { confirmationLink, followConfirmation, webClient } from '../helpers/web-client.ts';

/** One Herald with a local SMTP sink and push service, for the API tests of one file. */
export async function startWebHarness(name: string, env: Record<string, string> = {}) {
  const clock = manualClock('2027-01-15T00:00:00Z');
  const smtp: SmtpSink = await startSmtpSink();
  const push: LocalPushService = await startPushService();
  const t: TestHerald = await startTestHerald({ name, clock, smtpUrl: smtp.url, pushCa: push.ca, pushOrigin: push.origin, env });
  const redis = testRedis();
  return {
    t,
    smtp,
    push,
    clock,
    redis,
    client: () => webClient(t.baseUrl),
    /** A subscriber created from the page (cookie + CSRF), with its bearer token. */
    async newSubscriber(body: Record<string, unknown> = {}) {
      const c = webClient(t.baseUrl);
      const res = await c.api('/api/subscribers', { method: 'POST', body });
      if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
      return { c, id: res.body.id as string, token: res.body.token as string, created: res.body };
    },
    async confirm(address: string) {
      return followConfirmation(confirmationLink(smtp.to(address)));
    },
    /** Every key under this Herald's prefix, sorted: "nothing changed" compares two of these with their values. */
    async snapshot(): Promise<Record<string, unknown>> {
      const out: Record<string, unknown> = {};
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${t.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          // Rate-limit counters, BullMQ bookkeeping and the metrics counters (flushed on a timer, whenever it
          // fires) move with every request and job; they are not reader data.
          if (key.includes(':ratelimit:') || key.startsWith(`${t.prefix}:bull`) || key.startsWith(`${t.prefix}:stats:`) || /:\{(feeds|classify|push|email|digest)\}/.test(key)) continue;
          const type = await redis.type(key);
          out[key] =
            type === 'hash' ? await redis.hgetall(key)
            : type === 'set' ? (await redis.smembers(key)).sort()
            : type === 'zset' ? await redis.zrange(key, 0, -1, 'WITHSCORES')
            : type === 'string' ? await redis.get(key)
            : type;
        }
      } while (cursor !== '0');
      return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
    },
    async close() {
      await redis.quit();
      await t.close();
      await Promise.all([smtp.close(), push.close()]);
    },
  };
}
export type WebHarness = Awaited<ReturnType<typeof startWebHarness>>;
