import { createECDH, randomBytes } from 'node:crypto';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import webpush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebPushSender } from '../../src/deliver/push/web-push-sender.ts';
import { createOriginLimiter } from '../../src/deliver/rate-limit.ts';
import { manualClock } from '../helpers/clock.ts';
import type { PushSubscriptionRecord } from '../../src/model.ts';
import { startPushSink, type PushSink } from './support/push-sink.ts';

/**
 * The push sender's transport (a keep-alive undici pool per push-service origin): what a user relies on is that a
 * service that is down or hangs becomes a retry with the cause named, never a hung worker or a lost alert,
 * and that many pushes to one service share a few connections.
 */
describe('push transport', () => {
  const vapid = { ...webpush.generateVAPIDKeys(), subject: 'mailto:ops@example.test' };
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const keys = { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
  const device = (endpoint: string): PushSubscriptionRecord => ({ id: 'd1', endpoint, keys, createdAt: 0 });
  const opts = { ttlSeconds: 60, urgency: 'normal' as const };
  let sink: PushSink;
  let silent: Server;
  const silentSockets: Socket[] = [];
  beforeAll(async () => {
    sink = await startPushSink();
    // Accepts TCP connections and never answers (not even the TLS handshake).
    silent = createTcpServer((s) => void silentSockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    for (const s of silentSockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
    await sink?.close();
  });

  it('a stored endpoint that is no https URL (or none at all) fails that device for good, naming it, never throws', async () => {
    const sender = createWebPushSender(vapid, { timeoutMs: 2000 });
    try {
      // Stored before the API checked endpoints: "mailto:" parses as a URL whose origin is "null", which no VAPID
      // audience can name; "http:" would send the subscription's keys' ciphertext and VAPID token in the clear.
      for (const endpoint of ['mailto:ops@example.test', 'data:text/plain,x', 'http://127.0.0.1:9/push', 'not a url', undefined]) {
        const outcome = await sender.send(device(endpoint as string), '{}', opts);
        expect(outcome).toMatchObject({ kind: 'permanent', status: 0, reason: expect.stringMatching(/^invalid push endpoint/) });
      }
      expect(sender.stats().requests).toBe(0);
    } finally {
      sender.close();
    }
  });

  it('a refused connection is a retry naming the cause', async () => {
    const closed = createTcpServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const sender = createWebPushSender(vapid, { ca: sink.ca });
    try {
      const out = await sender.send(device(`https://127.0.0.1:${port}/push/x`), '{"title":"t"}', opts);
      expect(out).toMatchObject({ kind: 'retry', status: null, retryAfterMs: null });
      expect(out.kind === 'retry' && out.reason).toMatch(/^network error: .*ECONNREFUSED/);
    } finally {
      sender.close();
    }
  });

  it('a service that never answers is a retry within the timeout, not a hung send', async () => {
    const port = (silent.address() as AddressInfo).port;
    const sender = createWebPushSender(vapid, { ca: sink.ca, timeoutMs: 300 });
    try {
      const t0 = Date.now();
      const out = await sender.send(device(`https://127.0.0.1:${port}/push/x`), '{"title":"t"}', opts);
      expect(out).toMatchObject({ kind: 'retry', status: null });
      expect(out.kind === 'retry' && out.reason).toMatch(/^network error: .*timeout/i);
      // The configured timeout holds for the TLS handshake too, not only for the answer.
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      sender.close();
    }
  });

  it('a service that takes the push and never answers is a retry naming the timeout, within the timeout', async () => {
    const slow = await startPushSink({ delayMs: 30_000 });
    const sender = createWebPushSender(vapid, { ca: slow.ca, timeoutMs: 400 });
    try {
      const d = slow.newDevice();
      const t0 = Date.now();
      const out = await sender.send({ id: d.id, ...d.subscription, createdAt: 0 }, '{"title":"t"}', opts);
      expect(out).toMatchObject({ kind: 'retry', status: null });
      expect(out.kind === 'retry' && out.reason).toMatch(/^network error: .*timeout/i);
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      sender.close();
      await slow.close();
    }
  });

  it("a refusal's reason keeps the start of the service's answer, not the whole of a huge error page", async () => {
    const sender = createWebPushSender(vapid, { ca: sink.ca });
    try {
      const d = sink.newDevice();
      const page = `<html><body>${'Bad request: the JWT audience does not match. '.repeat(400)}</body></html>`;
      sink.script(d.id, [{ status: 400, body: page }]);
      const out = await sender.send({ id: d.id, ...d.subscription, createdAt: 0 }, '{"title":"t"}', opts);
      expect(out).toMatchObject({ kind: 'permanent', status: 400 });
      expect(out.kind === 'permanent' && out.reason).toMatch(/^push service answered 400: <html><body>Bad request: the JWT audience/);
      expect(out.kind === 'permanent' && out.reason.length).toBeLessThan(300);
      // The connection stays usable: the next push to that service goes through.
      expect(await sender.send({ id: d.id, ...d.subscription, createdAt: 0 }, '{"title":"again"}', opts)).toMatchObject({ kind: 'sent', status: 201 });
    } finally {
      sender.close();
    }
  });

  it('200 pushes sent side by side reach the service over a bounded number of connections', async () => {
    const sender = createWebPushSender(vapid, { ca: sink.ca });
    try {
      const d = sink.newDevice();
      const sub: PushSubscriptionRecord = { id: d.id, ...d.subscription, createdAt: 0 };
      const before = sink.connections();
      const outs = await Promise.all(Array.from({ length: 200 }, (_, i) => sender.send(sub, JSON.stringify({ title: `n${i}` }), opts)));
      expect(outs.every((o) => o.kind === 'sent')).toBe(true);
      expect(sink.forDevice(d.id)).toHaveLength(200);
      expect(sink.connections() - before).toBeLessThanOrEqual(64);
    } finally {
      sender.close();
    }
  });

  it('paces each push service to ratePerSecondPerOrigin (HERALD_PUSH_RATE_PER_SECOND), and every push arrives', async () => {
    const sender = createWebPushSender(vapid, { ca: sink.ca, ratePerSecondPerOrigin: 10 });
    try {
      const d = sink.newDevice();
      const sub: PushSubscriptionRecord = { id: d.id, ...d.subscription, createdAt: 0 };
      const outs = await Promise.all(Array.from({ length: 25 }, (_, i) => sender.send(sub, JSON.stringify({ title: `paced ${i}` }), opts)));
      expect(outs.every((o) => o.kind === 'sent')).toBe(true);
      const at = sink.requests.filter((r) => r.deviceId === d.id).map((r) => r.at);
      expect(at).toHaveLength(25);
      // A bucket of 10 refilled at 10 per second: the other 15 need at least 1.5 s (unpaced, 25 take well under
      // 100 ms here).
      expect(Math.max(...at) - Math.min(...at)).toBeGreaterThanOrEqual(1300);
    } finally {
      sender.close();
    }
  });

  it('the limit is per push-service origin: a busy or paused service does not hold back another', async () => {
    const clock = manualClock('2027-02-01T09:00:00Z');
    const slept: number[] = [];
    const limiter = createOriginLimiter(10, clock, async (ms) => {
      slept.push(ms);
      clock.advance(ms);
    });
    for (let i = 0; i < 10; i++) await limiter.take('https://fcm.example.test');
    expect(slept).toEqual([]);
    // The first service's bucket is empty; the second's is full.
    await limiter.take('https://push.example.test');
    expect(slept).toEqual([]);
    await limiter.take('https://fcm.example.test');
    expect(slept).toEqual([100]);
    // A 429's Retry-After pauses that service only.
    limiter.pause('https://fcm.example.test', clock.now() + 30_000);
    await limiter.take('https://push.example.test');
    expect(slept).toEqual([100]);
    await limiter.take('https://fcm.example.test');
    expect(slept[1]).toBe(30_000);
    // Shutdown: a take that would wait out a pause answers the wait left instead (nothing sent); a free slot still sends.
    limiter.pause('https://fcm.example.test', clock.now() + 20_000);
    limiter.stop();
    expect(await limiter.take('https://fcm.example.test')).toBe(20_000);
    expect(await limiter.take('https://push.example.test')).toBe(0);
    expect(slept).toHaveLength(2);
  });
});
