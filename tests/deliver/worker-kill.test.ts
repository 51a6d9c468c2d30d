import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import webpush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobIds } from '../../src/queue/jobs.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { startPushSink, type PushSink } from './support/push-sink.ts';
import { startScriptedSmtp, type ScriptedSmtp } from './support/smtp.ts';
import { makeStory } from './support/world.ts';
import { createReader } from '../helpers/readers.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const log = pino({ level: 'silent' });
const waitFor = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

/**
 * Real dispatcher processes (`node src/cli/herald.mjs worker push|email`) configured only through the
 * environment, killed with SIGKILL in the middle of 2,000 alerts and restarted. Afterwards the ledger holds
 * exactly one final "sent" record per alert, and the local services show each alert exactly once to the
 * reader. A send that was on the wire when the process died cannot be known to have arrived, so it is sent
 * again with the same Topic header / Message-ID (the notification tag and the mail id): the test bounds
 * those resends by what was in flight and checks each one is such a same-id resend of a reclaimed record.
 */
describe('dispatcher processes killed mid-send', () => {
  const prefix = uniquePrefix('kill');
  const redis = createRedis(TEST_REDIS_URL, { name: 'kill-test' });
  const queueConnection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'kill-test-q' });
  const queues = createQueues(queueConnection, prefix);
  const enqueue = createEnqueue(queues);
  const subscribers = createSubscriberStore(redis, prefix);
  const stories = createStoryStore(redis, prefix);
  const ledger = createLedger(redis, prefix);
  const vapid = webpush.generateVAPIDKeys();
  const children = new Set<ChildProcess>();
  let sink: PushSink;
  let smtp: ScriptedSmtp;
  const PUSH_CONCURRENCY = 16;
  const EMAIL_CONCURRENCY = 4;

  const spawnWorker = async (role: 'push' | 'email') => {
    const child = spawn(process.execPath, ['src/cli/herald.mjs', 'worker', role], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        REDIS_URL: TEST_REDIS_URL,
        HERALD_REDIS_PREFIX: prefix,
        HERALD_DATA_DIR: mkdtempSync(join(tmpdir(), 'herald-kill-')),
        HERALD_SCHEDULERS: 'false',
        HERALD_SIGNING_KEY: 'kill-test-signing-key-0123456789abcdef0123',
        VAPID_PUBLIC_KEY: vapid.publicKey,
        VAPID_PRIVATE_KEY: vapid.privateKey,
        HERALD_PUSH_CA_FILE: sink.caFile,
        HERALD_PUSH_BURST_WINDOW_SECONDS: '0',
        HERALD_PUSH_CONCURRENCY: String(PUSH_CONCURRENCY),
        HERALD_EMAIL_CONCURRENCY: String(EMAIL_CONCURRENCY),
        HERALD_JOB_LOCK_SECONDS: '2',
        HERALD_SHUTDOWN_TIMEOUT_SECONDS: '20',
        SMTP_URL: smtp.url,
        LOG_LEVEL: 'info',
      },
    });
    children.add(child);
    child.on('exit', () => children.delete(child));
    let out = '';
    child.stdout!.on('data', (c: Buffer) => void (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => void (out += c.toString()));
    await waitFor(`the ${role} worker to start (output so far: ${out.slice(-500)})`, () => out.includes('Herald worker is running'), 20_000);
    return { child, output: () => out };
  };
  const exitOf = (child: ChildProcess) =>
    new Promise<{ code: number | null; signal: string | null }>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) r({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, signal) => r({ code, signal }));
    });

  /** Creates readers following "japan" on one channel, stories, and one AlertSend job per (reader, story). */
  const seed = async (channel: 'push' | 'email', readers: number, perReader: number) => {
    const now = Date.now();
    const alerts: { subscriberId: string; storyId: string; deviceId?: string; email?: string }[] = [];
    const storyList = [];
    for (let i = 0; i < perReader; i++) {
      const s = makeStory(now, { title: `Kill test ${channel} story ${i}` });
      await stories.put(s);
      storyList.push(s);
    }
    for (let r = 0; r < readers; r++) {
      const email = channel === 'email' ? `reader${r}@kill.test` : null;
      const { id } = await createReader(subscribers, { email, timeZone: 'UTC', digestTime: '08:00' }, now);
      await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: [channel] } });
      let deviceId: string | undefined;
      if (channel === 'push') {
        const d = sink.newDevice();
        deviceId = d.id;
        await subscribers.addPushSubscription(id, d.subscription, now);
      }
      for (const s of storyList) alerts.push({ subscriberId: id, storyId: s.id, deviceId, email: email ?? undefined });
    }
    const name = channel === 'push' ? 'AlertSendPush' : 'AlertSendEmail';
    await enqueue.bulk(name, alerts.map((a) => ({
      data: { subscriberId: a.subscriberId, storyId: a.storyId, topicId: 'japan', why: 'Matched: Japan' },
      opts: { jobId: jobIds.alert(a.subscriberId, a.storyId, channel), backoff: { type: 'delivery', delay: 200 } },
    })));
    return alerts;
  };
  const finalStatuses = async (channel: 'push' | 'email', alerts: { subscriberId: string; storyId: string }[]) => {
    const out = [];
    for (const a of alerts) out.push(await ledger.get(a.subscriberId, a.storyId, channel));
    return out;
  };

  beforeAll(async () => {
    sink = await startPushSink({ delayMs: 5 });
    smtp = await startScriptedSmtp({ delayMs: 5 });
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueConnection.quit()]);
    await Promise.all([sink?.close(), smtp?.close()]);
  });

  it('SIGKILL during 2,000 alerts (1,500 push, 500 email), then a restart: each alert sent exactly once', async () => {
    const push = await seed('push', 300, 5);
    const email = await seed('email', 100, 5);
    expect(push.length + email.length).toBe(2000);

    const first = [await spawnWorker('push'), await spawnWorker('email')];
    const atKill = { push: 0, email: 0 };
    await Promise.all([
      (async () => {
        await waitFor('pushes to be under way', () => sink.received.length >= 300, 60_000);
        first[0]!.child.kill('SIGKILL');
        await exitOf(first[0]!.child);
        atKill.push = sink.received.length;
      })(),
      (async () => {
        await waitFor('emails to be under way', () => smtp.accepted() >= 80, 60_000);
        first[1]!.child.kill('SIGKILL');
        await exitOf(first[1]!.child);
        atKill.email = smtp.accepted();
      })(),
    ]);
    expect(atKill.push).toBeLessThan(push.length);
    expect(atKill.email).toBeLessThan(email.length);

    const second = [await spawnWorker('push'), await spawnWorker('email')];
    await waitFor('every alert to end in the ledger', async () => {
      const [p, e] = await Promise.all([finalStatuses('push', push), finalStatuses('email', email)]);
      return [...p, ...e].every((r) => r !== null && ['sent', 'failed', 'skipped'].includes(r.status));
    }, 90_000);
    for (const w of second) w.child.kill('SIGTERM');
    await Promise.all(second.map((w) => exitOf(w.child)));

    // Per the ledger: every record ended as sent, once.
    const pushRecords = await finalStatuses('push', push);
    const emailRecords = await finalStatuses('email', email);
    expect(pushRecords.filter((r) => r?.status === 'sent')).toHaveLength(1500);
    expect(emailRecords.filter((r) => r?.status === 'sent')).toHaveLength(500);

    // Per the push service: every (device, story) shown exactly once; a resend shares the Topic (= tag).
    const shown = new Map<string, number>();
    for (const p of sink.received) {
      expect(p.headers.topic).toBe(p.payload.storyId);
      const k = `${p.deviceId}/${String(p.payload.storyId)}`;
      shown.set(k, (shown.get(k) ?? 0) + 1);
    }
    expect(new Set(push.map((a) => `${a.deviceId}/${a.storyId}`))).toEqual(new Set(shown.keys()));
    const pushResent = [...shown.entries()].filter(([, n]) => n > 1);
    expect(pushResent.every(([, n]) => n === 2)).toBe(true);
    expect(pushResent.length).toBeLessThanOrEqual(PUSH_CONCURRENCY);
    const reclaimedPush = new Set(push.filter((_, i) => (pushRecords[i]?.reclaims ?? 0) > 0).map((a) => `${a.deviceId}/${a.storyId}`));
    for (const [k] of pushResent) expect(reclaimedPush.has(k)).toBe(true);

    // Per the SMTP server: every alert's Message-ID arrived, a resend carries the same one.
    const ids = new Map<string, number>();
    for (const m of smtp.mails) ids.set(m.messageId ?? '', (ids.get(m.messageId ?? '') ?? 0) + 1);
    expect(new Set(ids.keys())).toEqual(new Set(email.map((a) => `<alert.${a.subscriberId}.${a.storyId}.email@localhost>`)));
    const mailResent = [...ids.values()].filter((n) => n > 1);
    expect(mailResent.length).toBeLessThanOrEqual(EMAIL_CONCURRENCY);
    if (process.env.KILL_TEST_REPORT) process.stderr.write(`kill test: at kill ${JSON.stringify(atKill)}; same-id resends push ${pushResent.length}, email ${mailResent.length}\n`);
  }, 180_000);

  it('SIGTERM finishes in-flight sends before exiting: nothing left mid-send, nothing sent twice after the restart', async () => {
    const before = sink.received.length;
    const push = await seed('push', 100, 3);
    const w = await spawnWorker('push');
    await waitFor('sends to be under way', () => sink.received.length - before >= 60, 60_000);
    w.child.kill('SIGTERM');
    expect(await exitOf(w.child)).toEqual({ code: 0, signal: null });
    expect(w.output()).toContain('shutting down: finishing in-flight jobs');
    const records = await finalStatuses('push', push);
    expect(records.filter((r) => r?.status === 'sending')).toHaveLength(0);
    const sentAtStop = records.filter((r) => r?.status === 'sent').length;
    expect(sentAtStop).toBe(sink.received.length - before);
    expect(sentAtStop).toBeLessThan(push.length);

    const again = await spawnWorker('push');
    await waitFor('the rest to be sent', async () => (await finalStatuses('push', push)).every((r) => r?.status === 'sent'), 60_000);
    again.child.kill('SIGTERM');
    await exitOf(again.child);
    expect(sink.received.length - before).toBe(push.length);
  }, 120_000);
});
