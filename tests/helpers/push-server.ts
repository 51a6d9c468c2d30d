import { createECDH, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import ece from 'http_ece';
import { generate } from 'selfsigned';

export interface ReceivedPush {
  deviceId: string;
  headers: Record<string, string | string[] | undefined>;
  /** The decrypted payload, parsed as JSON. */
  payload: Record<string, unknown>;
}

export interface PushDevice {
  id: string;
  subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
}

export interface LocalPushService {
  /** https://127.0.0.1:<port>: what Herald must accept as a push service (HERALD_PUSH_SERVICES). */
  origin: string;
  /** This server's self-signed certificate, for Herald to trust (what it gets in tests). */
  ca: string;
  /** A new browser-side subscription: its own P-256 key pair and auth secret, like a real PushManager. */
  newDevice(): PushDevice;
  received: ReceivedPush[];
  /** Overrides the answer for one device (default 201). */
  answer(deviceId: string, status: number, headers?: Record<string, string>): void;
  close(): Promise<void>;
}

/**
 * Stands in for a browser vendor's push service: a real HTTPS endpoint that receives Herald's encrypted
 * request and decrypts it with the subscription's private key, as the browser would (RFC 8291, aes128gcm).
 */
export async function startPushService(): Promise<LocalPushService> {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] }],
  } as Parameters<typeof generate>[1]);
  const devices = new Map<string, { ecdh: ReturnType<typeof createECDH>; auth: Buffer }>();
  const answers = new Map<string, { status: number; headers?: Record<string, string> }>();
  const received: ReceivedPush[] = [];
  const server: Server = createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const deviceId = (req.url ?? '').split('/').pop() ?? '';
      const device = devices.get(deviceId);
      const override = answers.get(deviceId);
      if (!device) {
        res.writeHead(404).end();
        return;
      }
      if (override && override.status !== 201) {
        res.writeHead(override.status, override.headers).end();
        return;
      }
      const plain = ece.decrypt(Buffer.concat(chunks), { version: 'aes128gcm', privateKey: device.ecdh, authSecret: device.auth.toString('base64url') });
      received.push({ deviceId, headers: req.headers, payload: JSON.parse(plain.toString('utf8')) as Record<string, unknown> });
      res.writeHead(201).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `https://127.0.0.1:${port}`,
    ca: pems.cert,
    received,
    newDevice() {
      const id = randomBytes(8).toString('hex');
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16);
      devices.set(id, { ecdh, auth });
      return {
        id,
        subscription: {
          endpoint: `https://127.0.0.1:${port}/push/${id}`,
          keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
        },
      };
    },
    answer(deviceId, status, headers) {
      answers.set(deviceId, { status, headers });
    },
    close: () => {
      return new Promise((r) => server.close(() => r()));
    },
  };
}
