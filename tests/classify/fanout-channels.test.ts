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
});
