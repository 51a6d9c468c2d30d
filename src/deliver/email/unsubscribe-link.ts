import { createHmac, timingSafeEqual } from 'node:crypto';

/** Signed one-click unsubscribe links: anyone holding the email can use them, nobody can forge them. */
export function signUnsubscribe(key: string, subscriberId: string, topic: string): string {
  return createHmac('sha256', key).update(`unsubscribe\n${subscriberId}\n${topic}`).digest('base64url');
}

export function verifyUnsubscribe(key: string, subscriberId: string, topic: string, sig: string): boolean {
  const expected = Buffer.from(signUnsubscribe(key, subscriberId, topic));
  const given = Buffer.from(sig);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export function unsubscribeUrl(baseUrl: string, key: string, subscriberId: string, topic: string): string {
  const q = new URLSearchParams({ s: subscriberId, t: topic, sig: signUnsubscribe(key, subscriberId, topic) });
  return `${baseUrl}/unsubscribe?${q.toString()}`;
}
