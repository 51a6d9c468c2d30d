// Delivery throughput: push fan-out and digest emails through real dispatcher processes, each beside its
// baseline measured in the same run. `npx tsx tests/bench/run.ts [--quick] delivery`.
// Full run: 100,000 alerts and 100,000 digests, the issue's sizes (3 to 8 minutes on 2 cores, by the machine's
// load); BENCH_ALERTS and BENCH_DIGESTS change them, BENCH_PROF=1 writes CPU profiles of the dispatchers (BENCH_PROF=heap, alloc, perf: see profileFlags).
import { spawn, type ChildProcess } from 'node:child_process';
import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMTPServer } from 'smtp-server';
import webpush from 'web-push';
import { renderDigestEmail } from '../../src/deliver/email/render.ts';
import { createPushEncryptor } from '../../src/deliver/push/encrypt.ts';
import { chooseKeyAgreement } from '../../src/deliver/push/key-agreement.ts';
import { renderPushPayload } from '../../src/deliver/push/payload.ts';
import { OPTIONS } from '../../src/config/options.ts';
import { planPushBatches } from '../../src/queue/shards.ts';
import { closeQueues, createEnqueue, createQueues } from '../../src/queue/queues.ts';
import { createDigestStore } from '../../src/store/digests.ts';
import { createLedger } from '../../src/store/ledger.ts';
import { createRedis } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { createSubscriberStore } from '../../src/store/subscribers.ts';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.ts';
import { ratio, type Benchmark, type BenchResult } from './types.ts';
import { createReader } from '../helpers/readers.ts';
import { startTimingPushSink } from './support.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const waitFor = async (what: string, check: () => boolean, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
};
const inChunks = async <T>(items: T[], size: number, fn: (chunk: T[]) => Promise<unknown>) => {
  for (let i = 0; i < items.length; i += size) await fn(items.slice(i, i + size));
};

