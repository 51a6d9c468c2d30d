import { describe, expect, it } from 'vitest';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
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

  it('a subscriber that does not exist: no profile, no devices, no follows', async () => {
    expect(await subscribers.forSend('nobody')).toEqual({ who: null, devices: [], follows: {} });
  });
});
