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
  const groups = ipv6Groups(address);
  if (!groups) return true;
  const embedded = embeddedIpv4(groups);
  if (embedded !== null) return blocked.check(embedded, 'ipv4');
  // NAT64 prefixes for local use (RFC 8215) and site-local (deprecated, still routed by some networks).
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups[2] === 1) return true;
  if ((groups[0]! & 0xffc0) === 0xfec0) return true;
  return blocked.check(address.replace(/%.*$/, ''), 'ipv6');
}

/**
 * The IPv4 address an IPv6 address reaches, for the forms that carry one: IPv4-mapped (::ffff:0:0/96),
 * IPv4-translated (::ffff:0:0:0/96), IPv4-compatible (::/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
 * Decided on the address's value, not its spelling: the URL parser and getaddrinfo write these in hex
 * (64:ff9b::a9fe:a9fe), where a pattern for the dotted form (64:ff9b::169.254.169.254) never matched.
 */
function embeddedIpv4(g: readonly number[]): string | null {
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6]!, g[7]!);
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return v4(g[6]!, g[7]!);
  if (zeros(0, 6)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!);
  return null;
}

/** The eight 16-bit groups of an IPv6 address (a valid one: isIP said so), zone id dropped. */
function ipv6Groups(address: string): number[] | null {
  let a = address.replace(/%.*$/, '').toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (dotted) {
    const [b0, b1, b2, b3] = dotted.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, dotted.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const part = (s: string | undefined) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
  const left = part(head);
  const right = part(tail);
  const groups = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffff) ? groups : null;
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
