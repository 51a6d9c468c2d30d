import { Cluster, Command as RedisCommand, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/** A single Redis or a Redis Cluster: every store takes either, and never issues a cross-slot command. */
export type RedisClient = Redis | Cluster;

/** A comma-separated list (REDIS_URL with several nodes, or REDIS_CLUSTER_NODES) means a Redis Cluster. */
export const isClusterTarget = (target: string) => target.includes(',');

export interface ClusterNode {
  host: string;
  port: number;
}

/** Seed nodes of a cluster target: `redis://[user:pass@]host:port` URLs or bare `host:port`, comma-separated. */
export function parseClusterTarget(target: string): { nodes: ClusterNode[]; username?: string; password?: string; tls: boolean } {
  const entries = target.split(',').map((e) => e.trim()).filter((e) => e.length > 0);
  let username: string | undefined;
  let password: string | undefined;
  let tls = false;
  const nodes = entries.map((entry) => {
    const u = new URL(entry.includes('://') ? entry : `redis://${entry}`);
    if (u.protocol === 'rediss:') tls = true;
    if (u.username) username = decodeURIComponent(u.username);
    if (u.password) password = decodeURIComponent(u.password);
    return { host: u.hostname, port: u.port ? Number(u.port) : 6379 };
  });
  return { nodes, ...(username ? { username } : {}), ...(password ? { password } : {}), tls };
}

/**
 * The one place Herald creates Redis connections. BullMQ needs `maxRetriesPerRequest: null` on the
 * connections its workers block on; state connections keep ioredis's default so a dead Redis
 * surfaces as an error instead of a hang. A comma-separated target gives an ioredis Cluster.
 */
export function createRedis(target: string, opts: { forQueue?: boolean; name?: string; autoPipelining?: boolean } = {}): RedisClient {
  const options: RedisOptions = {
    connectionName: opts.name ?? 'herald',
    lazyConnect: false,
    enableReadyCheck: true,
    ...(opts.forQueue ? { maxRetriesPerRequest: null } : {}),
  };
  // Commands issued in the same tick by many concurrent jobs go out in one write: at fan-out volume the
  // per-command socket writes otherwise cost more CPU than the commands. Never on a blocking connection.
  const autoPipelining = Boolean(opts.autoPipelining && !opts.forQueue);
  if (!isClusterTarget(target)) return new Redis(target, { ...options, ...(autoPipelining ? { enableAutoPipelining: true } : {}) });
  const { nodes, username, password, tls } = parseClusterTarget(target);
  const clusterOptions: ClusterOptions = {
    redisOptions: { ...options, ...(username ? { username } : {}), ...(password ? { password } : {}), ...(tls ? { tls: {} } : {}) },
    enableReadyCheck: true,
    enableAutoPipelining: autoPipelining,
    // A failover moves slots within the node timeout: keep asking instead of failing the command at once.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 200,
    slotsRefreshTimeout: 2000,
    // Reconnect for ever, at most every 2 s: a master that comes back is used again without a restart.
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    ...(opts.forQueue ? { maxRetriesPerRequest: null } : {}),
  };
  return new Cluster(nodes, clusterOptions);
}

export const isCluster = (redis: RedisClient): redis is Cluster => redis instanceof Cluster;

/** The masters to ask for a keyspace-wide command (SCAN, INFO): every master on a cluster, else the one Redis. */
export const masters = (redis: RedisClient): Redis[] => (isCluster(redis) ? redis.nodes('master') : [redis]);

/**
 * Keys matching `pattern` on every master. On a cluster a plain SCAN walks one node only, so each master is
 * scanned; use a pattern under one hash tag when you can (its keys are all on one master, the others answer fast).
 */
export async function scanKeys(redis: RedisClient, pattern: string, onBatch: (keys: string[], node: Redis) => Promise<unknown>): Promise<void> {
  for (const node of masters(redis)) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (found.length > 0) await onBatch(found, node);
    } while (cursor !== '0');
  }
}

/**
 * Fields (or members, or field/value pairs) per command: thousands of items must not become one command
 * with tens of thousands of arguments. Lua's `unpack` takes at most about 8,000 values (a feed of 5,000
 * items failed the seen lookup with "too many results to unpack"), and ioredis passes a command's arguments
 * to one JavaScript call, which overflows the stack somewhere past 50,000.
 */
export const FIELDS_PER_CALL = 1000;
export const chunksOf = <T>(list: readonly T[], size: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
};

export type Command = [name: string, ...args: (string | number | Buffer)[]];

export type Script = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

/** A hash as HGETALL answers it inside a script's reply (a flat field, value list), as an object. */
export function hashFromFlat(flat: readonly string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return h;
}

