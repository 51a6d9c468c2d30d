import { createECDH, randomBytes } from 'node:crypto';
import ece from 'http_ece';
import webpush from 'web-push';
import { describe, expect, it } from 'vitest';
import { createPushEncryptor, PushKeyError } from '../../src/deliver/push/encrypt.ts';
import { AGREEMENT_BYTES, agreementProblem, chooseKeyAgreement, loadNativeKeyAgreement, nodeKeyAgreement, type KeyAgreement } from '../../src/deliver/push/key-agreement.ts';
import { pushRequestHeaders } from '../../src/deliver/push/web-push-sender.ts';

/**
 * Herald encrypts push messages itself (RFC 8291, aes128gcm) instead of through web-push's encrypt, which
 * does the same work with more allocation. What a browser needs: it can decrypt every message with its
 * own keys, each message has its own salt and sender key pair, and the body has the layout push services
 * and browsers expect, byte for byte the size web-push's would have.
 */
const browser = () => {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = randomBytes(16);
  return { ecdh, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } };
};
const decrypt = (b: ReturnType<typeof browser>, body: Buffer) =>
  ece.decrypt(body, { version: 'aes128gcm', privateKey: b.ecdh, authSecret: b.keys.auth }).toString('utf8');

/**
 * The native key agreement that npm install builds (native/p256.c). Where it could not be built (no C compiler) its
 * cases are skipped with the loader's reason, except in CI, which installs a compiler: there they fail.
 */
const native = loadNativeKeyAgreement();
const nativeMissing = native.agreement === null && !process.env.CI;

describe('the P-256 key agreement of a push message', () => {
  it.skipIf(nativeMissing)('the native one is built and loads', () => {
    expect(native.reason).toBeNull();
    expect(chooseKeyAgreement(true).native).toBe(true);
  });

  it('is not used when it disagrees with Node\'s ECDH or throws (a build against another OpenSSL, say)', () => {
    expect(agreementProblem(nodeKeyAgreement())).toBeNull();
    const wrong: KeyAgreement = (ua, out) => {
      nodeKeyAgreement()(ua, out);
      out[96] = out[96]! ^ 1;
    };
    expect(agreementProblem(wrong)).toBe('the secrets differ');
    expect(agreementProblem(() => {
      throw new Error('symbol lookup error');
    })).toBe('symbol lookup error');
  });

  it('is Node\'s ECDH when turned off, or when the addon is not there, with the reason', () => {
    expect(chooseKeyAgreement(false)).toMatchObject({ native: false, reason: expect.stringMatching(/HERALD_PUSH_NATIVE_ECDH=false/) });
    expect(loadNativeKeyAgreement('/nonexistent/p256.node')).toEqual({ agreement: null, reason: expect.stringMatching(/not built .*p256\.node is missing/) });
  });

  it.skipIf(nativeMissing)('the native one gives a fresh ephemeral key per call and the secret the browser derives from it', () => {
    const agree = native.agreement!;
    const b = browser();
    const uaPublic = Buffer.from(b.keys.p256dh, 'base64url');
    const out = Buffer.alloc(AGREEMENT_BYTES);
    const keys = new Set<string>();
    for (let i = 0; i < 20; i++) {
      agree(uaPublic, out);
      const asPublic = out.subarray(0, 65);
      expect(asPublic[0]).toBe(4);
      keys.add(asPublic.toString('hex'));
      // The browser's side of the agreement (what it does on receipt) finds the same secret.
      expect(b.ecdh.computeSecret(asPublic).equals(out.subarray(65))).toBe(true);
    }
    expect(keys.size).toBe(20);
  });

  it.skipIf(nativeMissing)('the native one refuses a point off the curve and wrong sizes, as an error and not a crash', () => {
    const agree = native.agreement!;
    const point = Buffer.from(browser().keys.p256dh, 'base64url');
    point[40]! ^= 1;
    expect(() => agree(point, Buffer.alloc(AGREEMENT_BYTES))).toThrow('the subscription p256dh value is not a point on P-256');
    expect(() => agree(point.subarray(0, 64), Buffer.alloc(AGREEMENT_BYTES))).toThrow(/65-byte point/);
    expect(() => agree(Buffer.from(browser().keys.p256dh, 'base64url'), Buffer.alloc(10))).toThrow(/97-byte output/);
    expect(() => (agree as unknown as (x: string) => void)('not a buffer')).toThrow(/two buffers/);
  });
});

// Every case through each agreement the dispatcher may use (the native one where it was built).
const agreements: [string, KeyAgreement][] = [["Node's ECDH", nodeKeyAgreement()], ...(native.agreement ? [['the native key agreement', native.agreement] as [string, KeyAgreement]] : [])];

