import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import webpush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { renderPushPayload } from '../../src/deliver/push/payload.ts';
import { createWebPushSender, type VapidKeys } from '../../src/deliver/push/web-push-sender.ts';
import type { PushSubscriptionRecord } from '../../src/model.ts';
import { resolveSecrets } from '../../src/runtime/secrets.ts';
import { startWebHarness } from '../web/harness.ts';
import { startPushSink, type PushSink } from './support/push-sink.ts';

/**
 * What a push service checks (RFC 8292): the Authorization header's JWT verifies with the key named in
 * `k=`, and that key is the applicationServerKey the subscription was made with. Returns the key used.
 */
function checkVapid(authorization: string | string[] | undefined): string {
  const m = /^vapid t=([^,]+), k=(.+)$/.exec(String(authorization));
  if (!m) throw new Error(`not a VAPID header: ${String(authorization)}`);
  const [, jwt = '', k = ''] = m;
  const [h = '', p = '', sig = ''] = jwt.split('.');
  const point = Buffer.from(k, 'base64url');
  const key = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33, 65).toString('base64url') },
    format: 'jwk',
  });
  const ok = verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
  if (!ok) throw new Error('VAPID signature does not verify with the key it names');
  return k;
}

describe('VAPID key rotation', () => {
  let sink: PushSink;
  const oldPair = webpush.generateVAPIDKeys();
  const newPair = webpush.generateVAPIDKeys();
  const payload = renderPushPayload({ id: 'st1', title: 'Rotation', summary: 'Still reaches you', url: 'https://news.example.test/1' }, 'Japan', 'Matched: Japan');

  beforeAll(async () => {
    sink = await startPushSink();
  });
  afterAll(async () => {
    await sink?.close();
  });

  const device = (vapidPublicKey?: string): PushSubscriptionRecord => {
    const d = sink.newDevice();
    return { id: d.id, ...d.subscription, createdAt: 0, ...(vapidPublicKey ? { vapidPublicKey } : {}) };
  };

  it('after a rotation, old subscriptions get decryptable pushes signed with their own key, new ones with the new key', async () => {
    const beforeRotation = device(oldPair.publicKey);
    const legacy = device(); // stored before Herald recorded the key: made with the oldest listed key
    const afterRotation = device(newPair.publicKey);
    const rotated: VapidKeys = { ...newPair, subject: 'mailto:ops@example.test', previous: [oldPair] };
    const sender = createWebPushSender(rotated, { ca: sink.ca });
    try {
      for (const d of [beforeRotation, legacy, afterRotation]) {
        expect(await sender.send(d, payload, { ttlSeconds: 60, urgency: 'normal' })).toEqual({ kind: 'sent', status: 201 });
      }
    } finally {
      sender.close();
    }
    const keyUsed = (d: PushSubscriptionRecord) => {
      const got = sink.forDevice(d.id);
      expect(got).toHaveLength(1);
      expect(got[0]!.payload).toMatchObject({ title: 'Rotation', storyId: 'st1' });
      return checkVapid(got[0]!.headers.authorization);
    };
    expect(keyUsed(beforeRotation)).toBe(oldPair.publicKey);
    expect(keyUsed(legacy)).toBe(oldPair.publicKey);
    expect(keyUsed(afterRotation)).toBe(newPair.publicKey);
  });

  it('a subscription made with a key that is no longer configured fails permanently, naming the fix', async () => {
    const forgotten = webpush.generateVAPIDKeys();
    const sender = createWebPushSender({ ...newPair, subject: 'mailto:ops@example.test', previous: [oldPair] }, { ca: sink.ca });
    try {
      const d = device(forgotten.publicKey);
      const outcome = await sender.send(d, payload, { ttlSeconds: 60, urgency: 'normal' });
      expect(outcome).toMatchObject({ kind: 'permanent' });
      expect(outcome.kind === 'permanent' && outcome.reason).toContain('VAPID_PREVIOUS_KEYS');
      expect(sink.requests.filter((r) => r.deviceId === d.id)).toHaveLength(0);
    } finally {
      sender.close();
    }
  });

  it('VAPID_PREVIOUS_KEYS (or its _FILE twin) is read as pairs, newest first, and a malformed value is refused', () => {
    const dir = '/nonexistent';
    const env = { HERALD_DATA_DIR: dir, VAPID_PUBLIC_KEY: newPair.publicKey, VAPID_PRIVATE_KEY: newPair.privateKey, HERALD_SIGNING_KEY: 's'.repeat(40), HERALD_ADMIN_TOKEN: 'a'.repeat(40) };
    const pairs = `${oldPair.publicKey}:${oldPair.privateKey}`;
    const config = loadConfig({ ...env, VAPID_PREVIOUS_KEYS_FILE: '/run/secrets/vapid-previous' }, (p) => {
      expect(p).toBe('/run/secrets/vapid-previous');
      return `${pairs}\n`;
    });
    expect(resolveSecrets(config).vapid.previous).toEqual([oldPair]);
    expect(() => loadConfig({ ...env, VAPID_PREVIOUS_KEYS: oldPair.publicKey }, readFileSync as never)).toThrow(/VAPID_PREVIOUS_KEYS=\(secret value hidden\) is invalid: must be comma-separated <public key>:<private key> pairs/);
  });

  it('a device added through the API is stored with the key the page gave the browser', async () => {
    const h = await startWebHarness('vapid');
    try {
      const { c, id } = await h.newSubscriber({});
      const pageKey = (await c.api('/api/push/public-key')).body.publicKey as string;
      const added = await c.api('/api/me/push-subscriptions', { method: 'POST', body: h.push.newDevice().subscription });
      expect(added.status).toBe(201);
      const stored = await h.t.herald.stores.subscribers.pushSubscriptions(id);
      expect(stored.map((d) => d.vapidPublicKey)).toEqual([pageKey]);
    } finally {
      await h.close();
    }
  });
});
