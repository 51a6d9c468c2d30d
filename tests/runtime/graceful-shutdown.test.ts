import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { jobIds } from '../../src/queue/jobs.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';

/** SIGTERM while a dispatcher is sending: in-flight sends finish, the rest stay queued, nothing is lost or doubled. */
describe('stopping an email dispatcher with SIGTERM', () => {
  const prefix = uniquePrefix('sigterm');
  const redis = createRedis(TEST_REDIS_URL);
  const queueRedis = createRedis(TEST_REDIS_URL, { forQueue: true });
  const queues = createQueues(queueRedis, prefix);
  const enqueue = createEnqueue(queues);
  const ledger = createLedger(redis, prefix);
  let smtp: SmtpSink;
  const dir = mkdtempSync(join(tmpdir(), 'herald-sigterm-'));
  const vapid = webpush.generateVAPIDKeys();
  const N = 20;
  const subscriberIds: string[] = [];
  const storyId = 'story-sigterm-1';

  const startWorker = () => {
    const child = spawn(process.execPath, ['src/cli/herald.mjs', 'worker', 'email'], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: TEST_REDIS_URL,
        HERALD_REDIS_PREFIX: prefix,
        SMTP_URL: smtp.url,
        HERALD_EMAIL_CONCURRENCY: '2',
        HERALD_DATA_DIR: dir,
        HERALD_FEEDS_FILE: join(dir, 'feeds.json'),
        VAPID_PUBLIC_KEY: vapid.publicKey,
        VAPID_PRIVATE_KEY: vapid.privateKey,
        HERALD_SIGNING_KEY: 'sigterm-test-signing-key-0123456789abcdef',
        HERALD_SCHEDULERS: 'false',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    return { child, exited, stderr: () => stderr };
  };

  beforeAll(async () => {
    writeFileSync(join(dir, 'feeds.json'), '{"feeds":[]}');
    smtp = await startSmtpSink({ delayMs: 150 });
    const subscribers = createSubscriberStore(redis, prefix);
    const stories = createStoryStore(redis, prefix);
    await stories.addIfNew({
      id: storyId, feedId: 'f', guid: 'g-sigterm', url: 'https://wire.example.test/a', title: 'Tokyo talks',
      summary: 'Japan and India', categories: [], publishedAt: 0, firstSeenAt: 0,
    });
    for (let i = 0; i < N; i++) {
      const { id } = await subscribers.create({ email: `reader${i}@example.test`, timeZone: 'UTC', digestTime: '08:00' }, 0);
      subscriberIds.push(id);
    }
    await enqueue.bulk('AlertSendEmail', subscriberIds.map((subscriberId) => ({
      data: { subscriberId, storyId, topicId: 'japan', why: 'Matched: Tokyo in title' },
      opts: { jobId: jobIds.alert(subscriberId, storyId, 'email') },
    })));
  });

  afterAll(async () => {
    await closeQueues(queues);
    await deletePrefix(redis, prefix);
    await Promise.all([redis.quit(), queueRedis.quit(), smtp.close()]);
  });

  it('finishes in-flight sends, leaves the rest queued, and a new worker sends each once', async () => {
    const first = startWorker();
    const deadline = Date.now() + 20_000;
    while (smtp.mails.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    first.child.kill('SIGTERM');
    expect(await first.exited, first.stderr()).toBe(0);

    const statuses = await Promise.all(subscriberIds.map((s) => ledger.get(s, storyId, 'email')));
    const sent = statuses.filter((r) => r?.status === 'sent').length;
    // Nothing was left half-done: every claimed alert was sent before the process exited.
    expect(statuses.filter((r) => r?.status === 'sending')).toHaveLength(0);
    expect(sent).toBe(smtp.mails.length);
    expect(sent).toBeLessThan(N);
    const counts = await queues.email.getJobCounts('waiting', 'active', 'completed');
    expect(counts.waiting).toBe(N - sent);
    expect(counts.active).toBe(0);

    const second = startWorker();
    const deadline2 = Date.now() + 20_000;
    while (smtp.mails.length < N && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500));
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    for (let i = 0; i < N; i++) expect(smtp.to(`reader${i}@example.test`), `reader${i}`).toHaveLength(1);
  }, 60_000);
});
