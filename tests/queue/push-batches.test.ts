import { describe, expect, it } from 'vitest';
import type { PushBatchAlert } from '../../src/queue/jobs.ts';
import { planPushBatches, pushShardOf } from '../../src/queue/shards.ts';

/**
 * The classifier's push fan-out plan: every alert in exactly one batch, each batch on its subscribers' push
 * shard and at most `size` long, with job ids that depend only on the input (so a re-classified story adds
 * nothing while the first jobs are kept).
 */
const alert = (subscriberId: string): PushBatchAlert => ({ subscriberId, topicId: 'japan', why: `Matched: japan (${subscriberId})` });
const subs = (n: number) => Array.from({ length: n }, (_, i) => `sub${i}`);
/** The plan reduced to job id (without its subscribers' tag) -> subscribers, in order. */
const shape = (plan: ReturnType<typeof planPushBatches>) => plan.map((b) => [b.jobId.replace(/-[0-9a-f]{8}$/, ''), b.data.alerts.map((a) => a.subscriberId)]);

describe('planPushBatches', () => {
  it('pins the shard hash: moving a subscriber to another shard would split its FIFO order across queues', () => {
    expect(subs(12).map((id) => pushShardOf(id, 3))).toEqual([0, 1, 1, 2, 1, 2, 0, 0, 0, 0, 2, 1]);
    expect(subs(12).map((id) => pushShardOf(id, 1))).toEqual(Array(12).fill(0));
  });

  it.each([
    {
      name: 'one shard: input order, cut every `size`',
      shards: 1, size: 3, n: 7,
      want: [
        ['pushbatch-story_A1-0-0', ['sub0', 'sub1', 'sub2']],
        ['pushbatch-story_A1-0-1', ['sub3', 'sub4', 'sub5']],
        ['pushbatch-story_A1-0-2', ['sub6']],
      ],
    },
    {
      name: 'three shards: grouped by shard, numbered per shard, input order kept within a shard',
      shards: 3, size: 2, n: 12,
      want: [
        ['pushbatch-story_A1-0-0', ['sub0', 'sub6']],
        ['pushbatch-story_A1-0-1', ['sub7', 'sub8']],
        ['pushbatch-story_A1-0-2', ['sub9']],
        ['pushbatch-story_A1-1-0', ['sub1', 'sub2']],
        ['pushbatch-story_A1-1-1', ['sub4', 'sub11']],
        ['pushbatch-story_A1-2-0', ['sub3', 'sub5']],
        ['pushbatch-story_A1-2-1', ['sub10']],
      ],
    },
    { name: 'a size of 0 counts as 1', shards: 1, size: 0, n: 2, want: [['pushbatch-story_A1-0-0', ['sub0']], ['pushbatch-story_A1-0-1', ['sub1']]] },
    { name: 'a batch never exceeds `size`, one batch when all fit', shards: 1, size: 50, n: 50, want: [['pushbatch-story_A1-0-0', subs(50)]] },
    { name: 'no alerts, no jobs', shards: 4, size: 50, n: 0, want: [] },
  ])('$name', ({ shards, size, n, want }) => {
    const plan = planPushBatches('story-A1', subs(n).map(alert), { shards, size });
    expect(shape(plan)).toEqual(want);
    for (const b of plan) expect(b.data.storyId).toBe('story-A1');
  });

  it('holds every alert exactly once, unchanged, each batch within the bound and on its own shard', () => {
    const alerts = subs(101).map(alert);
    const shards = 4;
    const size = 7;
    const plan = planPushBatches('st1', alerts, { shards, size });
    const planned = plan.flatMap((b) => b.data.alerts);
    expect(planned).toHaveLength(alerts.length);
    expect([...planned].sort((a, b) => a.subscriberId.localeCompare(b.subscriberId))).toEqual([...alerts].sort((a, b) => a.subscriberId.localeCompare(b.subscriberId)));
    expect(new Set(plan.map((b) => b.jobId)).size).toBe(plan.length);
    for (const b of plan) {
      const [, shard] = /^pushbatch-st1-(\d+)-\d+-[0-9a-f]{8}$/.exec(b.jobId)!;
      expect(b.data.alerts.length).toBeGreaterThan(0);
      expect(b.data.alerts.length).toBeLessThanOrEqual(size);
      expect(b.data.alerts.every((a) => pushShardOf(a.subscriberId, shards) === Number(shard))).toBe(true);
    }
    // Only the last batch of a shard may be short: the number of jobs is the least possible.
    const perShard = Array.from({ length: shards }, (_, s) => alerts.filter((a) => pushShardOf(a.subscriberId, shards) === s).length);
    expect(plan).toHaveLength(perShard.reduce((n, c) => n + Math.ceil(c / size), 0));
  });

  it('is deterministic: the same input gives the same jobs, ids safe for BullMQ (no ":")', () => {
    const alerts = subs(30).map(alert);
    const a = planPushBatches('feed:1/x', alerts, { shards: 5, size: 4 });
    const b = planPushBatches('feed:1/x', alerts.map((x) => ({ ...x })), { shards: 5, size: 4 });
    expect(b).toEqual(a);
    for (const { jobId } of a) expect(jobId).toMatch(/^pushbatch-feed_1_x-\d+-\d+-[0-9a-f]{8}$/);
  });

  it('names a batch by its subscribers too: the same followers in another order give the same ids, a new follower new ones', () => {
    const plan = planPushBatches('st2', subs(5).map(alert), { shards: 1, size: 3 });
    expect(planPushBatches('st2', ['sub2', 'sub1', 'sub0', 'sub4', 'sub3'].map(alert), { shards: 1, size: 3 }).map((b) => b.jobId)).toEqual(plan.map((b) => b.jobId));
    // A reader who followed between two runs: the second batch holds them, so it is a job of its own.
    const again = planPushBatches('st2', [...subs(5), 'late'].map(alert), { shards: 1, size: 3 });
    expect(again[0]!.jobId).toBe(plan[0]!.jobId);
    expect(again[1]!.jobId).not.toBe(plan[1]!.jobId);
  });
});
