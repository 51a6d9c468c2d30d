import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobIds } from '../../src/queue/jobs.ts';
import { manualClock } from '../helpers/clock.ts';
import type { TestHerald } from '../helpers/herald.ts';
import { addSubscriber, makeStory, startPushWorld, type PushWorld } from '../deliver/support/world.ts';

/** Classification to delivery, through a whole Herald (real Redis, real SMTP): what a reader's follows ask for arrives. */
describe('fan-out by channel', () => {
  const clock = manualClock('2027-02-01T09:00:00Z');
  let world: PushWorld | undefined;
  let smtp: PushWorld['smtp'];
  let t: TestHerald;

  beforeAll(async () => {
    world = await startPushWorld('fanout-channels', clock);
    ({ smtp, t } = world);
  }, 60_000);
  afterAll(() => world?.close());

  /** Leaves Japan's instant followers to the case that calls it (the counts it compares are its readers'); the counts before. */
  const japanToThisCase = async () => {
    for (const id of await t.herald.stores.subscribers.followers('japan', 'instant')) await t.herald.stores.subscribers.setFollows(id, {});
    return (await t.herald.stores.ledger.topicStats(['japan'])).japan!;
  };
  /** The queue's bulk adds throw as a lost connection does while `refuse()` says so; returns the restore. */
  const refuseAdds = (queue: { addBulk: (...args: never[]) => Promise<unknown> }, refuse: () => Promise<boolean>) => {
    const addBulk = queue.addBulk.bind(queue);
    queue.addBulk = async (...args: never[]) => {
      if (await refuse()) throw new Error('Connection is closed.');
      return addBulk(...args);
    };
    return () => void (queue.addBulk = addBulk);
  };

  it('a story matching two topics a reader follows on different channels reaches each channel once, under the topic that asked for it', async () => {
    // Japan (the stronger match) by push only, India by email only: the email is India's to send.
    const id = await addSubscriber(t, clock.now(), {
      email: 'two-topics@example.test',
      topics: { japan: { cadence: 'instant', channels: ['push'] }, india: { cadence: 'instant', channels: ['email'] } },
    });
    const story = makeStory(clock.now(), { title: 'Japan and Tokyo host talks', summary: 'India sends its minister.' });
    await t.herald.stores.stories.put(story);
    await t.herald.enqueue('StoryClassify', { storyId: story.id }, { jobId: jobIds.storyClassify(story.id) });
    await t.waitIdle();
    expect(await t.herald.stores.ledger.get(id, story.id, 'email')).toMatchObject({ status: 'sent', topicId: 'india' });
    expect(smtp.to('two-topics@example.test')).toHaveLength(1);
    // No device: the push ends there, under Japan.
    expect(await t.herald.stores.ledger.get(id, story.id, 'push')).toMatchObject({ status: 'skipped', topicId: 'japan' });
  });

  it('a classification that opened the ledger and died before its enqueues ends, at its retry, the records of a reader who unfollowed meanwhile', async () => {
    const before = await japanToThisCase();
    const stays = await addSubscriber(t, clock.now(), { email: 'stays@example.test', topics: { japan: { cadence: 'instant', channels: ['email'] } } });
    const leaves = await addSubscriber(t, clock.now(), { email: 'leaves@example.test', topics: { japan: { cadence: 'instant', channels: ['push', 'email'] } } });
    await t.herald.stores.subscribers.addPushSubscription(leaves, world!.sink.newDevice().subscription, clock.now());
    const story = makeStory(clock.now(), { title: 'Tokyo tightens its building code' });
    await t.herald.stores.stories.put(story);
    // The first attempt's enqueue fails, as a worker killed between the ledger and the queue leaves it: records
    // opened, no job. The reader unfollows before BullMQ retries the classification.
    let first = true;
    const restore = refuseAdds(t.herald.queues.push, async () => {
      if (!first) return false;
      first = false;
      await t.herald.stores.subscribers.setFollows(leaves, {});
      return true;
    });
    await t.herald.enqueue('StoryClassify', { storyId: story.id }, { jobId: jobIds.storyClassify(story.id) });
    const classify = async () => (await t.herald.queues.classify.getJob(jobIds.storyClassify(story.id)))!;
    const deadline = Date.now() + 20_000;
    while ((await (await classify()).getState()) !== 'completed') {
      if (Date.now() > deadline) throw new Error('the classification was not retried to completion');
      await new Promise((r) => setTimeout(r, 50));
    }
    restore();
    // The failed attempt and its retry.
    expect((await classify()).attemptsMade).toBe(2);
    await t.waitIdle();

    expect(smtp.to('stays@example.test')).toHaveLength(1);
    expect(await t.herald.stores.ledger.get(stays, story.id, 'email')).toMatchObject({ status: 'sent' });
    // Before: no run planned them again, and both records stayed queued for ever.
    for (const channel of ['push', 'email'] as const) {
      expect(await t.herald.stores.ledger.get(leaves, story.id, channel)).toMatchObject({ status: 'skipped', reason: 'muted', topicId: 'japan' });
    }
    expect(smtp.to('leaves@example.test')).toEqual([]);
    expect(world!.sink.received).toEqual([]);
    const after = (await t.herald.stores.ledger.topicStats(['japan'])).japan!;
    expect([after.push.skipped - before.push.skipped, after.email.skipped - before.email.skipped, after.email.sent - before.email.sent]).toEqual([1, 1, 1]);
  });
  it('a classification given up on ends as failed the records it opened without their jobs, and leaves the enqueued ones to their jobs', async () => {
    const before = await japanToThisCase();
    const reader = await addSubscriber(t, clock.now(), { email: 'given-up@example.test', topics: { japan: { cadence: 'instant', channels: ['push', 'email'] } } });
    await t.herald.stores.subscribers.addPushSubscription(reader, world!.sink.newDevice().subscription, clock.now());
    const story = makeStory(clock.now(), { title: 'Tokyo opens a new harbour bridge' });
    await t.herald.stores.stories.put(story);
    // The push batch is enqueued; the email queue refuses every add, so the classification fails for good (one
    // attempt here, five by default) with the email's record opened and no job behind it.
    const restore = refuseAdds(t.herald.queues.email, async () => true);
    try {
      await t.herald.enqueue('StoryClassify', { storyId: story.id }, { jobId: jobIds.storyClassify(story.id), attempts: 1 });
      const deadline = Date.now() + 20_000;
      while ((await t.herald.stores.ledger.get(reader, story.id, 'email'))?.status !== 'failed') {
        if (Date.now() > deadline) throw new Error('the email record was not ended');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      restore();
    }
    await t.waitIdle();
    // Before: the email's record stayed queued for ever, with no job to send or end it.
    expect(await t.herald.stores.ledger.get(reader, story.id, 'email')).toMatchObject({ status: 'failed', topicId: 'japan', lastError: expect.stringMatching(/^gave up after 1 attempt: .*Connection is closed/) });
    // The push had its job: it was sent, not failed with the classification.
    expect(await t.herald.stores.ledger.get(reader, story.id, 'push')).toMatchObject({ status: 'sent' });
    expect(world!.sink.received).toHaveLength(1);
    expect(await t.herald.stores.ledger.fanOutNoted(story.id)).toEqual([]);
    const after = (await t.herald.stores.ledger.topicStats(['japan'])).japan!;
    expect([after.email.failed - before.email.failed, after.push.sent - before.push.sent]).toEqual([1, 1]);
  });
});
