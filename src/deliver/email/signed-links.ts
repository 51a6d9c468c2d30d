import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed links in emails: anyone holding the email can use them, nobody can forge them. Each kind of link
 * signs its purpose first, so a signature made for one (unsubscribing) never opens another (a digest).
 */
function sign(key: string, purpose: string, parts: readonly string[]): string {
  return createHmac('sha256', key).update([purpose, ...parts].join('\n')).digest('base64url');
}

function verify(key: string, purpose: string, parts: readonly string[], sig: string): boolean {
  const expected = Buffer.from(sign(key, purpose, parts));
  const given = Buffer.from(sig);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export const signUnsubscribe = (key: string, subscriberId: string, topic: string) => sign(key, 'unsubscribe', [subscriberId, topic]);
export const verifyUnsubscribe = (key: string, subscriberId: string, topic: string, sig: string) => verify(key, 'unsubscribe', [subscriberId, topic], sig);

export function unsubscribeUrl(baseUrl: string, key: string, subscriberId: string, topic: string): string {
  const q = new URLSearchParams({ s: subscriberId, t: topic, sig: signUnsubscribe(key, subscriberId, topic) });
  return `${baseUrl}/unsubscribe?${q.toString()}`;
}

export const verifyDigestView = (key: string, subscriberId: string, localDate: string, sig: string) => verify(key, 'digest', [subscriberId, localDate], sig);

/** The page that shows a whole digest, every story of every topic, when the email listed only the first few per topic. */
export function digestViewUrl(baseUrl: string, key: string, subscriberId: string, localDate: string): string {
  const q = new URLSearchParams({ s: subscriberId, d: localDate, sig: sign(key, 'digest', [subscriberId, localDate]) });
  return `${baseUrl}/digest?${q.toString()}`;
}
