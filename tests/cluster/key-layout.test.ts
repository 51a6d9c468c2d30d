import calculateSlot from 'cluster-key-slot';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { bullQueueName } from '../../src/queue/queues.ts';
import { consumedShards, pushShardName, pushShardOf } from '../../src/queue/shards.ts';
import { customTopicsKey } from '../../src/store/custom-topics.ts';
import { alertKey, topicStatsKey } from '../../src/store/ledger.ts';
import { failingMasters, isClusterTarget, parseClusterTarget, runCommands } from '../../src/store/redis.ts';
import { PACKED_SCRIPTS, storyKey, topicLogKey } from '../../src/store/stories.ts';
import { followersKey, subscriberKeys } from '../../src/store/subscribers.ts';
import { testRedis, uniquePrefix, deletePrefix } from '../helpers/redis.ts';
import { auditSlots, newSlotAudit } from '../helpers/slot-audit.ts';
import { runTestFileOn } from './support.ts';

const slots = (keys: string[]) => new Set(keys.map((k) => calculateSlot(k)));

describe('key builders: each subscriber, story and topic lives in one slot, and they spread', () => {
  const prefix = 'herald';
  it.each(['a1b2c3d4e5f6a7b8c9', '000000000000000000', 'ffffffffffffffffff'])('subscriber %s: profile, follows, devices, secrets, alert records, own alerts share one slot', (id) => {
    const k = subscriberKeys(prefix, id);
    expect(slots([k.profile, k.follows, k.push, k.secrets, alertKey(prefix, id, 'story1', 'push'), alertKey(prefix, id, 'story2', 'email'), customTopicsKey(prefix, id)]).size).toBe(1);
  });
  it('a topic\'s follower sets, story log and delivery counters share one slot', () => {
    expect(slots([followersKey(prefix, 'japan', 'instant'), followersKey(prefix, 'japan', 'daily'), topicLogKey(prefix, 'japan'), topicStatsKey(prefix, 'japan')]).size).toBe(1);
  });
  it('different subscribers, stories and queues do not all share a slot (one tag for everything would put Herald on one node)', () => {
    const subs = Array.from({ length: 50 }, (_, i) => subscriberKeys(prefix, `sub${i}`).profile);
    expect(slots(subs).size).toBeGreaterThan(40);
    expect(slots(Array.from({ length: 50 }, (_, i) => storyKey(prefix, `story${i}`))).size).toBeGreaterThan(40);
    expect(slots(['feeds', 'classify', 'push', 'email', 'digest'].map((q) => `${prefix}:${bullQueueName(q)}:wait`)).size).toBe(5);
  });
});

describe('push shards', () => {
  it('assign a subscriber to the same shard every time, and spread subscribers over all shards', () => {
    const ids = Array.from({ length: 3000 }, (_, i) => `subscriber-${i}`);
    const first = ids.map((id) => pushShardOf(id, 4));
    expect(ids.map((id) => pushShardOf(id, 4))).toEqual(first);
    const counts = [0, 1, 2, 3].map((s) => first.filter((x) => x === s).length);
    for (const c of counts) expect(c).toBeGreaterThan(600);
    expect(ids.every((id) => pushShardOf(id, 1) === 0)).toBe(true);
  });
  it('are named push, push-1, ...: a deployment that never sharded keeps its queue', () => {
    expect([0, 1, 2].map(pushShardName)).toEqual(['push', 'push-1', 'push-2']);
    expect(slots([0, 1, 2, 3].map((s) => bullQueueName(pushShardName(s)))).size).toBe(4);
  });
  it('consumed by a dispatcher: all by default, or the listed ones', () => {
    expect(consumedShards(3, undefined)).toEqual([0, 1, 2]);
    expect(consumedShards(3, [2, 0, 2])).toEqual([0, 2]);
    expect(() => consumedShards(2, [2])).toThrow(/HERALD_PUSH_SHARDS_CONSUMED lists shard 2, but HERALD_PUSH_SHARDS=2 gives shards 0-1/);
  });
});