describe.each(agreements)('push encryption (RFC 8291 aes128gcm) with %s', (_, agreement) => {
  const encrypt = createPushEncryptor(agreement);

  it('the browser decrypts what it is sent, non-ASCII text included', () => {
    const b = browser();
    const payload = JSON.stringify({ title: 'Japón y la India firman un pacto — 東京で会談', body: 'x'.repeat(300), url: 'https://news.example.test/a?b=1' });
    expect(decrypt(b, encrypt(b.keys, payload))).toBe(payload);
  });

  it('a browser with other keys cannot decrypt it', () => {
    const b = browser();
    const other = browser();
    expect(() => decrypt(other, encrypt(b.keys, 'secret'))).toThrow();
  });

  it('every message has its own salt and its own sender key pair', () => {
    const b = browser();
    const bodies = Array.from({ length: 50 }, () => encrypt(b.keys, 'same text'));
    const salts = new Set(bodies.map((x) => x.subarray(0, 16).toString('hex')));
    const senderKeys = new Set(bodies.map((x) => x.subarray(21, 86).toString('hex')));
    expect(salts.size).toBe(50);
    expect(senderKeys.size).toBe(50);
    for (const x of bodies) expect(decrypt(b, x)).toBe('same text');
  });

  it('lays out the header as RFC 8188 says: salt, record size 4096, the 65-byte sender key; same size as web-push', () => {
    const b = browser();
    const payload = JSON.stringify({ title: 'A title', body: 'A body of some length. '.repeat(20) });
    const body = encrypt(b.keys, payload);
    expect(body.readUInt32BE(16)).toBe(4096);
    expect(body[20]).toBe(65);
    // An uncompressed P-256 point.
    expect(body[21]).toBe(4);
    expect(body.length).toBe(webpush.encrypt(b.keys.p256dh, b.keys.auth, payload, 'aes128gcm').cipherText.length);
  });

  it('a payload larger than one standard record is still one decryptable record (the push service answers 413)', () => {
    const b = browser();
    const payload = 'y'.repeat(5000);
    const body = encrypt(b.keys, payload);
    expect(body.readUInt32BE(16)).toBe(5000 + 17);
    expect(decrypt(b, body)).toBe(payload);
  });

  it.each([
    ['a p256dh of 64 bytes', (k: { p256dh: string; auth: string }) => ({ ...k, p256dh: Buffer.from(k.p256dh, 'base64url').subarray(0, 64).toString('base64url') }), /p256dh value should be 65 bytes long, not 64/],
    ['an auth secret of 8 bytes', (k: { p256dh: string; auth: string }) => ({ ...k, auth: randomBytes(8).toString('base64url') }), /auth value should be at least 16 bytes long, not 8/],
    ['a missing p256dh', (k: { p256dh: string; auth: string }) => ({ ...k, p256dh: undefined }), /p256dh value is missing/],
  ])('refuses %s with a PushKeyError naming the key', (_, alter, message) => {
    const b = browser();
    expect(() => encrypt(alter(b.keys), 'x')).toThrow(PushKeyError);
    expect(() => encrypt(alter(b.keys), 'x')).toThrow(message);
  });

  it('refuses a 65-byte p256dh that is not a point on P-256, and goes on encrypting for others', () => {
    const b = browser();
    const notAPoint = Buffer.alloc(65, 7);
    notAPoint[0] = 4;
    expect(() => encrypt({ ...b.keys, p256dh: notAPoint.toString('base64url') }, 'x')).toThrow(PushKeyError);
    expect(() => encrypt({ ...b.keys, p256dh: notAPoint.toString('base64url') }, 'x')).toThrow('the subscription p256dh value is not a point on P-256');
    expect(decrypt(b, encrypt(b.keys, 'after'))).toBe('after');
  });
});

describe('push request headers', () => {
  it('carries TTL, Urgency, Topic, the content coding and the cached VAPID header', () => {
    expect(pushRequestHeaders({ ttlSeconds: 3600.7, urgency: 'high', topic: 'story_1-abc' }, 'vapid t=a, k=b', 300)).toEqual({
      TTL: '3600', Urgency: 'high', Topic: 'story_1-abc', 'Content-Length': '300',
      'Content-Type': 'application/octet-stream', 'Content-Encoding': 'aes128gcm', Authorization: 'vapid t=a, k=b',
    });
  });

  it('leaves Topic out when there is none, and refuses one no push service accepts', () => {
    expect(pushRequestHeaders({ ttlSeconds: 60, urgency: 'normal' }, 'v', 1)).not.toHaveProperty('Topic');
    expect(() => pushRequestHeaders({ ttlSeconds: 60, urgency: 'normal', topic: 'has spaces' }, 'v', 1)).toThrow(/Topic/);
    expect(() => pushRequestHeaders({ ttlSeconds: 60, urgency: 'normal', topic: 'a'.repeat(33) }, 'v', 1)).toThrow(/Topic/);
  });
});
