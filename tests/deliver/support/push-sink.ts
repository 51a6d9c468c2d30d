import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ece from 'http_ece';
import { generate } from 'selfsigned';

export interface SinkPush {
  deviceId: string;
  headers: Record<string, string | string[] | undefined>;
  bodyBytes: number;
  payload: Record<string, unknown>;
}
export interface SinkDevice {
  id: string;
  subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
}
export interface Answer {
  status: number;
  headers?: Record<string, string>;
  /** The answer's body (an error page, a JSON reason). */
  body?: string;
  /** This answer comes this long after the request (instead of the sink's `delayMs`): a slow failure. */
  delayMs?: number;
}

/**
 * A push service on loopback HTTPS that decrypts every accepted message with the device's private key
 * (RFC 8291 aes128gcm, via http_ece) and answers as each test scripts it: a queue of answers per device,
 * then 201. Its CA certificate is written to a file, as HERALD_PUSH_CA_FILE expects.
 */
export async function startPushSink(opts: { maxBodyBytes?: number; decrypt?: boolean; delayMs?: number } = {}) {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  } as Parameters<typeof generate>[1]);
  const caFile = join(mkdtempSync(join(tmpdir(), 'herald-push-ca-')), 'ca.pem');
  writeFileSync(caFile, pems.cert);
  const devices = new Map<string, { ecdh: ReturnType<typeof createECDH>; auth: Buffer }>();
  const scripts = new Map<string, Answer[]>();
  const received: SinkPush[] = [];
  /** Every request, including refused ones. */
  const requests: { deviceId: string; status: number; headers: Record<string, string | string[] | undefined>; at: number }[] = [];
  let connections = 0;
  const server: Server = createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    // A sender killed mid-request resets the connection: that is the scenario, not a failure of the service.
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const deviceId = (req.url ?? '').split('/').pop() ?? '';
      const device = devices.get(deviceId);
      const body = Buffer.concat(chunks);
      let answer: Answer = { status: 201 };
      if (!device) answer = { status: 404 };
      else if (opts.maxBodyBytes !== undefined && body.length > opts.maxBodyBytes) answer = { status: 413 };
      else answer = scripts.get(deviceId)?.shift() ?? answer;
      requests.push({ deviceId, status: answer.status, headers: req.headers, at: Date.now() });
      if (answer.status === 201 && device) {
        const payload = opts.decrypt === false
          ? {}
          : (JSON.parse(ece.decrypt(body, { version: 'aes128gcm', privateKey: device.ecdh, authSecret: device.auth.toString('base64url') }).toString('utf8')) as Record<string, unknown>);
        received.push({ deviceId, headers: req.headers, bodyBytes: body.length, payload });
      }
      // A service that takes a moment to answer keeps sends in flight, as real ones do.
      const delayMs = answer.delayMs ?? opts.delayMs;
      if (delayMs) setTimeout(() => res.writeHead(answer.status, answer.headers).end(answer.body), delayMs);
      else res.writeHead(answer.status, answer.headers).end(answer.body);
    });
  });
  server.on('secureConnection', (socket) => {
    connections++;
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    caFile,
    ca: pems.cert,
    port,
    received,
    requests,
    connections: () => connections,
    newDevice(): SinkDevice {
      const id = randomBytes(8).toString('hex');
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16);
      devices.set(id, { ecdh, auth });
      return { id, subscription: { endpoint: `https://127.0.0.1:${port}/push/${id}`, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } } };
    },
    /** The next answers for one device, in order; then 201 again. */
    script(deviceId: string, answers: Answer[]) {
      scripts.set(deviceId, [...answers]);
    },
    forDevice: (deviceId: string) => received.filter((p) => p.deviceId === deviceId),
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
export type PushSink = Awaited<ReturnType<typeof startPushSink>>;
