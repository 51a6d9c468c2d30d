import { describe, expect, it } from 'vitest';
import { jobIds } from '../../src/queue/jobs.ts';
import { waitFor } from '../helpers/processes.ts';
import { faultEnv, pushFaultWorld, startRole, stopRole, pushReadersAndStories } from './support.ts';

const READERS = 5;

/**
 * SIGTERM while the push dispatcher's jobs wait out a push service's 429 pause (Retry-After, up to a minute, longer
 * than the shutdown timeout): nothing new goes to the service, the process exits at once and cleanly, and no record
 * is left "sending"; the waiting alerts are queued for a later attempt. Their jobs are on their last attempt
 * (attempts: 1): handed back unsent, they must not be given up on as failed.
 */
describe('SIGTERM during a push service 429 pause', () => {
  const world = pushFaultWorld('sigtermpause');
  const { prefix, queues, enqueue, stories, subscribers, ledger } = world;
  /** A push alert of `storyId` for reader `r`, its job with `attempts` attempts. */
  const alert = (r: { id: string }, storyId: string, attempts = 8) => ({
    data: { subscriberId: r.id, storyId, topicId: 'japan', why: 'Matched: Tokyo' },
    opts: { jobId: jobIds.alert(r.id, storyId, 'push'), backoff: { type: 'delivery', delay: 200 }, attempts },
  });

  it('exits within a few seconds with code 0, sends nothing new, and leaves the waiting alerts queued', async () => {
    const now = Date.now();
    const { storyList, readers } = await pushReadersAndStories({ subscribers, stories }, world.sink, { readers: READERS, stories: 1, title: 'Tokyo pause', now });
    const story = storyList[0]!;
    world.sink.script(readers[0]!.deviceId, [{ status: 429, headers: { 'Retry-After': '50' } }]);
    const worker = world.worker = await startRole('push', faultEnv(prefix, { extra: { HERALD_PUSH_CA_FILE: world.sink.caFile, HERALD_PUSH_CONCURRENCY: '8', HERALD_SHUTDOWN_TIMEOUT_SECONDS: '20' } }));
    await enqueue.bulk('AlertSendPush', [alert(readers[0]!, story.id)]);
    await waitFor(async () => (await ledger.get(readers[0]!.id, story.id, 'push'))?.status === 'queued' && world.sink.requests.length === 1, 15_000, 'the 429 and its requeue');
    // The others now wait in the dispatcher for the service's pause to end.
    await enqueue.bulk('AlertSendPush', readers.slice(1).map((r) => alert(r, story.id, 1)));
    await waitFor(async () => (await Promise.all(readers.slice(1).map((r) => ledger.get(r.id, story.id, 'push')))).every((r) => r?.status === 'sending'), 15_000, 'the other alerts to be claimed');

    const stopAt = Date.now();
    worker.child.kill('SIGTERM');
    const code = await worker.exited;
    const tookMs = Date.now() - stopAt;
    expect(code, worker.out.stderr.slice(-1000)).toBe(0);
    expect(tookMs).toBeLessThan(10_000);
    expect(world.sink.requests).toHaveLength(1);
    const records = await Promise.all(readers.map((r) => ledger.get(r.id, story.id, 'push')));
    expect(records.map((r) => r?.status)).toEqual(readers.map(() => 'queued'));
    const counts = await queues.push.getJobCounts('waiting', 'delayed', 'active', 'failed');
    expect(counts.active).toBe(0);
    expect(counts.failed).toBe(0);
    expect((counts.waiting ?? 0) + (counts.delayed ?? 0)).toBe(READERS);
  }, 60_000);

  it('hands back a bundle of held alerts waiting out the pause: its job on its last attempt is not given up, the alerts stay held', async () => {
    const now = Date.now();
    const { storyList, readers } = await pushReadersAndStories({ subscribers, stories }, world.sink, { readers: 2, stories: 2, title: 'Osaka pause', now });
    const [first, waiting] = readers as [typeof readers[0], typeof readers[0]];
    world.sink.script(first.deviceId, [{ status: 429, headers: { 'Retry-After': '50' } }]);
    const before = world.sink.requests.length;
    const worker = world.worker = await startRole('push', faultEnv(prefix, { extra: { HERALD_PUSH_CA_FILE: world.sink.caFile, HERALD_SHUTDOWN_TIMEOUT_SECONDS: '20' } }));
    await enqueue.bulk('AlertSendPush', [alert(first, storyList[0]!.id)]);
    await waitFor(async () => world.sink.requests.length === before + 1 && (await ledger.get(first.id, storyList[0]!.id, 'push'))?.status === 'queued', 15_000, 'the 429 and its requeue');
    // Two alerts held for the waiting reader's bundle, whose job has one attempt only.
    for (const s of storyList) await ledger.hold(waiting.id, s.id, 'japan', 'bundle', 'quiet-hours', now);
    const bundleJobId = jobIds.bundle(waiting.id, 'pause-1');
    await enqueue.bulk('PushBundleSend', [{ data: { subscriberId: waiting.id, bundleId: 'pause-1' }, opts: { jobId: bundleJobId, attempts: 1 } }]);
    await waitFor(async () => (await ledger.get(waiting.id, 'bundle-pause-1', 'push'))?.status === 'sending', 15_000, 'the bundle to be claimed');

    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.out.stderr.slice(-1000)).toBe(0);
    expect(world.sink.requests).toHaveLength(before + 1);
    expect((await ledger.get(waiting.id, 'bundle-pause-1', 'push'))?.status).toBe('queued');
    expect((await ledger.held(waiting.id, 'bundle')).map((h) => h.storyId).sort()).toEqual(storyList.map((s) => s.id).sort());
    const job = await queues.push.getJob(bundleJobId);
    expect(await job?.getState()).toBe('delayed');
    expect(job?.attemptsMade).toBe(0);
  }, 60_000);
});
