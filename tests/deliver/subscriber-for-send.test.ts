import { describe, expect, it } from 'vitest';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { TEST_REDIS_URL } from '../helpers/redis.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';
import { createReader } from '../helpers/readers.ts';

/** A send's one read of the subscriber answers exactly what the three separate reads do. */
describe('subscribers.forSend', () => {
  const { redis, prefix } = isolatedRedis('subscriber-for-send');
  const subscribers = createSubscriberStore(redis, prefix);

  it('profile, devices and follows of a reader with two devices and a muted topic', async () => {
    const { id } = await createReader(subscribers, { email: 'reader@example.test', timeZone: 'Asia/Kolkata', digestTime: '07:30' }, 1000);
    await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] }, cricket: { cadence: 'daily', channels: [], mutedUntil: 5000 } });
    await subscribers.addPushSubscription(id, { endpoint: 'https://push.example.test/a', keys: { p256dh: 'BPk', auth: 'au1' } }, 2000);
    await subscribers.addPushSubscription(id, { endpoint: 'https://push.example.test/b', keys: { p256dh: 'BPl', auth: 'au2' } }, 3000);
    const one = await subscribers.forSend(id);
    expect(one.who).toEqual(await subscribers.forDelivery(id));
    expect(one.who?.subscriber.timeZone).toBe('Asia/Kolkata');
    expect(one.devices.map((d) => d.endpoint).sort()).toEqual(['https://push.example.test/a', 'https://push.example.test/b']);
    expect(one.devices).toEqual(expect.arrayContaining(await subscribers.pushSubscriptions(id)));
    expect(one.follows).toEqual(await subscribers.follows(id));
    expect(one.follows.cricket).toMatchObject({ cadence: 'daily', mutedUntil: 5000 });
  });

  it("the push claim reads the same view in its own script; an ended record's claim reads nothing", async () => {
    const ledger = createLedger(redis, prefix);
    const { id } = await createReader(subscribers, { email: null, timeZone: 'Europe/London', digestTime: '08:00' }, 1000);
    await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
    await subscribers.addPushSubscription(id, { endpoint: 'https://push.example.test/c', keys: { p256dh: 'BPm', auth: 'au3' } }, 2000);
    const claim = await ledger.claimPush(id, 'story-1', 'job-1', 'japan', 3000, 30_000, subscribers.forSendKeys(id));
    expect(claim.claimed).toBe(true);
    if (!claim.claimed) return;
    expect(subscribers.forSendOf(claim.reads)).toEqual(await subscribers.forSend(id));
    expect(subscribers.forSendOf(claim.reads).devices.map((d) => d.endpoint)).toEqual(['https://push.example.test/c']);
    expect(claim.record).toMatchObject({ status: 'sending', attempts: 1 });
    await ledger.finishPushSent(id, 'story-1', 4000, { devices: [], inbox: { storyId: 'story-1', title: 't', url: 'https://n.test/1', topicId: 'japan', why: 'w', channel: 'push', at: 4000, read: false } });
    expect(await ledger.claimPush(id, 'story-1', 'job-1', 'japan', 5000, 30_000, subscribers.forSendKeys(id))).toEqual({ claimed: false, status: 'sent' });
  });

  it("first claims sent beside other commands of the same tick: every command answered (the script is defined with its store, not at first use)", async () => {
    // As the dispatchers' connection is: commands of one tick go out as one pipeline, built when the first
    // of them is issued. A script defined after that (at its first use) would be missing from it.
    const piped = createRedis(TEST_REDIS_URL, { name: 'for-send-piped', autoPipelining: true });
    try {
      await piped.ping();
      const ledger = createLedger(piped, prefix);
      const view = createSubscriberStore(piped, prefix);
      const { id } = await createReader(subscribers, { email: null, timeZone: 'UTC', digestTime: '08:00' }, 1000);
      const [before, claimOne, claimWithView, after] = await Promise.all([
        piped.get(`${prefix}:none`),
        ledger.claimPush(id, 'story-2', 'job-2', 'japan', 2000, 30_000, view.forSendKeys(id)),
        ledger.claimPush(id, 'story-3', 'job-3', 'japan', 2000, 30_000, view.forSendKeys(id)),
        piped.exists(`${prefix}:none`),
      ]);
      expect(before).toBeNull();
      expect(after).toBe(0);
      expect(claimOne).toMatchObject({ claimed: true, record: { status: 'sending', attempts: 1 } });
      expect(claimWithView.claimed && view.forSendOf(claimWithView.reads).who?.subscriber.id).toBe(id);
    } finally {
      await piped.quit();
    }
  });

  it('a subscriber that does not exist: no profile, no devices, no follows', async () => {
    expect(await subscribers.forSend('nobody')).toEqual({ who: null, devices: [], follows: {} });
  });
});
