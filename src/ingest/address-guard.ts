import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Server-side request forgery guard: a feed URL chosen by an operator (or a hub advertised by a feed) must
 * not make Herald fetch from its own host, the private network or a cloud metadata service.
 */
const blocked = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['2001:db8::', 32], ['100::', 64],
] as const) blocked.addSubnet(net, bits, 'ipv6');

/** True for loopback, private, link-local (which holds 169.254.169.254, the metadata address), multicast and reserved. */
export function isForbiddenAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family !== 6) return true;
  const lower = address.toLowerCase();
  // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) addresses reach the IPv4 inside them.
  const embedded = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower)?.[1];
  if (embedded) return blocked.check(embedded, 'ipv4');
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hexMapped) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return blocked.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, 'ipv4');
  }
  return blocked.check(lower, 'ipv6');
}

export class ForbiddenAddressError extends Error {
  override name = 'ForbiddenAddressError';
  readonly code = 'forbidden-address';
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http.request that resolves every address of the host and refuses the connection when any
 * of them is forbidden (a host with one public and one private address could otherwise be steered).
 */
/** Exceptions to the guard for one address (tests that must reach one loopback server but no other). */
export type AddressException = (address: string) => boolean;

const refused = (address: string, allowPrivate: boolean, except?: AddressException) =>
  !allowPrivate && isForbiddenAddress(address) && !(except?.(address) ?? false);

export function guardedLookup(allowPrivate: boolean, except?: AddressException) {
  return (hostname: string, options: { all?: boolean; family?: number } | number, callback: LookupCallback) => {
    const wantAll = typeof options === 'object' && options.all === true;
    dnsLookup(hostname, { all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      {
        const bad = addresses.find((a) => refused(a.address, allowPrivate, except));
        if (bad) {
          return callback(Object.assign(new ForbiddenAddressError(`${hostname} resolves to ${bad.address}, a loopback, private, link-local or metadata address`), {}) as NodeJS.ErrnoException, []);
        }
      }
      if (wantAll) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}

/** The IP-literal check for a URL host, which never goes through lookup. */
export function checkLiteralHost(hostname: string, allowPrivate: boolean, except?: AddressException) {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) && refused(host, allowPrivate, except)) {
    throw new ForbiddenAddressError(`${host} is a loopback, private, link-local or metadata address`);
  }
}
