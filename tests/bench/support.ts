// Shared by the benchmarks: a counting push service on loopback HTTPS, dispatcher processes started through
// `herald worker <role>`, and the CPU time a Redis server has used.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import type { Role } from '../../src/runtime/herald.ts';
import { spawnHerald, waitFor, type HeraldProcess } from '../helpers/processes.ts';

/** CPU seconds (user + system, all its threads) the Redis server behind `client` has used so far, from INFO. */
export async function redisCpuSeconds(client: { info(section: 'cpu'): Promise<string> }): Promise<number> {
  const info = await client.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/**
 * A push service that answers 201 and notes when each request arrived, by its Topic header (the story id)
 * and path (the device). Decrypting is the browser's cost, not Herald's, so it does not decrypt.
 */
export async function startTimingPushSink() {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048, algorithm: 'sha256', extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  } as Parameters<typeof generate>[1]);
  const caFile = join(mkdtempSync(join(tmpdir(), 'herald-bench-ca-')), 'ca.pem');
  writeFileSync(caFile, pems.cert);
  let count = 0;
  let first = 0;
  let last = 0;
  const arrivals = new Map<string, number>();
  const server = createHttpsServer({ key: pems.private, cert: pems.cert, keepAliveTimeout: 30_000 }, (req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      last = performance.now();
      if (count === 0) first = last;
      count++;
      const topic = req.headers.topic;
      if (typeof topic === 'string' && !arrivals.has(topic)) arrivals.set(topic, Date.now());
      res.writeHead(201).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    caFile,
    ca: pems.cert,
    origin: `https://127.0.0.1:${port}`,
    endpoint: (device: string) => `https://127.0.0.1:${port}/push/${device}`,
    count: () => count,
    lastAt: () => last,
    /** Arrival time of the first request since the last `restartWindow()`. */
    firstAt: () => first,
    restartWindow: () => void (count = 0),
    /** Wall-clock time the first push for a story (by its Topic header) arrived. */
    arrivedAt: (topic: string) => arrivals.get(topic),
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/**
 * Starts `herald worker <role>` and waits until its queue counts one more worker (benchmarks log at warn,
 * so the "running" line is not printed).
 */
export async function startWorker(role: Role, env: Record<string, string>, queue: { getWorkersCount(): Promise<number> }): Promise<HeraldProcess> {
  const before = await queue.getWorkersCount();
  const p = spawnHerald(['worker', role], env);
  try {
    await waitFor(async () => (await queue.getWorkersCount()) > before, 30_000, `the ${role} worker (${p.out.stderr.slice(-300)})`);
  } catch (err) {
    // Not handed to the caller, so nobody else would stop it.
    p.child.kill('SIGKILL');
    throw err;
  }
  return p;
}

export async function stopWorkers(procs: HeraldProcess[]): Promise<void> {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
}

export async function sleepUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The q-quantile of sorted numbers (nearest rank). */
export const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
