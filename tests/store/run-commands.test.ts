// runCommands on a single Redis writes the commands' bytes itself (encodeBatch) instead of through an ioredis
// pipeline: every store's batches go through it, so what it sends must be exactly what the callers meant.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, isCluster, runCommands, type Command, type RedisClient } from '../../src/store/redis.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';
import { startLocalRedis, type LocalRedis } from '../helpers/redis-server.ts';

const { redis, prefix } = isolatedRedis('run-commands');
const key = (name: string) => `${prefix}:${name}`;
const onCluster = isCluster(redis);

/** Writes KEYS[1] = ARGV[1] and answers the key's new length: a script whose effect a later command can read. */
const SET_AND_LEN = `redis.call('SET', KEYS[1], ARGV[1]) return redis.call('STRLEN', KEYS[1])`;

describe.skipIf(onCluster)('runCommands on a single Redis', () => {
  it('sends every argument byte for byte and answers each command in order, as ioredis types its replies', async () => {
    const text = 'Tōkyō talks — नई दिल्ली 🇮🇳🇯🇵 "quoted" \r\n$3\r\nnot a command';
    const bytes = Buffer.from([0, 255, 13, 10, 42, 36]);
    const replies = await runCommands(redis, [
      ['set', key('text'), text],
      ['set', key('bytes'), bytes],
      ['set', key('empty'), ''],
      ['hset', key('hash'), 'n', 42, 'f', 1.5, 'u', text],
      ['get', key('text')],
      ['strlen', key('text')],
      ['get', key('missing')],
      ['hgetall', key('hash')],
      ['hmget', key('hash'), 'n', 'none'],
      ['incrby', key('count'), 7],
    ]);
    expect(replies).toEqual(['OK', 'OK', 'OK', 3, text, Buffer.byteLength(text), null, { n: '42', f: '1.5', u: text }, ['42', null], 7]);
    expect(await redis.getBuffer(key('bytes'))).toEqual(bytes);
    expect(await redis.get(key('empty'))).toBe('');
  });

  it('runs the whole batch when one command fails, then throws that command\'s error', async () => {
    await redis.set(key('not-a-hash'), 'x');
    await expect(runCommands(redis, [
      ['set', key('before'), '1'],
      ['hset', key('not-a-hash'), 'f', 'v'],
      ['set', key('after'), '2'],
    ])).rejects.toThrow(/WRONGTYPE/);
    expect(await redis.mget(key('before'), key('after'))).toEqual(['1', '2']);
  });

  it('carries a batch of 20,000 commands and a 6 MB argument', async () => {
    const big = 'é'.repeat(3 * 1024 * 1024);
    const cmds: Command[] = [['set', key('big'), big], ...Array.from({ length: 20_000 }, (_, i): Command => ['hset', key('many'), `f${i}`, `v${i}`])];
    const replies = await runCommands(redis, cmds);
    expect(replies).toHaveLength(20_001);
    expect(await redis.strlen(key('big'))).toBe(6 * 1024 * 1024);
    expect(await redis.hlen(key('many'))).toBe(20_000);
    expect(await redis.hget(key('many'), 'f19999')).toBe('v19999');
  });
});

/**
 * Scripts go as EVALSHA. A Redis of the test's own, so that its script cache is the test's to empty and its
 * restart harms no other test: the shared one may already hold a script, which would hide a missing load.
 */
describe.skipIf(onCluster)('runCommands and Lua scripts', () => {
  let local: LocalRedis;
  let client: RedisClient;
  beforeAll(async () => {
    local = await startLocalRedis();
    client = createRedis(local.url, { name: 'run-commands-scripts' });
    client.defineCommand('heraldTestSetAndLen', { numberOfKeys: 1, lua: SET_AND_LEN });
    client.defineCommand('heraldTestSetAndLenKeys', { lua: SET_AND_LEN });
  });
  afterAll(async () => {
    client.disconnect();
    await local.stop();
  });

  /** A script's write, then commands that read it: in order only if the script ran before them. */
  const writeThenRead = (tag: string): Command[] => [
    ['heraldTestSetAndLen', `k:${tag}`, `value ${tag}`],
    ['get', `k:${tag}`],
    ['heraldTestSetAndLenKeys', 1, `k2:${tag}`, 'ü'],
    ['get', `k2:${tag}`],
  ];

  it('runs a script Redis has never seen in the same batch as the commands after it, in order', async () => {
    expect(await client.script('EXISTS', createHash('sha1').update(SET_AND_LEN).digest('hex'))).toEqual([0]);
    expect(await runCommands(client, writeThenRead('fresh'))).toEqual([11, 'value fresh', 2, 'ü']);
  });

  it('recovers when Redis forgets its scripts under a live connection (SCRIPT FLUSH)', async () => {
    expect(await runCommands(client, writeThenRead('warm'))).toEqual([10, 'value warm', 2, 'ü']);
    await client.script('FLUSH');
    const [len, , len2] = await runCommands(client, writeThenRead('flushed'));
    expect([len, len2]).toEqual([13, 2]);
    expect(await client.mget('k:flushed', 'k2:flushed')).toEqual(['value flushed', 'ü']);
    // And the next batch is in order again: the scripts are known once more.
    expect(await runCommands(client, writeThenRead('after-flush'))).toEqual([17, 'value after-flush', 2, 'ü']);
  });

  it('loads the scripts again on the new connection after Redis restarts', async () => {
    await local.kill();
    await local.start();
    await new Promise<void>((resolve) => (client.status === 'ready' ? resolve() : client.once('ready', () => resolve())));
    expect(await runCommands(client, writeThenRead('restarted'))).toEqual([15, 'value restarted', 2, 'ü']);
  });
});