/**
 * A Lua script called by EVALSHA: its text travels once per connection (ioredis falls back to EVAL after a
 * NOSCRIPT, as after a Redis restart), not with every call. `name` must be unique per client; defining it
 * again on the same client reuses the first definition. `numberOfKeys` null: the key count varies and is
 * the first argument of every call.
 */
export function defineScript(redis: RedisClient, name: string, numberOfKeys: number | null, lua: string): Script {
  const fns = redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  if (typeof fns[name] !== 'function') redis.defineCommand(name, numberOfKeys === null ? { lua } : { numberOfKeys, lua });
  return (...args) => fns[name]!.apply(redis, args);
}

type Arg = string | number | Buffer;
/** A command as sent: its name, and its arguments apart (what EncodedCommand keeps, without another copy). */
interface WireCommand {
  name: string;
  args: Arg[];
}

/**
 * A command whose RESP bytes Herald wrote itself (see encodeBatch): ioredis queues it, resends it after a
 * reconnect and parses its reply as it does any command's. `args` are the caller's, for whoever inspects
 * commands (key lookups, the tests' slot audit).
 */
class EncodedCommand extends RedisCommand {
  constructor(name: string, args: Arg[], private readonly bytes: Buffer) {
    super(name, [], { replyEncoding: 'utf8' });
    this.args = args;
  }
  override toWritable(): Buffer {
    return this.bytes;
  }
}

/** What ioredis knows of a script defined on a client (defineCommand). */
interface DefinedScript {
  lua: string;
  sha: string;
  numberOfKeys: number | null;
}
const scriptOf = (redis: Redis, name: string): DefinedScript | undefined =>
  (redis as unknown as { scriptsSet: Record<string, DefinedScript | undefined> }).scriptsSet[name];

/** Per connection (socket), the scripts already loaded through it: loaded again on a new connection. */
const loadedOn = new WeakMap<object, Set<string>>();

/**
 * The RESP bytes of many commands, written straight into one buffer. ioredis builds each argument into a
 * string ("$" + length + CRLF + value + CRLF) and a pipeline concatenates them all into one string that the
 * socket then flattens and encodes, and creating the pipeline copies every script defined on the client onto
 * it: for a feed's new stories (about 2 KB and 20 arguments per item) the poller allocated about 42 KB per new
 * item with pipelines and allocates about 32 KB this way.
 */
function encodeBatch(cmds: readonly WireCommand[]): { buf: Buffer; ends: number[] } {
  let size = 0;
  let count = 0;
  for (const cmd of cmds) count += cmd.args.length + 1;
  const lens = new Int32Array(count);
  let k = 0;
  for (const cmd of cmds) {
    size += 16;
    const nameBytes = Buffer.byteLength(cmd.name);
    lens[k++] = nameBytes;
    size += nameBytes + 16;
    for (const a of cmd.args) {
      const n = typeof a === 'string' ? Buffer.byteLength(a) : Buffer.isBuffer(a) ? a.length : Buffer.byteLength(String(a));
      lens[k++] = n;
      size += n + 16;
    }
  }
  const buf = Buffer.allocUnsafe(size);
  const ends: number[] = [];
  let at = 0;
  k = 0;
  for (const cmd of cmds) {
    at = writeHeader(buf, at, 42 /* '*' */, cmd.args.length + 1);
    at = writeHeader(buf, at, 36 /* '$' */, lens[k++]!);
    at += buf.write(cmd.name, at);
    buf[at++] = 13;
    buf[at++] = 10;
    for (const a of cmd.args) {
      at = writeHeader(buf, at, 36 /* '$' */, lens[k++]!);
      if (typeof a === 'string') at += buf.write(a, at);
      else if (Buffer.isBuffer(a)) at += a.copy(buf, at);
      else at += buf.write(String(a), at, 'latin1');
      buf[at++] = 13;
      buf[at++] = 10;
    }
    ends.push(at);
  }
  return { buf, ends };
}

/** `*<n>\r\n` or `$<n>\r\n` at `at`, digits written in place (no string per argument); returns the end. */
function writeHeader(buf: Buffer, at: number, type: number, n: number): number {
  buf[at++] = type;
  let digits = 1;
  for (let v = n; v >= 10; v = Math.floor(v / 10)) digits++;
  for (let i = digits - 1, v = n; i >= 0; i--, v = Math.floor(v / 10)) buf[at + i] = 48 + (v % 10);
  at += digits;
  buf[at++] = 13;
  buf[at++] = 10;
  return at;
}

interface Corkable {
  cork(): void;
  uncork(): void;
}
/**
 * Runs commands in one write on a single Redis (sendBatch); on a cluster, where a pipeline must stay in one
 * slot, as separate commands that auto-pipelining groups per node. Replies come back in order, errors thrown
 * (after every reply has come back, as a pipeline's do).
 */
