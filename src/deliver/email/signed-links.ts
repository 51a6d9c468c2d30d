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

/**
 * Names the address an email went to inside its stop links, so a link acts on that address only: a reader who
 * changed address keeps the new one when an old email's link is clicked (or one-click POSTed by a mail client).
 * Keyed, so the link (in access logs, in a forwarded email) does not carry a guessable hash of the address.
 */
export const addressTag = (key: string, address: string) => sign(key, 'address', [address.toLowerCase()]).slice(0, 22);

/**
 * `address` null: a link from before links named their address (signed over subscriber and topic only). Those
 * stay valid; what they may still do is the route's call.
 */
export function verifyUnsubscribe(key: string, subscriberId: string, topic: string, address: string | null, sig: string): boolean {
  return address === null ? verify(key, 'unsubscribe', [subscriberId, topic], sig) : verify(key, 'unsubscribe-address', [subscriberId, topic, address], sig);
}

/** The stop link of one topic's emails (or 'all') as mailed to `address` (whose addressTag may be given). */
export function unsubscribeUrl(baseUrl: string, key: string, subscriberId: string, topic: string, address: string, tag?: string): string {
  const a = tag ?? addressTag(key, address);
  const q = new URLSearchParams({ s: subscriberId, t: topic, a, sig: sign(key, 'unsubscribe-address', [subscriberId, topic, a]) });
  return `${baseUrl}/unsubscribe?${q.toString()}`;
}

export const verifyDigestView = (key: string, subscriberId: string, localDate: string, sig: string) => verify(key, 'digest', [subscriberId, localDate], sig);

/** The page that shows a whole digest, every story of every topic, when the email listed only the first few per topic. */
export function digestViewUrl(baseUrl: string, key: string, subscriberId: string, localDate: string): string {
  const q = new URLSearchParams({ s: subscriberId, d: localDate, sig: sign(key, 'digest', [subscriberId, localDate]) });
  return `${baseUrl}/digest?${q.toString()}`;
}

/** An email's stop links: its topic's, every email's ('all'), and the settings page. */
export interface UnsubscribeLinks {
  readonly topic: string;
  readonly all: string;
  readonly manage: string;
}

/**
 * The stop links of the emails this process sends, each signed when first read. A link costs two HMACs (the address
 * tag and the signature), and a digest asks for a topic's links once per daily topic and for the 'all' link once, all
 * for one address: built eagerly, both links of every call, a three-topic digest signed 16 times for the 4 links it
 * shows. The address tag is kept for the address last asked for.
 */
export function createUnsubscribeLinks(baseUrl: string, key: string) {
  let last = { address: '', tag: '' };
  const tagOf = (address: string) => (last.tag !== '' && last.address === address ? last.tag : (last = { address, tag: addressTag(key, address) }).tag);
  return (subscriberId: string, topicId: string, address: string): UnsubscribeLinks => {
    let topic: string | undefined;
    let all: string | undefined;
    return {
      get topic() {
        return (topic ??= unsubscribeUrl(baseUrl, key, subscriberId, topicId, address, tagOf(address)));
      },
      get all() {
        return (all ??= unsubscribeUrl(baseUrl, key, subscriberId, 'all', address, tagOf(address)));
      },
      manage: `${baseUrl}/`,
    };
  };
}
