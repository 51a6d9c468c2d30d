import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import webpush from 'web-push';
import { jobIds } from '../../src/queue/jobs.ts';
import type { Enqueue } from '../../src/queue/queues.ts';
import type { StoryStore } from '../../src/store/stories.ts';
import type { SubscriberStore } from '../../src/store/subscribers.ts';
import { createReader } from './readers.ts';
import { TEST_REDIS_URL } from './redis.ts';

/** The environment a `herald worker <role>` child process needs to join a test's Herald. */
export function workerEnv(prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-worker-'));
  writeFileSync(join(dir, 'feeds.json'), '{"feeds":[]}');
  const vapid = webpush.generateVAPIDKeys();
  return {
    REDIS_URL: TEST_REDIS_URL,
    HERALD_REDIS_PREFIX: prefix,
    HERALD_DATA_DIR: dir,
    HERALD_FEEDS_FILE: join(dir, 'feeds.json'),
    VAPID_PUBLIC_KEY: vapid.publicKey,
    VAPID_PRIVATE_KEY: vapid.privateKey,
    HERALD_SIGNING_KEY: 'worker-test-signing-key-0123456789abcdef',
    HERALD_ADMIN_TOKEN: 'worker-test-admin-token-0123456789',
    HERALD_SCHEDULERS: 'false',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** N readers with an email each and one story, with one queued email alert per reader. */
export async function queueEmailAlerts(deps: { subscribers: SubscriberStore; stories: StoryStore; enqueue: Enqueue }, n: number, storyId: string, jobOpts: { attempts?: number } = {}) {
  await deps.stories.put({
    id: storyId, feedId: 'f', guid: `guid-${storyId}`, url: `https://wire.example.test/${storyId}`, title: 'Tokyo talks',
    summary: 'Japan and India', categories: [], publishedAt: 0, firstSeenAt: 0,
  });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = await createConfirmedReader(deps.subscribers, `reader${i}@example.test`);
    // Dispatchers re-check that the reader still follows the topic on this channel.
    await deps.subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['email'] } });
    ids.push(id);
  }
  for (let i = 0; i < ids.length; i += 500) {
    await deps.enqueue.bulk('AlertSendEmail', ids.slice(i, i + 500).map((subscriberId) => ({
      data: { subscriberId, storyId, topicId: 'japan', why: 'Matched: Tokyo in title' },
      opts: { jobId: jobIds.alert(subscriberId, storyId, 'email'), ...jobOpts },
    })));
  }
  return ids;
}

/** A reader with a confirmed address (see createReader). */
export async function createConfirmedReader(subscribers: SubscriberStore, email: string, settings = { timeZone: 'UTC', digestTime: '08:00' }): Promise<string> {
  return (await createReader(subscribers, { email, ...settings }, 0)).id;
}