async function startCountingSmtp() {
  let count = 0;
  const server = new SMTPServer({ authOptional: true, disabledCommands: ['STARTTLS'], logger: false, maxClients: 1000,
    onData(stream, _s, cb) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        count++;
        cb();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  return { url: `smtp://127.0.0.1:${port}`, port, count: () => count, reset: () => void (count = 0), close: () => new Promise<void>((r) => server.close(() => r())) };
}

/**
 * Node flags for BENCH_PROF: heap (heap profiles of what is live), alloc (every allocation sampled, freed ones
 * included: alloc-profile.mjs), perf (a symbol map for Linux perf, which sees native code, OpenSSL and the
 * kernel too), anything else CPU profiles; all written to /tmp/prof-delivery (perf: /tmp).
 */
const profileFlags = (kind: string | undefined): string[] =>
  kind === 'heap' ? ['--heap-prof', '--heap-prof-dir=/tmp/prof-delivery']
    : kind === 'alloc' ? ['--import', fileURLToPath(new URL('./alloc-profile.mjs', import.meta.url))]
    : kind === 'perf' ? ['--perf-basic-prof']
    : kind ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof-delivery'] : [];

/** A dispatcher process; ready once its BullMQ worker is registered on the queue (its logs stay at warn). */
async function spawnWorker(role: 'push' | 'digest', env: Record<string, string>, queue: { getWorkersCount(): Promise<number> }): Promise<ChildProcess> {
  const before = await queue.getWorkersCount();
  const child = spawn(process.execPath, [...profileFlags(process.env.BENCH_PROF), 'src/cli/herald.mjs', 'worker', role], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH, ...env } });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => void (err += c.toString()));
  const deadline = Date.now() + 30_000;
  while ((await queue.getWorkersCount()) <= before) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${role} worker did not start: ${err.slice(-2000)}`);
    await sleep(50);
  }
  return child;
}
/**
 * CPU time (user + system, ms) a process has used, from /proc: beside the rates, the dispatcher's own CPU per
 * alert, which moves less with what else the shared machine runs. null where /proc is missing.
 */
function cpuMs(pid: number | undefined): { user: number; system: number } | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return { user: (Number(fields[11]) * 1000) / 100, system: (Number(fields[12]) * 1000) / 100 };
  } catch {
    return null;
  }
}
/** CPU ms (user and system) a process used between two readings; 0 where /proc gave none. */
const cpuSpentMs = (from: ReturnType<typeof cpuMs>, to: ReturnType<typeof cpuMs>) =>
  from === null || to === null ? 0 : to.user + to.system - from.user - from.system;
/**
 * CPU µs per item between two readings, as a log fragment. System time is shown apart: in a virtual machine
 * each system call (a socket write or read) can cost several times what it does on bare metal.
 */
function cpuPer(from: ReturnType<typeof cpuMs>, to: ReturnType<typeof cpuMs>, items: number, unit: string): string {
  if (from === null || to === null) return '';
  const per = (ms: number) => ((ms * 1000) / items).toFixed(0);
  return `, dispatcher CPU ${per(cpuSpentMs(from, to))} µs per ${unit} (system ${per(to.system - from.system)})`;
}

/** SMTP connections of the digest dispatcher's pool, and transports in flight in the baseline. */
const EMAIL_CONCURRENCY = 20;

/** Runs tests/bench/transport-per-mail.mjs (the digest baseline) and returns its own timing and CPU. */
async function runTransportPerMail(input: { port: number; count: number; concurrency: number; mail: object }): Promise<{ ms: number; cpuMs: number }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./transport-per-mail.mjs', import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  child.stdin!.end(JSON.stringify(input));
  const code = await exited;
  if (code !== 0) throw new Error(`the transport-per-mail baseline exited with ${code}`);
  return JSON.parse(out) as { ms: number; cpuMs: number };
}

/** Calls per second of a synchronous call, repeated on this process' one core for `durationMs`. */
function syncRate(durationMs: number, call: () => unknown): number {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < durationMs) {
    call();
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

const stop = (child: ChildProcess) => new Promise<void>((r) => {
  if (child.exitCode !== null) return r();
  child.once('exit', () => r());
  child.kill('SIGTERM');
});

const bench: Benchmark = {
  name: 'delivery',
  async run(ctx) {
    const results: BenchResult[] = [];
    const prefix = uniquePrefix('bench-delivery');
    const redis = createRedis(TEST_REDIS_URL, { name: 'bench' });
    const queueConnection = createRedis(TEST_REDIS_URL, { forQueue: true, name: 'bench-q' });
    const queues = createQueues(queueConnection, prefix);
    const enqueue = createEnqueue(queues);
    const subscribers = createSubscriberStore(redis, prefix);
    const stories = createStoryStore(redis, prefix);
    const digests = createDigestStore(redis, prefix);
    const vapid = { ...webpush.generateVAPIDKeys(), subject: 'mailto:bench@example.test' };
    const sink = await startTimingPushSink();
    const smtp = await startCountingSmtp();
    const baseEnv = {
      REDIS_URL: TEST_REDIS_URL, HERALD_REDIS_PREFIX: prefix, HERALD_DATA_DIR: mkdtempSync(join(tmpdir(), 'herald-bench-')),
      HERALD_SCHEDULERS: 'false', HERALD_SIGNING_KEY: 'bench-signing-key-0123456789abcdef0123456789',
      VAPID_PUBLIC_KEY: vapid.publicKey, VAPID_PRIVATE_KEY: vapid.privateKey, LOG_LEVEL: 'warn', SMTP_URL: smtp.url,
      HERALD_PUSH_CA_FILE: sink.caFile, HERALD_PUSH_BURST_WINDOW_SECONDS: '0', HERALD_PUSH_RATE_PER_SECOND: '100000',
      HERALD_SMTP_RATE_PER_SECOND: '100000',
      // The native P-256 key agreement, as a dispatcher's default; HERALD_PUSH_NATIVE_ECDH=false measures Node's ECDH.
      HERALD_PUSH_NATIVE_ECDH: process.env.HERALD_PUSH_NATIVE_ECDH ?? 'true',
    };
    const agreement = chooseKeyAgreement(baseEnv.HERALD_PUSH_NATIVE_ECDH !== 'false');
    ctx.log(`push key agreement: ${agreement.native ? 'native (src/deliver/push/native)' : `Node's ECDH (${agreement.reason})`}`);
    // One browser key pair for every device: the service does not decrypt, and the sender's cost is the same.
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const keys = { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
    const now = Date.now();

    try {
      // ---- Push fan-out ----
      const perReader = 5;
      const alerts = ctx.quick ? 1_000 : Number(process.env.BENCH_ALERTS ?? 100_000);
      const readers = alerts / perReader;
      const storyList = Array.from({ length: perReader }, (_, i) => ({
        id: `benchstory${i}`.padEnd(20, '0'), feedId: 'bench', guid: null, url: `https://news.example.test/bench/${i}`,
        title: `Japan and India sign a semiconductor pact in Tokyo (${i})`, summary: 'A summary of about two hundred characters. '.repeat(5),
        categories: [], publishedAt: now, firstSeenAt: now,
      }));
      for (const s of storyList) await stories.put(s);
      ctx.log(`seeding ${readers} push readers, ${alerts} alerts`);
      const ids: string[] = [];
      await inChunks(Array.from({ length: readers }, (_, i) => i), 500, (chunk) => Promise.all(chunk.map(async (i) => {
        const { id } = await createReader(subscribers, { email: null, timeZone: 'UTC', digestTime: '08:00' }, now);
        await subscribers.setFollows(id, { japan: { cadence: 'instant', channels: ['push'] } });
        await subscribers.addPushSubscription(id, { endpoint: sink.endpoint(String(i)), keys }, now);
        ids.push(id);
      })));
      // The jobs the classifier enqueues for these matches: per story, batches of the configured size.
      const batchSize = Number(process.env.BENCH_PUSH_BATCH ?? OPTIONS.find((o) => o.env === 'HERALD_PUSH_BATCH_SIZE')!.default);
      const jobs = storyList.flatMap((s) => planPushBatches(s.id, ids.map((id) => ({ subscriberId: id, topicId: 'japan', why: 'Matched: Japan in title' })), { shards: 1, size: batchSize })
        .map((b) => ({ data: b.data, opts: { jobId: b.jobId } })));
      // As the classifier does: every alert's ledger record is opened ("queued") before its job exists.
      const ledger = createLedger(redis, prefix);
      await inChunks(jobs, 20, (chunk) => ledger.open(chunk.flatMap((j) => j.data.alerts.map((a) => ({ subscriberId: a.subscriberId, storyId: j.data.storyId, channel: 'push' as const, jobId: j.opts.jobId, topicId: a.topicId }))), now));
      await inChunks(jobs, 200, (chunk) => enqueue.bulk('AlertSendPushBatch', chunk));
      const concurrency = process.env.BENCH_PUSH_CONCURRENCY ?? OPTIONS.find((o) => o.env === 'HERALD_PUSH_CONCURRENCY')!.default;
      ctx.log(`queued ${jobs.length} batch jobs of ${batchSize}; starting one push dispatcher process (${concurrency} jobs at a time)`);
      const pushWorker = await spawnWorker('push', { ...baseEnv, HERALD_PUSH_CONCURRENCY: concurrency, HERALD_PUSH_BATCH_SIZE: String(batchSize) }, queues.push);
      // Its CPU is read from the first alert received (start-up excluded) to the last.
      await waitFor('the first alert', () => sink.count() > 0, 60_000);
      const cpuAtFirst = cpuMs(pushWorker.pid);
      const countAtFirst = sink.count();
      await waitFor('the fan-out', () => sink.count() >= alerts, ctx.quick ? 60_000 : 300_000);
      const cpuAtLast = cpuMs(pushWorker.pid);
      const first = sink.firstAt();
      const last = sink.lastAt();
      const fanout = alerts / ((last - first) / 1000);
      await stop(pushWorker);
      ctx.log(`fan-out: ${fanout.toFixed(0)} alerts/s${cpuPer(cpuAtFirst, cpuAtLast, alerts - countAtFirst, 'alert')}`);

      // Raw aes128gcm encryption on one core (this process), same payload size.
      const payload = renderPushPayload({ ...storyList[0]!, image: null }, 'Japan', 'Matched: Japan in title');
      const encDuration = ctx.quick ? 300 : 3000;
      const rawEncrypt = syncRate(encDuration, () => webpush.encrypt(keys.p256dh, keys.auth, payload, 'aes128gcm'));

      // Herald's own encryption routine (what the dispatcher runs), same payload and keys: shown beside the
      // goal's baseline so that a reader sees how much of the ratio comes from encrypting faster.
      const heraldEncrypt = createPushEncryptor(agreement.agreement);
      const ownEncrypt = syncRate(encDuration, () => heraldEncrypt(keys, payload));

      // A fresh VAPID signature per message versus the cached header, on top of encryption.
      const signEach = syncRate(encDuration / 2, () => {
        webpush.getVapidHeaders(sink.origin, vapid.subject, vapid.publicKey, vapid.privateKey, 'aes128gcm');
        webpush.encrypt(keys.p256dh, keys.auth, payload, 'aes128gcm');
      });

      // The naive loop: webpush.sendNotification one after another (keep-alive agent, signing every time).
      const agent = new Agent({ ca: sink.ca, keepAlive: true });
      const naiveDuration = ctx.quick ? 500 : 5000;
      let n = 0;
      let t0 = performance.now();
      while (performance.now() - t0 < naiveDuration) {
        await webpush.sendNotification({ endpoint: sink.endpoint('naive'), keys }, payload, { vapidDetails: vapid, TTL: 3600, agent });
        n++;
      }
      const naive = n / ((performance.now() - t0) / 1000);
      agent.destroy();

      // Per core, counted: alerts per CPU-second of the dispatcher (every thread of it, GC helpers included),
      // so a dispatcher that spread work over more than one core would not look better than it is.
      const pushCpuMs = cpuSpentMs(cpuAtFirst, cpuAtLast);
      const perCpuSecond = pushCpuMs > 0 ? (alerts - countAtFirst) / (pushCpuMs / 1000) : null;
      results.push(
        { name: 'push fan-out, 1 dispatcher process (alerts/s) vs raw aes128gcm encrypt on one core', value: fanout, unit: 'alerts/s', baseline: { name: 'raw encrypt/s', value: rawEncrypt }, ratio: ratio(fanout, rawEncrypt) },
        ...(perCpuSecond === null ? [] : [{ name: 'push fan-out per dispatcher CPU-second (all threads) vs raw aes128gcm encrypt on one core', value: perCpuSecond, unit: 'alerts/CPU-s', baseline: { name: 'raw encrypt/s', value: rawEncrypt }, ratio: ratio(perCpuSecond, rawEncrypt) }]),
        { name: "Herald's push encryption (src/deliver/push/encrypt.ts) vs web-push's encrypt, one core", value: ownEncrypt, unit: 'msgs/s', baseline: { name: 'raw encrypt/s', value: rawEncrypt }, ratio: ratio(ownEncrypt, rawEncrypt) },
        { name: "push fan-out, 1 dispatcher process (alerts/s) vs Herald's own encryption on one core (not the goal's baseline)", value: fanout, unit: 'alerts/s', baseline: { name: 'Herald encrypt/s', value: ownEncrypt }, ratio: ratio(fanout, ownEncrypt) },
        { name: 'push fan-out, 1 dispatcher process (alerts/s) vs naive sendNotification loop', value: fanout, unit: 'alerts/s', baseline: { name: 'naive loop/s', value: naive }, ratio: ratio(fanout, naive) },
        { name: 'encrypt + cached VAPID header vs encrypt + fresh VAPID signature per message', value: rawEncrypt, unit: 'msgs/s', baseline: { name: 'fresh signature/s', value: signEach }, ratio: ratio(rawEncrypt, signEach) },
      );

      // ---- Digest emails ----
      const digestCount = ctx.quick ? 300 : Number(process.env.BENCH_DIGESTS ?? 100_000);
      ctx.log(`seeding ${digestCount} digest readers`);
      for (const s of storyList) await stories.logForTopics(s.id, ['japan'], now - 60_000);
      await inChunks(Array.from({ length: digestCount }, (_, i) => i), 500, (chunk) => Promise.all(chunk.map(async (i) => {
        const { id } = await createReader(subscribers, { email: `reader${i}@bench.test`, timeZone: 'UTC', digestTime: '08:00' }, now);
        await subscribers.setFollows(id, { japan: { cadence: 'daily', channels: [] } });
        await digests.initWindow(id, now - 60 * 60_000);
        await digests.schedule(id, now - 30_000);
      })));
      ctx.log('starting one digest dispatcher process');
      const digestWorker = await spawnWorker('digest', { ...baseEnv, HERALD_EMAIL_CONCURRENCY: String(EMAIL_CONCURRENCY) }, queues.digest);
      smtp.reset();
      t0 = performance.now();
      await enqueue('DigestTick', {});
      const cpuAtTick = cpuMs(digestWorker.pid);
      await waitFor('the digests', () => smtp.count() >= digestCount, ctx.quick ? 60_000 : 400_000);
      const cpuAtEnd = cpuMs(digestWorker.pid);
      const digestRate = digestCount / ((performance.now() - t0) / 1000);
      await stop(digestWorker);
      ctx.log(`digests: ${digestRate.toFixed(0)} mails/s${cpuPer(cpuAtTick, cpuAtEnd, digestCount, 'digest (sweep included)')}`);

      // Baseline: the same rendered digest, one nodemailer transport (one SMTP connection) per mail, as many at
      // a time as the dispatcher's pool has connections, from a process of its own like the dispatcher.
      // smtp-server pauses 100 ms before greeting each new connection (its check for clients that talk too
      // soon; real MTAs pause too, Postfix's postscreen for seconds), so the baseline's rate is bound by that
      // pause, not by its CPU: the second row compares mails per CPU-second of each client.
      const mail = renderDigestEmail({
        localDate: '2027-01-15',
        groups: [{ topicId: 'japan', topicName: 'Japan', stories: storyList }],
        links: { all: 'https://h.test/u?t=all', manage: 'https://h.test/' },
      });
      const baselineCount = ctx.quick ? 100 : 3000;
      smtp.reset();
      const baseline = await runTransportPerMail({ port: smtp.port, count: baselineCount, concurrency: EMAIL_CONCURRENCY, mail: { subject: mail.subject, text: mail.text, html: mail.html, headers: mail.headers } });
      if (smtp.count() < baselineCount) throw new Error(`the baseline delivered ${smtp.count()} of ${baselineCount} mails`);
      const perMail = baselineCount / (baseline.ms / 1000);
      ctx.log(`one transport per mail: ${perMail.toFixed(0)} mails/s, client CPU ${((baseline.cpuMs * 1000) / baselineCount).toFixed(0)} µs per mail`);
      results.push({ name: 'digest emails, 1 dispatcher process, whole job (mails/s) vs one nodemailer transport per mail', value: digestRate, unit: 'mails/s', baseline: { name: 'transport-per-mail/s', value: perMail }, ratio: ratio(digestRate, perMail) });
      const digestCpuMs = cpuSpentMs(cpuAtTick, cpuAtEnd);
      if (digestCpuMs > 0) {
        const digestPerCpu = digestCount / (digestCpuMs / 1000);
        const baselinePerCpu = baselineCount / (baseline.cpuMs / 1000);
        results.push({ name: 'digest emails per client CPU-second: dispatcher (whole job, sweep included) vs one transport per mail', value: digestPerCpu, unit: 'mails/CPU-s', baseline: { name: 'transport-per-mail client', value: baselinePerCpu }, ratio: ratio(digestPerCpu, baselinePerCpu) });
      }
    } finally {
      await closeQueues(queues);
      ctx.log('cleaning up the benchmark keys');
      await deletePrefix(redis, prefix);
      await Promise.all([redis.quit(), queueConnection.quit()]);
      await Promise.all([sink.close(), smtp.close()]);
    }
    return results;
  },
};
export default bench;
