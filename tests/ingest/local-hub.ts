import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An Atom feed that advertises `hub` and its own URL `self`, as a publisher's feed does for WebSub, named by `name`
 * (its title "<name> feed", id urn:<name> and entry links on <name>.example.test, lower-cased).
 */
export const hubAtom = (name: string, hub: string, self: string, entries: { id: string; title: string }[]) => {
  const slug = name.toLowerCase();
  return `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>${name} feed</title>
  <link rel="hub" href="${hub}"/>
  <link rel="self" href="${self}"/>
  <id>urn:${slug}</id>
  <updated>2027-01-13T10:00:00Z</updated>
  ${entries.map((e) => `<entry><id>${e.id}</id><title>${e.title}</title><link href="https://${slug}.example.test/${e.id}"/><updated>2027-01-13T09:00:00Z</updated></entry>`).join('\n')}
</feed>`;
};

export interface HubSubscription {
  topic: string;
  callback: string;
  secret: string;
  leaseSeconds: number;
  verified: boolean;
}

/**
 * A WebSub hub of our own (W3C WebSub §5-§7): accepts subscription requests with 202, verifies intent with a
 * GET carrying a random challenge, and publishes content to verified subscribers signed with their secret.
 */
export async function startLocalHub(opts: { grantLeaseSeconds?: number; /** Verify without hub.lease_seconds, as some hubs do. */ omitLeaseSeconds?: boolean } = {}) {
  const subscriptions: HubSubscription[] = [];
  let requests = 0;
  const verify = async (sub: HubSubscription) => {
    const challenge = randomBytes(12).toString('hex');
    const u = new URL(sub.callback);
    u.searchParams.set('hub.mode', 'subscribe');
    u.searchParams.set('hub.topic', sub.topic);
    u.searchParams.set('hub.challenge', challenge);
    if (!opts.omitLeaseSeconds) u.searchParams.set('hub.lease_seconds', String(sub.leaseSeconds));
    const res = await fetch(u);
    sub.verified = res.status >= 200 && res.status < 300 && (await res.text()) === challenge;
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (req.method !== 'POST' || form.get('hub.mode') !== 'subscribe') return void res.writeHead(400).end();
      requests++;
      const sub: HubSubscription = {
        topic: form.get('hub.topic') ?? '',
        callback: form.get('hub.callback') ?? '',
        secret: form.get('hub.secret') ?? '',
        // WebSub §5.3: the hub decides the lease; it may grant less than was asked.
        leaseSeconds: opts.grantLeaseSeconds ?? Number(form.get('hub.lease_seconds') ?? 86400),
        verified: false,
      };
      const i = subscriptions.findIndex((s) => s.callback === sub.callback && s.topic === sub.topic);
      if (i >= 0) subscriptions.splice(i, 1);
      subscriptions.push(sub);
      res.writeHead(202).end();
      // Verification of intent happens after the 202, as real hubs do it.
      setTimeout(() => void verify(sub).catch(() => undefined), 10);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    subscriptions,
    requests: () => requests,
    /** WebSub §5.2: the hub refuses a subscription (even an accepted one) with a GET to the callback it was given. */
    async deny(sub: HubSubscription, reason: string) {
      const u = new URL(sub.callback);
      u.searchParams.set('hub.mode', 'denied');
      u.searchParams.set('hub.topic', sub.topic);
      u.searchParams.set('hub.reason', reason);
      return (await fetch(u)).status;
    },
    async publish(sub: HubSubscription, body: string, opts: { contentType?: string; signWith?: string; algo?: string } = {}) {
      const algo = opts.algo ?? 'sha256';
      const sig = createHmac(algo, opts.signWith ?? sub.secret).update(body).digest('hex');
      const res = await fetch(sub.callback, { method: 'POST', headers: { 'content-type': opts.contentType ?? 'application/atom+xml', 'x-hub-signature': `${algo}=${sig}` }, body });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