export async function runCommands(redis: RedisClient, cmds: Command[]): Promise<unknown[]> {
  if (cmds.length === 0) return [];
  if (isCluster(redis)) {
    const fns = redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    return Promise.all(cmds.map(([name, ...args]) => fns[name]!.apply(redis, args)));
  }
  const hook = (redis as unknown as { [BATCH_HOOK]?: BatchHook })[BATCH_HOOK];
  return hook ? hook(cmds, (c) => sendBatch(redis, c)) : sendBatch(redis, cmds);
}

/**
 * A client property through which tests hold, count or fail whole batches of runCommands on a single Redis
 * (a Proxy around the client answers it): `send` runs the batch. Nothing in Herald sets it.
 */
export const BATCH_HOOK = Symbol.for('herald.redis.batch');
export type BatchHook = (cmds: Command[], send: (cmds: Command[]) => Promise<unknown[]>) => Promise<unknown[]>;

/** runCommands on a single Redis: one write of commands encoded by Herald, replies in order. */
async function sendBatch(redis: Redis, cmds: Command[]): Promise<unknown[]> {
  // Scripts go as EVALSHA; one not yet loaded through this connection is loaded ahead of them in the same
  // write (as an ioredis pipeline does), so that Redis runs every command in the order given.
  const socket = (redis as unknown as { stream?: object }).stream;
  const loaded = socket ? (loadedOn.get(socket) ?? loadedOn.set(socket, new Set()).get(socket)!) : new Set<string>();
  const loads: WireCommand[] = [];
  const calls: WireCommand[] = [];
  for (const cmd of cmds) {
    const script = scriptOf(redis, cmd[0]);
    // Each command's arguments are copied once, into the list the command keeps (a script's behind EVALSHA).
    if (!script) {
      calls.push({ name: cmd[0], args: cmd.slice(1) });
      continue;
    }
    if (!loaded.has(script.sha)) {
      loads.push({ name: 'script', args: ['load', script.lua] });
      loaded.add(script.sha);
    }
    const args: Arg[] = script.numberOfKeys === null ? [script.sha] : [script.sha, script.numberOfKeys];
    for (let i = 1; i < cmd.length; i++) args.push(cmd[i]!);
    calls.push({ name: 'evalsha', args });
  }
  const wire = loads.length === 0 ? calls : [...loads, ...calls];
  const { buf, ends } = encodeBatch(wire);
  const sent: Promise<unknown>[] = [];
  // One system call for the batch: ioredis writes each command on its own.
  const corkable = socket as Corkable | undefined;
  corkable?.cork();
  try {
    for (let i = 0; i < wire.length; i++) {
      const w = wire[i]!;
      const cmd = new EncodedCommand(w.name, w.args, buf.subarray(i === 0 ? 0 : ends[i - 1], ends[i]));
      sent.push(redis.sendCommand(cmd) as Promise<unknown>);
    }
  } finally {
    corkable?.uncork();
  }
  const settled = await Promise.allSettled(sent);
  const out: unknown[] = [];
  for (let i = loads.length; i < settled.length; i++) {
    const r = settled[i]!;
    if (r.status === 'fulfilled') {
      out.push(r.value);
      continue;
    }
    const err = r.reason as Error;
    // The script was flushed from Redis since it was loaded (SCRIPT FLUSH, a restarted Redis on the same
    // connection): it did not run; run it again through ioredis, which sends its source.
    if (err.message.includes('NOSCRIPT')) {
      if (socket) loadedOn.get(socket)?.clear();
      const [name, ...args] = cmds[i - loads.length]!;
      out.push(await (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[name]!(...args));
      continue;
    }
    throw err;
  }
  return out;
}

export interface RedisServerInfo {
  version: string;
  maxmemoryPolicy: string | undefined;
}

export const MIN_REDIS_VERSION = '6.2.0';

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export async function readServerInfo(redis: RedisClient): Promise<RedisServerInfo> {
  const info = await redis.info('server');
  const version = /redis_version:([\d.]+)/.exec(info)?.[1] ?? '0.0.0';
  let maxmemoryPolicy: string | undefined;
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    maxmemoryPolicy = reply[1];
  } catch {
    // Managed Redis services often disable CONFIG; the warning below then cannot be checked.
    maxmemoryPolicy = undefined;
  }
  return { version, maxmemoryPolicy };
}