describe('cluster configuration', () => {
  const base = { HERALD_SIGNING_KEY: 'x'.repeat(40) };
  it('a comma-separated REDIS_URL or REDIS_CLUSTER_NODES names a cluster; a single URL does not', () => {
    expect(isClusterTarget(loadConfig({ ...base, REDIS_URL: 'redis://10.0.0.1:7000,redis://10.0.0.2:7000' }).redisUrl!)).toBe(true);
    expect(isClusterTarget(loadConfig({ ...base, REDIS_URL: 'redis://10.0.0.1:6379' }).redisUrl!)).toBe(false);
    const one = loadConfig({ ...base, REDIS_CLUSTER_NODES: '10.0.0.1:7000' }).redisClusterNodes!;
    expect(isClusterTarget(one)).toBe(true);
    expect(parseClusterTarget(one).nodes).toEqual([{ host: '10.0.0.1', port: 7000 }]);
    expect(parseClusterTarget('rediss://u:p%40ss@a.example:7001, b.example:7002')).toEqual({
      nodes: [{ host: 'a.example', port: 7001 }, { host: 'b.example', port: 7002 }], username: 'u', password: 'p@ss', tls: true,
    });
  });
  it('refuses bad cluster settings with what to do', () => {
    expect(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: '10.0.0.1' })).toThrow(/REDIS_CLUSTER_NODES="10.0.0.1" is invalid: .*host:port.*Fix: list nodes such as/);
    expect(() => loadConfig({ ...base, REDIS_URL: 'redis://a:1,http://b:2' })).toThrow(/REDIS_URL=.* is invalid: .*several separated by commas/);
    expect(() => loadConfig({ ...base, HERALD_PUSH_SHARDS: '0' })).toThrow(/HERALD_PUSH_SHARDS/);
    expect(() => loadConfig({ ...base, HERALD_PUSH_SHARDS: '2', HERALD_PUSH_SHARDS_CONSUMED: '0,2' })).toThrow(/HERALD_PUSH_SHARDS_CONSUMED lists shard 2, but HERALD_PUSH_SHARDS=2 gives shards 0-1\. Fix:/);
    expect(loadConfig({ ...base, HERALD_PUSH_SHARDS: '3', HERALD_PUSH_SHARDS_CONSUMED: '0,2' }).pushShardsConsumed).toEqual([0, 2]);
  });
  it('reads the masters CLUSTER NODES reports down, with their slots', () => {
    const nodes = [
      'a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460',
      'b2 127.0.0.1:7001@17001 master,fail - 1 1 2 disconnected 5461-10922',
      'c3 127.0.0.1:7002@17002 master,fail? - 1 1 3 connected 10923-16383',
      'd4 127.0.0.1:7003@17003 slave a1 0 1 1 connected',
    ].join('\n');
    expect(failingMasters(nodes)).toEqual([
      { address: '127.0.0.1:7001', flags: 'master,fail', slots: '5461-10922' },
      { address: '127.0.0.1:7002', flags: 'master,fail?', slots: '10923-16383' },
    ]);
  });
});

describe('the slot audit', () => {
  const redis = testRedis();
  const prefix = uniquePrefix('slot-audit');
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it('catches a cross-slot MULTI, multi-key command and script, and passes one-slot ones (so it can fail)', async () => {
    const audit = newSlotAudit();
    auditSlots(redis, audit);
    const a = `${prefix}:{s:a}:x`;
    const a2 = `${prefix}:{s:a}:y`;
    const b = `${prefix}:{s:b}:x`;
    await redis.multi().set(a, '1').set(a2, '1').exec();
    await redis.multi().set(a, '1').set(b, '1').exec();
    await redis.mget(a, a2);
    await redis.mget(a, b);
    await redis.eval("return redis.call('GET', KEYS[1])", 2, a, b);
    // A plain pipeline is not a transaction: runCommands uses one only on a single Redis.
    await runCommands(redis, [['get', a], ['get', b]]);
    expect(audit.byKind, JSON.stringify(audit)).toMatchObject({ 'multi-key': 2, script: 1 });
    expect(audit.byKind.multi).toBeGreaterThanOrEqual(2);
    expect(audit.violations).toHaveLength(3);
    expect(audit.violations[0]).toMatch(/^MULTI \[set set\] touches 2 slots/);
    expect(audit.violations[1]).toMatch(/^MGET touches 2 slots/);
    expect(audit.violations[2]).toMatch(/^EVAL touches 2 slots/);
  });

  it('checks a script packing several entries per call (a single Redis only) entry by entry: entries in different slots pass, an entry across slots is caught', async () => {
    const client = testRedis();
    try {
      const audit = newSlotAudit();
      auditSlots(client, audit);
      client.defineCommand('auditedClaimPacked', { lua: PACKED_SCRIPTS.heraldClaim.lua });
      const claim = (client as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>).auditedClaimPacked!.bind(client);
      const shard = (tag: string) => [`${prefix}:{l:${tag}}:2`, `${prefix}:{l:${tag}}:1`, `${prefix}:{l:${tag}}:2`];
      // Two shards, two slots, one call: each entry is one slot.
      expect(await claim(6, ...shard('a'), ...shard('b'), 60_000, 1, 'l:x', 'story-1', 1, 'l:y', 'story-2')).toEqual(['story-1', 'story-2']);
      expect(audit.violations).toEqual([]);
      expect(audit.byKind.script).toBeGreaterThanOrEqual(2);
      await claim(3, `${prefix}:{l:a}:2`, `${prefix}:{l:b}:1`, `${prefix}:{l:a}:2`, 60_000, 1, 'l:z', 'story-3');
      expect(audit.violations).toHaveLength(1);
      expect(audit.violations[0]).toMatch(/^EVAL(SHA)? touches 2 slots/);
    } finally {
      await client.quit();
    }
  });

  it('finds no cross-slot command in a whole walking-skeleton run (feed to push, email and digest) on a single Redis', async () => {
    const url = process.env.HERALD_TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const run = await runTestFileOn('tests/e2e/walking-skeleton.test.ts', url);
    expect(run.code, run.output.slice(-3000)).toBe(0);
    expect(run.audits).toHaveLength(1);
    expect(run.audits[0]!.violations).toEqual([]);
    expect(run.audits[0]!.checked).toBeGreaterThan(100);
  }, 90_000);
});
