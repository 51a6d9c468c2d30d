import type { SubscriberStore } from '../../src/store/subscribers.ts';

/**
 * A reader made directly in the store, as tests and benchmarks need many: with an address, it goes through
 * the store's own double opt-in (request, then confirm), so it is a confirmed address like any other.
 */
export async function createReader(
  subscribers: SubscriberStore,
  opts: { email?: string | null; timeZone?: string; digestTime?: string },
  now: number,
): Promise<{ id: string; token: string }> {
  const created = await subscribers.create({ timeZone: opts.timeZone ?? 'UTC', digestTime: opts.digestTime ?? '08:00' }, now);
  if (opts.email) await subscribers.confirmEmail(await subscribers.requestEmail(created.id, opts.email, now), now);
  return created;
}