/** Throws when Redis is too old for BullMQ; warns when eviction could silently drop queued alerts. */
export function assessServer(info: RedisServerInfo): { error?: string; warning?: string } {
  if (compareVersions(info.version, MIN_REDIS_VERSION) < 0) {
    return { error: `Redis ${info.version} is too old: Herald needs Redis >= ${MIN_REDIS_VERSION} (BullMQ uses its commands). Upgrade Redis.` };
  }
  if (info.maxmemoryPolicy !== undefined && info.maxmemoryPolicy !== 'noeviction') {
    return {
      warning: `Redis maxmemory-policy is "${info.maxmemoryPolicy}": under memory pressure Redis may evict queued alerts and delivery records. Set "maxmemory-policy noeviction".`,
    };
  }
  return {};
}

export async function checkRedisServer(redis: RedisClient, log: Logger): Promise<RedisServerInfo> {
  const info = await readServerInfo(redis);
  const { error, warning } = assessServer(info);
  if (error) throw new Error(error);
  if (warning) log.warn({ redis_version: info.version, maxmemory_policy: info.maxmemoryPolicy }, warning);
  return info;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e instanceof Error ? e : new Error(String(e)))),
    );
  });

/** A master that CLUSTER NODES reports failing (`fail`, `fail?` or disconnected), with the slots it serves. */
export interface FailingMaster {
  address: string;
  flags: string;
  slots: string;
}

/** Parses CLUSTER NODES: the masters the cluster itself sees as down. */
export function failingMasters(clusterNodes: string): FailingMaster[] {
  const out: FailingMaster[] = [];
  for (const line of clusterNodes.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [, addr, flags, , , , , link, ...slots] = parts;
    const flagList = (flags ?? '').split(',');
    if (!flagList.includes('master')) continue;
    if (flagList.includes('fail') || flagList.includes('fail?') || link === 'disconnected') {
      out.push({ address: (addr ?? '').split('@')[0]!, flags: flags ?? '', slots: slots.join(' ') || '(none)' });
    }
  }
  return out;
}

/**
 * Readiness of Redis as an operator needs it: PING on a single Redis; on a cluster, CLUSTER INFO and
 * CLUSTER NODES from a node that answers, so a down master is named with its slots (every key in those
 * slots, and any queue shard there, waits until it is back or a replica takes over).
 */
export async function redisHealth(redis: RedisClient, timeoutMs = 1500): Promise<string> {
  if (!isCluster(redis)) {
    await withTimeout(redis.ping(), timeoutMs, 'Redis');
    return 'ok';
  }
  const errors: string[] = [];
  // A client just created knows no node yet: its first command waits for the slot map.
  if (redis.nodes('master').length === 0) await withTimeout(redis.ping(), timeoutMs, 'Redis Cluster');
  for (const node of redis.nodes('master')) {
    const addr = `${node.options.host}:${node.options.port}`;
    try {
      const [info, nodes] = await withTimeout(Promise.all([node.cluster('INFO') as Promise<string>, node.cluster('NODES') as Promise<string>]), timeoutMs, `Redis Cluster node ${addr}`);
      const state = /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown';
      const failing = failingMasters(nodes);
      if (state === 'ok' && failing.length === 0) return 'ok';
      const down = failing.map((f) => `${f.address} (${f.flags}, slots ${f.slots})`).join('; ');
      throw new ClusterUnhealthyError(`Redis Cluster state is ${state} as seen from ${addr}${down ? `: master down: ${down}` : ''}`);
    } catch (err) {
      if (err instanceof ClusterUnhealthyError) throw err;
      errors.push(`${addr}: ${(err as Error).message}`);
    }
  }
  throw new Error(`no Redis Cluster master answers (${errors.join('; ') || 'none known'})`);
}

class ClusterUnhealthyError extends Error {
  override name = 'ClusterUnhealthyError';
}

/**
 * On a cluster, logs which node is unreachable (at most once per node every `everyMs`, not once per
 * reconnect attempt): which master is down is what the operator needs to know. A single Redis's errors
 * are reported where they happen (the caller's command fails).
 */
export function logClusterEvents(redis: RedisClient, log: Logger, connection: string, now: () => number = Date.now, everyMs = 10_000): void {
  if (!isCluster(redis)) return;
  const lastLogged = new Map<string, number>();
  redis.on('node error', (err: Error, address: string) => {
    const last = lastLogged.get(address);
    if (last !== undefined && now() - last < everyMs) return;
    lastLogged.set(address, now());
    log.error(
      { redis_node: address, connection, err: err.message },
      `Redis Cluster node ${address} is unreachable: commands for its slots wait or fail until it is back or a replica takes over`,
    );
  });
  redis.on('+node', (node: Redis) => {
    const address = `${node.options.host}:${node.options.port}`;
    if (lastLogged.delete(address)) log.warn({ redis_node: address, connection }, `Redis Cluster node ${address} is connected again`);
  });
}
