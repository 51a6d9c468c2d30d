// The near-duplicate log (src/store/near-log.ts): every poller appends its feed's new items to one Redis stream
// and replays the log, in stream order, through the pure NearIndex. These tests check what an operator relies
// on: pollers that decide concurrently agree on one story per event, a poller that starts late catches up, a
// lost reply does not register an item twice, and the index keeps the rules (day window, bucket caps, the
// days it drops) as a plain model of them says it should.
import { afterAll, describe, expect, it } from 'vitest';
import { bandKeys, encodeSignature, minhashSignature } from '../../src/ingest/near-duplicate.ts';
import { createNearLog, decodeEntry, encodeEntry, NearIndex, nearLogKey, nearOwnersKey, type NearDecision, type NearEntry, type NearItem } from '../../src/store/near-log.ts';
import { BATCH_HOOK, createRedis, type BatchHook, type RedisClient } from '../../src/store/redis.ts';
import { createStoryStore } from '../../src/store/stories.ts';
import { handBuiltCandidate } from '../helpers/ingest-candidates.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';
import { seededRandom } from '../helpers/random.ts';
import { TEST_REDIS_URL } from '../helpers/redis.ts';

const { redis, prefix } = isolatedRedis('near-log');
/** A second connection: the other poller, as another process would have it. */
const otherRedis = createRedis(TEST_REDIS_URL);
afterAll(async () => {
  await otherRedis.quit();
});

const DAY = 86_400_000;
const T0 = Date.UTC(2027, 2, 10, 12);
const NEED = 16;

let seq = 0;
/** 32 signature rows: those of `like` for the first `equal` rows, values of their own elsewhere. */
function rows(like: readonly number[] | null, equal = 32): number[] {
  return Array.from({ length: 32 }, (_, r) => (like && r < equal ? like[r]! : 0x10000 + seq++ * 32 + r));
}
/** Rows equal between two row lists. */
const equalRows = (a: readonly number[], b: readonly number[]) => a.filter((v, r) => v === b[r]).length;
/** 16 buckets: `${b}:${shared}` for the first `sharedBands` bands, buckets of the item's own elsewhere. */
const bucketsFor = (id: string, shared: string, sharedBands = 1) => Array.from({ length: 16 }, (_, b) => (b < sharedBands ? `${b}:${shared}` : `${b}:own-${id}`));
/** The rows of a signature as encodeSignature wrote them. */
const decodeSignature = (hex: string) => new Uint32Array(Uint8Array.from(Buffer.from(hex, 'hex')).buffer);
const item = (id: string, r: readonly number[], bands: readonly string[]): NearItem => ({ id, signature: encodeSignature(Uint32Array.from(r)), bands });
const registered: NearDecision = { merged: false };
const mergedInto = (storyId: string, equal: number): NearDecision => ({ merged: true, storyId, equalRows: equal });
/** A key prefix of each test's own, under the file's (deleted with it): each test has a log of its own. */
const sub = (name: string) => `${prefix}:${name}`;

/**
 * Counts the calls on the near-duplicate log a client sends (in the batches runCommands sends on a single
 * Redis): appends (heraldNear) and catch-up reads (xrange).
 */
function countingNearCalls(real: RedisClient): { client: RedisClient; calls: () => number; reads: () => number } {
  let calls = 0;
  let reads = 0;
  const client = new Proxy(real, {
    get(target, prop) {
      if (prop === BATCH_HOOK) {
        return ((cmds, send) => {
          calls += cmds.filter((c) => c[0] === 'heraldNear').length;
          reads += cmds.filter((c) => c[0] === 'xrange').length;
          return send(cmds);
        }) satisfies BatchHook;
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { client, calls: () => calls, reads: () => reads };
}

/**
 * A client whose first heraldNear call runs in Redis but whose reply never reaches the caller: the batch
 * waits for the real reply, then throws (a connection dropped after Redis ran the script). On a cluster
 * runCommands calls the command itself, so that is wrapped too.
 */
function losingFirstNearReply(real: RedisClient): { client: RedisClient; lost: () => number } {
  let lost = 0;
  const dropReply = () => {
    lost++;
    throw new Error('Connection is closed (reply lost after Redis ran the script)');
  };
  const client = new Proxy(real, {
    get(target, prop) {
      if (prop === BATCH_HOOK) {
        return (async (cmds, send) => {
          if (lost > 0 || !cmds.some((c) => c[0] === 'heraldNear')) return send(cmds);
          await send(cmds);
          return dropReply();
        }) satisfies BatchHook;
      }
      const v = Reflect.get(target, prop, target) as unknown;
      if (prop === 'heraldNear' && typeof v === 'function') {
        return async (...args: unknown[]) => {
          const reply = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          return lost > 0 ? reply : dropReply();
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { client, lost: () => lost };
}

describe('two pollers on one log', () => {
  it('look-alikes of one event from four feeds, decided concurrently by two pollers over many rounds, make one registered story that both pollers later merge into', async () => {
    const p = sub('two-pollers');
    const [countA, countB] = [countingNearCalls(redis), countingNearCalls(otherRedis)];
    const pollerA = createNearLog(countA.client, p);
    const pollerB = createNearLog(countB.client, p);
    // Two feeds per poller, so each poller also has two calls in flight at once.
    const feeds = [
      { poller: pollerA, feed: 'wire', equal: 20 },
      { poller: pollerB, feed: 'radio', equal: 21 },
      { poller: pollerA, feed: 'paper', equal: 22 },
      { poller: pollerB, feed: 'portal', equal: 23 },
    ];
    const rounds: { base: number[]; sigs: number[][]; first: number }[] = [];
    for (let r = 0; r < 40; r++) {
      const base = rows(null);
      const sigs = feeds.map((f) => rows(base, f.equal));
      // All four calls at once, started in a different order each round. Each call also carries an unrelated
      // item of its feed, and every item of every round shares a busy bucket (band 15).
      const order = feeds.map((_, k) => (k + r) % feeds.length);
      const sent = await Promise.all(
        order.map((k) => {
          const f = feeds[k]!;
          return f.poller.decide(f.feed, T0 + r * 1000, NEED, [
            item(`${f.feed}-e${r}`, sigs[k]!, [...bucketsFor(`${f.feed}-e${r}`, `event${r}`, 3).slice(0, 15), '15:busy']),
            item(`${f.feed}-other${r}`, rows(null), [...bucketsFor(`${f.feed}-other${r}`, `other${r}`).slice(0, 15), '15:busy']),
          ]);
        }),
      );
      const out = feeds.map((_, k) => sent[order.indexOf(k)]!);
      expect(out.map((d) => d[1])).toEqual([registered, registered, registered, registered]);
      const events = out.map((d) => d[0]!);
      const first = events.findIndex((d) => !d.merged);
      expect(events.filter((d) => !d.merged)).toHaveLength(1);
      const story = `${feeds[first]!.feed}-e${r}`;
      // Every other feed's item merged into that one, with the rows it shares with it.
      expect(events).toEqual(feeds.map((_, k) => (k === first ? registered : mergedInto(story, equalRows(sigs[k]!, sigs[first]!)))));
      rounds.push({ base, sigs, first });
    }
    // Either poller's items came first in some rounds.
    expect(new Set(rounds.map((r) => feeds[r.first]!.poller)).size).toBe(2);
    // Afterwards, a new feed's look-alike of each event, asked of either poller, joins that same story.
    for (const [r, { base, sigs, first }] of rounds.entries()) {
      const late = rows(base, 24);
      const want = [mergedInto(`${feeds[first]!.feed}-e${r}`, equalRows(late, sigs[first]!))];
      expect(await pollerA.decide('late-a', T0 + 60_000, NEED, [item(`late-a-e${r}`, late, bucketsFor(`late-a-e${r}`, `event${r}`))])).toEqual(want);
      expect(await pollerB.decide('late-b', T0 + 60_000, NEED, [item(`late-b-e${r}`, late, bucketsFor(`late-b-e${r}`, `event${r}`))])).toEqual(want);
    }
    // One Redis call per decision (2 feeds x 40 rounds, and 40 late look-alikes, per poller): concurrent calls
    // of one poller never made it read the log again.
    expect([countA.calls(), countB.calls()]).toEqual([120, 120]);
  });

  it('two story stores (two pollers) ingesting one event from four feeds at once create one story with four sources, every round', async () => {
    const p = sub('two-stores');
    const stores = [createStoryStore(redis, p), createStoryStore(otherRedis, p)];
    const candidate = (feedId: string, n: string, sig: number[], bands: string[]) => handBuiltCandidate(feedId, n, sig, bands, T0);
    const feeds = ['wire', 'radio', 'paper', 'portal'];
    for (let r = 0; r < 10; r++) {
      const base = rows(null);
      const out = await Promise.all(
        feeds.map(async (f, k) => (await stores[k % 2]!.ingestBatch([candidate(f, `e${r}`, rows(base, 20 + k), bucketsFor(`${f}-e${r}`, `event${r}`, 2))], { threshold: 0.5, now: T0 }))[0]!),
      );
      const created = out.filter((o) => o.outcome === 'created');
      expect(created).toHaveLength(1);
      const storyId = (created[0] as { id: string }).id;
      expect(out.filter((o) => o.outcome === 'merged').map((o) => (o as { id: string }).id)).toEqual([storyId, storyId, storyId]);
      expect((await stores[0]!.get(storyId))?.sources?.map((s) => s.feedId).sort()).toEqual([...feeds].sort());
      // Each store, asked later about another feed's copy, adds it to the same story.
      for (const [k, store] of stores.entries()) {
        expect((await store.ingestBatch([candidate(`late${k}`, `e${r}`, rows(base, 24), bucketsFor(`late${k}-e${r}`, `event${r}`, 2))], { threshold: 0.5, now: T0 }))[0]).toMatchObject({ outcome: 'merged', id: storyId });
      }
    }
  });
});

describe('the owners index', () => {
  // The script finds a poller's own pending entries in the owners index and reads only the others' items.
  it('a poller with sixteen calls in flight decides each against another poller\'s entry, and the owners index holds every entry', async () => {
    const p = sub('owners');
    const other = createNearLog(otherRedis, p);
    const base = rows(null);
    expect(await other.decide('wire', T0, NEED, [item('wire-1', base, bucketsFor('wire-1', 'ev'))])).toEqual([registered]);
    const { client } = countingNearCalls(redis);
    const poller = createNearLog(client, p);
    // Sixteen calls at once, each with a look-alike of the other poller's item: each finds it (its items came
    // back) and none finds another of these sixteen (same feed).
    const out = await Promise.all(Array.from({ length: 16 }, (_, k) => poller.decide('paper', T0, NEED, [item(`paper-${k}`, rows(base, 20 + (k % 10)), bucketsFor(`paper-${k}`, 'ev'))])));
    expect(out).toEqual(Array.from({ length: 16 }, (_, k) => [mergedInto('wire-1', 20 + (k % 10))]));
    expect(await redis.xlen(nearOwnersKey(p))).toBe(17);
    expect(await redis.xlen(nearLogKey(p))).toBe(17);
  });

  it('an entry whose items were trimmed from the log while its owner was not is left out alike by a poller in step and one catching up', async () => {
    const p = sub('owners-trimmed');
    const inStep = createNearLog(otherRedis, p);
    expect(await inStep.decide('paper', T0, NEED, [item('paper-0', rows(null), bucketsFor('paper-0', 'zero'))])).toEqual([registered]);
    const writer = createNearLog(redis, p);
    const gone = rows(null);
    const kept = rows(null);
    await writer.decide('wire', T0, NEED, [item('wire-gone', gone, bucketsFor('wire-gone', 'gone'))]);
    await writer.decide('wire', T0, NEED, [item('wire-kept', kept, bucketsFor('wire-kept', 'kept'))]);
    // The streams are trimmed apart (MINID ~ trims whole nodes): wire-gone's items are gone, its owner not.
    const entries = (await redis.xrange(nearLogKey(p), '-', '+')) as [string, string[]][];
    await redis.xdel(nearLogKey(p), entries[1]![0]);
    expect(await redis.xlen(nearOwnersKey(p))).toBe(3);
    // The poller in step reads the two entries through the script: the trimmed one is left out.
    expect(await inStep.decide('paper', T0, NEED, [
      item('paper-gone', rows(gone, 24), bucketsFor('paper-gone', 'gone')),
      item('paper-kept', rows(kept, 24), bucketsFor('paper-kept', 'kept')),
    ])).toEqual([registered, mergedInto('wire-kept', 24)]);
    // A poller that starts now reads the log itself (catch-up) and sees the same entries.
    const late = createNearLog(redis, p);
    expect(await late.decide('radio', T0, NEED, [item('radio-gone', rows(gone, 25), bucketsFor('radio-gone', 'gone'))])).toEqual([mergedInto('paper-gone', 24)]);
  });
  it('keeps deciding, with one id for each entry in both streams, when the owners index is ahead of the log (the log alone deleted, a clock behind)', async () => {
    const p = sub('owners-ahead');
    const poller = createNearLog(redis, p);
    const other = createNearLog(otherRedis, p);
    const first = rows(null);
    expect(await poller.decide('wire', T0, NEED, [item('wire-a', first, bucketsFor('wire-a', 'a'))])).toEqual([registered]);
    // An owners entry far in the future: the log's next automatic id is behind it.
    await redis.xadd(nearOwnersKey(p), '9999999999999-0', 'o', 'elsewhere 1');
    expect(await poller.decide('wire', T0, NEED, [item('wire-b', rows(null), bucketsFor('wire-b', 'b'))])).toEqual([registered]);
    expect(await other.decide('paper', T0, NEED, [item('paper-a', rows(first, 26), bucketsFor('paper-a', 'a'))])).toEqual([mergedInto('wire-a', 26)]);
    const ids = async (key: string) => ((await redis.xrange(key, '-', '+')) as [string, string[]][]).map(([id]) => id);
    const logIds = await ids(nearLogKey(p));
    expect(logIds.slice(1)).toEqual(['9999999999999-1', '9999999999999-2']);
    expect(await ids(nearOwnersKey(p))).toEqual([logIds[0], '9999999999999-0', ...logIds.slice(1)]);
  });
});

describe('a poller that starts late', () => {
  it('catches up past the read limit (entries read per call) over 1,200 entries and merges look-alikes of early, middle and late items into them', async () => {
    const p = sub('catch-up');
    const writer = createNearLog(redis, p);
    const sigs: number[][] = [];
    for (let i = 0; i < 1200; i++) {
      sigs.push(rows(null));
      const d = await writer.decide(`src${i % 7}`, T0, NEED, [item(`item-${i}`, sigs[i]!, bucketsFor(`item-${i}`, `item${i}`, 2))]);
      expect(d).toEqual([registered]);
    }
    expect(await redis.xlen(nearLogKey(p))).toBe(1200);

    const { client, calls, reads } = countingNearCalls(otherRedis);
    const late = createNearLog(client, p);
    const picks = [3, 700, 1190];
    const copies = picks.map((i) => rows(sigs[i]!, 22));
    const fresh = rows(null);
    const out = await late.decide('late', T0 + 1000, NEED, [
      ...picks.map((i, k) => item(`late-${i}`, copies[k]!, bucketsFor(`late-${i}`, `item${i}`, 2))),
      item('late-new', fresh, bucketsFor('late-new', 'nothing-else')),
    ]);
    expect(out).toEqual([...picks.map((i) => mergedInto(`item-${i}`, 22)), registered]);
    // It read the log in bounded calls (200 entries each, the last one short) and appended once: one entry more
    // in the log, every item indexed.
    expect([reads(), calls()]).toEqual([7, 1]);
    expect(await redis.xlen(nearLogKey(p))).toBe(1201);
    expect(late.indexed).toBe(1204);
    // The writer sees the late poller's entry the same way: the new item is registered, the copies merged.
    expect(await writer.decide('check', T0 + 2000, NEED, [item('check-new', fresh, bucketsFor('check-new', 'nothing-else'))])).toEqual([mergedInto('late-new', 32)]);
    expect(await writer.decide('check', T0 + 2000, NEED, [item('check-3', copies[0]!, bucketsFor('check-3', 'item3', 2))])).toEqual([mergedInto('item-3', 22)]);
  });

  // Before bb175b7 a poller gave up after 8 calls of one decision (about 4,000 entries read): a poller started on
  // a busy installation, or one that restarted its index after a lost reply, failed its first ingests.
  it('a poller started after 4,100 entries decides its first items without an error, however many calls its catch-up takes', async () => {
    const p = sub('long-catch-up');
    const writer = createNearLog(redis, p);
    const first = rows(null);
    await writer.decide('src', T0, NEED, [item('long-0', first, bucketsFor('long-0', 'long0'))]);
    for (let i = 1; i < 4100; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, 4100 - i) }, (_, k) => writer.decide('src', T0, NEED, [item(`long-${i + k}`, rows(null), bucketsFor(`long-${i + k}`, 'x'))])));
    }
    expect(await redis.xlen(nearLogKey(p))).toBe(4100);
    const { client, calls, reads } = countingNearCalls(otherRedis);
    const late = createNearLog(client, p);
    expect(await late.decide('late', T0, NEED, [item('late-0', first, bucketsFor('late-0', 'long0'))])).toEqual([mergedInto('long-0', 32)]);
    expect([reads(), calls()]).toEqual([21, 1]);
    expect(late.indexed).toBe(4101);
  }, 60_000);

  it('sixteen feeds decided at once by a poller that just started read the log once between them, not once each', async () => {
    const p = sub('shared-catch-up');
    const writer = createNearLog(redis, p);
    const sigs = Array.from({ length: 1000 }, () => rows(null));
    for (let i = 0; i < 1000; i += 100) {
      await Promise.all(sigs.slice(i, i + 100).map((sig, k) => writer.decide(`w${(i + k) % 5}`, T0, NEED, [item(`w-${i + k}`, sig, bucketsFor(`w-${i + k}`, `w${i + k}`))])));
    }
    const { client, calls, reads } = countingNearCalls(otherRedis);
    const late = createNearLog(client, p);
    const out = await Promise.all(Array.from({ length: 16 }, (_, f) => late.decide(`late${f}`, T0, NEED, [item(`late-${f}`, sigs[f * 60]!, bucketsFor(`late-${f}`, `w${f * 60}`))])));
    expect(out).toEqual(Array.from({ length: 16 }, (_, f) => [mergedInto(`w-${f * 60}`, 32)]));
    // 1,000 entries read in 6 calls (the sixth finds the end), then one append per feed.
    expect([reads(), calls()]).toEqual([6, 16]);
  });
});

describe('a lost reply', () => {
  it('the call throws; the next call by the same poller repeats the first decisions, decides new items, and every poller merges look-alikes into the items registered once', async () => {
    const p = sub('lost-reply');
    const { client, lost } = losingFirstNearReply(redis);
    const poller = createNearLog(client, p);
    const other = createNearLog(otherRedis, p);

    // Another feed's story, which one of the lost call's items is a copy of.
    const older = rows(null);
    expect(await other.decide('beta', T0, NEED, [item('beta-old', older, bucketsFor('beta-old', 'old'))])).toEqual([registered]);

    const one = rows(null);
    const copyOfOlder = rows(older, 25);
    const firstCall = [item('alpha-1', one, bucketsFor('alpha-1', 'one')), item('alpha-2', copyOfOlder, bucketsFor('alpha-2', 'old'))];
    await expect(poller.decide('alpha', T0, NEED, firstCall)).rejects.toThrow(/reply lost/);
    expect(lost()).toBe(1);
    // Redis did run it: the entry is in the log.
    expect(await redis.xlen(nearLogKey(p))).toBe(2);

    // Meanwhile another poller sees the lost call's items: a copy of alpha-1 joins it. (A poller that skipped
    // its own lost entry would take this copy for the first of the event and merge alpha-1 into it.)
    const copyOfOne = rows(one, 27);
    expect(await other.decide('beta', T0 + 1000, NEED, [item('beta-1', copyOfOne, bucketsFor('beta-1', 'one'))])).toEqual([mergedInto('alpha-1', 27)]);

    // The poller runs the same items again, with one more.
    const three = rows(null);
    const rerun = [...firstCall, item('alpha-3', three, bucketsFor('alpha-3', 'three'))];
    expect(await poller.decide('alpha', T0 + 2000, NEED, rerun)).toEqual([registered, mergedInto('beta-old', 25), registered]);
    // And once more (a second re-run): the same decisions.
    expect(await poller.decide('alpha', T0 + 3000, NEED, rerun)).toEqual([registered, mergedInto('beta-old', 25), registered]);

    // Every poller, this one, the other and one started now, merges new look-alikes into the items registered once.
    const fresh = createNearLog(otherRedis, p);
    for (const [k, poller_] of [poller, other, fresh].entries()) {
      const out = await poller_.decide(`gamma${k}`, T0 + 4000, NEED, [
        item(`gamma${k}-1`, rows(one, 30), bucketsFor(`gamma${k}-1`, 'one')),
        item(`gamma${k}-2`, rows(copyOfOlder, 26), bucketsFor(`gamma${k}-2`, 'old')),
        item(`gamma${k}-3`, rows(three, 29), bucketsFor(`gamma${k}-3`, 'three')),
      ]);
      // alpha-2 was merged, so a copy of it is compared with the story it joined (26 rows of copyOfOlder are
      // older's first 25 and one of alpha-2's own).
      expect(out).toEqual([mergedInto('alpha-1', 30), mergedInto('beta-old', 25), mergedInto('alpha-3', 29)]);
      // Each poller holds each item once: beta-old, alpha-1..3, beta-1, and the look-alikes decided so far.
      expect(poller_.indexed).toBe(5 + 3 * (k + 1));
    }
  });
});


/**
 * Randomized entries: six feeds, several items per entry, over about two weeks with clocks a day (rarely two)
 * behind; new items (some in a few busy buckets), look-alikes of recent items with some rows and buckets of
 * their own, re-runs of a feed's earlier items, items with more than 16 buckets and items without a valid
 * signature.
 */
function randomEntries(seed: number, count: number): NearEntry[] {
  const rnd = seededRandom(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const feeds = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5'];
  let day = Math.floor(T0 / DAY);
  let own = 0;
  const made: { item: NearItem; feed: string; rows: number[] }[] = [];
  const entries: NearEntry[] = [];
  for (let e = 0; e < count; e++) {
    if (rnd() < 0.04) day++;
    const behind = rnd() < 0.1 ? 1 : rnd() < 0.02 ? 2 : 0;
    const now = (day - behind) * DAY + int(DAY);
    const feed = feeds[int(feeds.length)]!;
    const need = [16, 16, 20, 24][int(4)]!;
    const items: NearItem[] = [];
    for (let k = 0, n = 1 + int(4); k < n; k++) {
      const id = `${feed}-${e}-${k}`;
      const p = rnd();
      const recent = made.slice(-150);
      const mine = recent.filter((m) => m.feed === feed);
      if (p > 0.9 && mine.length > 0) {
        items.push(mine[int(mine.length)]!.item);
        continue;
      }
      let r: number[];
      let bands: string[];
      if (p < 0.1 && recent.length > 1) {
        // Half the rows and buckets of each of two items: as alike to one as to the other (a tie when both are
        // registered and 16 rows are enough).
        const [s1, s2] = [recent[int(recent.length)]!, recent[int(recent.length)]!];
        r = [...s1.rows.slice(0, 16), ...s2.rows.slice(16)];
        bands = [...s1.item.bands!.slice(0, 8), ...s2.item.bands!.slice(8, 16)];
      } else if (p < 0.55 && recent.length > 0) {
        const src = recent[int(recent.length)]!;
        const change = rnd() * 0.6;
        r = src.rows.map((v) => (rnd() < change ? rows(null)[0]! : v));
        bands = src.item.bands!.map((b, i) => (rnd() < 0.5 ? b : `${i}:own${own++}`));
      } else {
        r = rows(null);
        const busy = rnd() < 0.3 ? 0.7 : 0.1;
        bands = Array.from({ length: rnd() < 0.05 ? 18 : 16 }, (_, i) => (rnd() < busy ? `${i}:busy${int(2)}` : `${i}:own${own++}`));
      }
      const it = p >= 0.55 && p < 0.58 ? { id, signature: `zz${item(id, r, bands).signature.slice(2)}`, bands } : item(id, r, bands);
      items.push(it);
      made.push({ item: it, feed, rows: r });
    }
    entries.push({ feedId: feed, now, need, items });
  }
  return entries;
}

/**
 * The rules of NearIndex, written plainly (lists and maps, no tables): what the index is meant to decide.
 * An item merges into the best (most equal rows, ties: first found) registered item of another feed among its
 * buckets' 16 newest registered items (buckets in its order; 64 candidates compared at most; candidates whose day
 * is before the item's day - 1 skipped, and counted in their bucket's 16), needing `need` equal rows; a merged item
 * joins its target's story and is in no bucket; an id seen before repeats its first decision; an entry of a newer
 * day drops the items (in log order, up to the first newer one) of days before that day - 2.
 */
interface ModelItem {
  id: string;
  feed: string;
  day: number;
  signature: string;
  decision: NearDecision;
  bands: string[];
}
class ModelIndex {
  private kept: ModelItem[] = [];
  private buckets = new Map<string, ModelItem[]>();
  private lastDay = -Infinity;
  /** How often each rule decided something, so that a test can check its entries exercise them all. */
  readonly stats = { dropped: 0, bucketCut: 0, candidateCap: 0, oldDay: 0, sameFeed: 0, tie: 0, repeated: 0, noSignature: 0 };

  get size() {
    return this.kept.length;
  }

  apply(entry: NearEntry): NearDecision[] {
    const day = Math.floor(entry.now / DAY);
    if (day > this.lastDay) {
      this.lastDay = day;
      let k = 0;
      while (k < this.kept.length && this.kept[k]!.day < day - 2) k++;
      const gone = new Set(this.kept.slice(0, k));
      this.stats.dropped += k;
      this.kept = this.kept.slice(k);
      for (const [name, list] of this.buckets) this.buckets.set(name, list.filter((x) => !gone.has(x)));
    }
    return entry.items.map((it) => {
      const known = this.kept.find((x) => x.id === it.id);
      if (known) {
        this.stats.repeated++;
        return known.decision;
      }
      const valid = /^[0-9a-f]{256}$/i.test(it.signature);
      if (!valid) this.stats.noSignature++;
      const bands = valid ? (it.bands ?? bandKeys(decodeSignature(it.signature))).slice(0, 16) : [];
      const seen = new Set<object>();
      let compared = 0;
      let best: ModelItem | null = null;
      let bestEq = -1;
      for (const name of bands) {
        const all = [...(this.buckets.get(name) ?? [])].reverse();
        if (all.length > 16) this.stats.bucketCut++;
        const newest = all.slice(0, 16);
        for (const m of newest) {
          if (compared >= 64) {
            this.stats.candidateCap++;
            break;
          }
          if (seen.has(m)) continue;
          if (m.day < day - 1) {
            this.stats.oldDay++;
            continue;
          }
          seen.add(m);
          compared++;
          if (m.feed === entry.feedId) {
            this.stats.sameFeed++;
            continue;
          }
          let eq = 0;
          for (let r = 0; r < 32; r++) if (it.signature.slice(8 * r, 8 * r + 8) === m.signature.slice(8 * r, 8 * r + 8)) eq++;
          if (eq >= entry.need && eq === bestEq) this.stats.tie++;
          if (eq >= entry.need && eq > bestEq) {
            best = m;
            bestEq = eq;
          }
        }
      }
      const decision: NearDecision = best ? { merged: true, storyId: best.decision.merged ? best.decision.storyId : best.id, equalRows: bestEq } : { merged: false };
      const x = { id: it.id, feed: entry.feedId, day, signature: it.signature, decision, bands: best ? [] : bands };
      this.kept.push(x);
      for (const name of x.bands) this.buckets.set(name, [...(this.buckets.get(name) ?? []), x]);
      return decision;
    });
  }
}

describe('NearIndex (pure, no Redis)', () => {
  it('is deterministic and keeps its rules: two indexes, one fed the entries as appended and one as decoded from the log, decide 600 random entries alike, and as the plain model does', () => {
    const entries = randomEntries(20270310, 600);
    const a = new NearIndex();
    const b = new NearIndex();
    const model = new ModelIndex();
    const fromA = entries.map((e) => a.apply(e));
    const fromB = entries.map((e) => b.apply(decodeEntry(encodeEntry(e))));
    const fromModel = entries.map((e) => model.apply(e));
    expect(fromB).toEqual(fromA);
    // First difference, if any, with its entry: easier to read than two long lists.
    const diff = fromA.findIndex((d, i) => JSON.stringify(d) !== JSON.stringify(fromModel[i]));
    expect(diff === -1 ? null : { entry: diff, index: fromA[diff], model: fromModel[diff] }).toBeNull();
    expect(a.size).toBe(model.size);
    // The entries exercise what they are meant to: merges and registrations, repeated ids, dropped days, and
    // every rule of the candidates (counted by the model).
    const all = fromA.flat();
    expect(all.filter((d) => d.merged).length).toBeGreaterThan(250);
    expect(all.filter((d) => !d.merged).length).toBeGreaterThan(800);
    expect(model.stats.repeated).toBeGreaterThan(50);
    expect(model.stats.dropped).toBeGreaterThan(1000);
    for (const rule of ['bucketCut', 'candidateCap', 'oldDay', 'sameFeed', 'tie', 'noSignature'] as const) expect(model.stats[rule], rule).toBeGreaterThan(5);
  });

  it('an item finds an item of the day before (UTC days), not one of two days before, and one of a clock a day ahead', () => {
    const day0 = Math.floor(T0 / DAY) * DAY;
    const sig = rows(null);
    const pair = (at: number, laterAt: number) => {
      const index = new NearIndex();
      index.apply({ feedId: 'first', now: at, need: NEED, items: [item('first-x', sig, bucketsFor('first-x', 'window'))] });
      return index.apply({ feedId: 'second', now: laterAt, need: NEED, items: [item('second-x', sig, bucketsFor('second-x', 'window'))] })[0];
    };
    // Almost 48 hours apart, but on consecutive days: found.
    expect(pair(day0, day0 + 2 * DAY - 1)).toEqual(mergedInto('first-x', 32));
    // Just over 24 hours apart, but two days apart: not found.
    expect(pair(day0 + DAY - 1, day0 + 2 * DAY)).toEqual(registered);
    expect(pair(day0, day0 + 2 * DAY)).toEqual(registered);
    // Same day; and an item appended first by a poller whose clock is a day ahead.
    expect(pair(day0, day0 + 5)).toEqual(mergedInto('first-x', 32));
    expect(pair(day0 + DAY, day0)).toEqual(mergedInto('first-x', 32));
  });

  it('compares 64 candidates at most, from its buckets in order: a look-alike behind 64 others is not found, behind 63 it is', () => {
    const sig = rows(null);
    /** Buckets 0:fill..3:fill holding `fill` unrelated items each (of other feeds), then the look-alike's bucket. */
    const decide = (fill: number[], bands: string[]) => {
      const index = new NearIndex();
      index.apply({ feedId: 'target', now: T0, need: NEED, items: [item('target', sig, ['4:t'])] });
      fill.forEach((n, b) => {
        for (let i = 0; i < n; i++) index.apply({ feedId: `fill${i % 5}`, now: T0, need: NEED, items: [item(`fill-${b}-${i}`, rows(null), [`${b}:fill`])] });
      });
      return index.apply({ feedId: 'probe', now: T0, need: NEED, items: [item('probe', sig, bands)] })[0];
    };
    const fillFirst = ['0:fill', '1:fill', '2:fill', '3:fill', '4:t'];
    expect(decide([16, 16, 16, 16], fillFirst)).toEqual(registered);
    expect(decide([16, 16, 16, 15], fillFirst)).toEqual(mergedInto('target', 32));
    // The same buckets, the look-alike's own first.
    expect(decide([16, 16, 16, 16], ['4:t', '0:fill', '1:fill', '2:fill', '3:fill'])).toEqual(mergedInto('target', 32));
  });

  describe('after it drops old days', () => {
    const day0 = Math.floor(T0 / DAY) * DAY;
    const old = Array.from({ length: 10 }, () => rows(null));
    const kept = Array.from({ length: 20 }, () => rows(null));
    const copyOf7 = rows(kept[7]!, 21);
    const keptBands = (i: number) => bucketsFor(`kept-${i}`, 'big');
    /**
     * Day 0: ten items in bucket "0:big". Day 2: twenty more items in it (36 in all) from several feeds, and a
     * copy of one of them merged into it. Day 3: an unrelated item, whose entry drops day 0.
     */
    const build = () => {
      const index = new NearIndex();
      old.forEach((r, i) => index.apply({ feedId: `old${i % 3}`, now: day0 + i, need: NEED, items: [item(`old-${i}`, r, bucketsFor(`old-${i}`, 'big'))] }));
      kept.forEach((r, i) => expect(index.apply({ feedId: `kept${i % 3}`, now: day0 + 2 * DAY + i, need: NEED, items: [item(`kept-${i}`, r, keptBands(i))] })).toEqual([registered]));
      expect(index.apply({ feedId: 'copy', now: day0 + 2 * DAY + 100, need: NEED, items: [item('copy-7', copyOf7, bucketsFor('copy-7', 'big'))] })).toEqual([mergedInto('kept-7', 21)]);
      expect(index.size).toBe(31);
      expect(index.apply({ feedId: 'tick', now: day0 + 3 * DAY, need: NEED, items: [item('tick', rows(null), bucketsFor('tick', 'tick'))] })).toEqual([registered]);
      // Day 0's ten items are gone.
      expect(index.size).toBe(22);
      return index;
    };
    const probe = (index: NearIndex, id: string, r: readonly number[], bands: string[]) =>
      index.apply({ feedId: 'probe', now: day0 + 3 * DAY + 1000, need: NEED, items: [item(id, r, bands)] })[0];

    it('every kept item is still found through each of its buckets', () => {
      const index = build();
      for (let i = 0; i < 20; i++) {
        for (let b = 1; b < 16; b++) expect(probe(index, `probe-${i}-${b}`, kept[i]!, [keptBands(i)[b]!])).toEqual(mergedInto(`kept-${i}`, 32));
      }
    });

    it('a bucket that held 36 items keeps its 16 newest live ones as candidates, in order, and new items join it', () => {
      // Through "0:big" alone: the newest (kept-19) down to the 16th newest (kept-4) are found.
      for (const i of [19, 10, 4]) expect(probe(build(), `probe-${i}`, kept[i]!, ['0:big'])).toEqual(mergedInto(`kept-${i}`, 32));
      // The 17th newest is not (it is still found through its own buckets).
      expect(probe(build(), 'probe-3', kept[3]!, ['0:big'])).toEqual(registered);
      expect(probe(build(), 'probe-3b', kept[3]!, keptBands(3))).toEqual(mergedInto('kept-3', 32));
      // A new item in the bucket pushes kept-4 out of its 16 newest.
      const index = build();
      expect(probe(index, 'new-big', rows(null), ['0:big'])).toEqual(registered);
      expect(probe(index, 'probe-5', kept[5]!, ['0:big'])).toEqual(mergedInto('kept-5', 32));
      expect(probe(index, 'probe-4', kept[4]!, ['0:big'])).toEqual(registered);
    });

    it('kept items repeat their decisions when run again: registered ones stay registered, a merged one joins the same story', () => {
      const index = build();
      const again = index.apply({ feedId: 'kept1', now: day0 + 3 * DAY + 2000, need: NEED, items: [item('kept-7', kept[7]!, keptBands(7)), item('kept-10', kept[10]!, keptBands(10))] });
      expect(again).toEqual([registered, registered]);
      expect(index.apply({ feedId: 'copy', now: day0 + 3 * DAY + 2000, need: NEED, items: [item('copy-7', copyOf7, bucketsFor('copy-7', 'big'))] })).toEqual([mergedInto('kept-7', 21)]);
      // A look-alike of the merged copy is compared with the story it joined.
      expect(probe(index, 'probe-copy', copyOf7, bucketsFor('probe-copy', 'big'))).toEqual(mergedInto('kept-7', 21));
      expect(index.size).toBe(23);
    });
  });

  // Two buckets of one item, both new to the index, must each get a chain of their own: when the slots of all of
  // an item's buckets were found before any was claimed, two whose probes ended on the same empty slot shared
  // it, and nothing found the item through the second (about 1 item in 100 with real band keys).
  it('every registered item is found through each of its 16 buckets (real MinHash band keys)', () => {
    const index = new NearIndex();
    const sigs = Array.from({ length: 1000 }, (_, i) => minhashSignature(Array.from({ length: 30 }, (_, w) => `word${w}story${i}`).join(' '), ''));
    sigs.forEach((s, i) => index.apply({ feedId: 'origin', now: T0, need: NEED, items: [{ id: `origin-${i}`, signature: encodeSignature(s), bands: bandKeys(s) }] }));
    const missed: string[] = [];
    sigs.forEach((s, i) => {
      for (const band of bandKeys(s)) {
        const [d] = index.apply({ feedId: 'probe', now: T0, need: NEED, items: [{ id: `probe-${i}-${band}`, signature: encodeSignature(s), bands: [band] }] });
        if (!d?.merged) missed.push(`origin-${i} via ${band}`);
      }
    });
    expect(missed).toEqual([]);
  });

  // Herald appends items without bucket names (sixteen strings per item cost more than its MinHash): the index
  // derives the buckets from the signature. Both ways must find the same items, or pollers replaying entries
  // appended before the change would decide differently from those deciding new ones.
  it('an item appended without bucket names is found through each of its signature\'s 16 bands, named or not', () => {
    const index = new NearIndex();
    const sigs = Array.from({ length: 500 }, (_, i) => minhashSignature(Array.from({ length: 30 }, (_, w) => `word${w}story${i}`).join(' '), ''));
    index.apply({ feedId: 'origin', now: T0, need: NEED, items: sigs.map((s, i) => ({ id: `origin-${i}`, signature: encodeSignature(s) })) });
    const missed: string[] = [];
    sigs.forEach((s, i) => {
      for (const band of bandKeys(s)) {
        const [d] = index.apply({ feedId: 'probe', now: T0, need: NEED, items: [{ id: `probe-${i}-${band}`, signature: encodeSignature(s), bands: [band] }] });
        if (!(d?.merged && d.storyId === `origin-${i}`)) missed.push(`origin-${i} via ${band}`);
      }
      const [d] = decodeEntry(encodeEntry({ feedId: 'probe', now: T0, need: NEED, items: [{ id: `probe-${i}`, signature: encodeSignature(s) }] })).items.map((it) => index.apply({ feedId: 'probe', now: T0, need: NEED, items: [it] })[0]);
      if (!(d?.merged && d.storyId === `origin-${i}`)) missed.push(`origin-${i} via its unnamed bands, decoded from the log`);
    });
    expect(missed).toEqual([]);
    // A different story shares no band: found through nothing.
    const other = minhashSignature('an unrelated story about a harbour strike in another town', '');
    expect(index.apply({ feedId: 'probe', now: T0, need: NEED, items: [{ id: 'other', signature: encodeSignature(other) }] })).toEqual([registered]);
  });

  it('text without a word appended without bucket names is in no bucket: two such items never merge', () => {
    const index = new NearIndex();
    const empty = encodeSignature(minhashSignature('📷', ''));
    expect(index.apply({ feedId: 'a', now: T0, need: NEED, items: [{ id: 'a-photo', signature: empty }] })).toEqual([registered]);
    expect(index.apply({ feedId: 'b', now: T0, need: NEED, items: [{ id: 'b-photo', signature: empty }] })).toEqual([registered]);
  });

  // The same bug makes pollers disagree: whether two buckets collide depends on what the table held before, so
  // a poller started later (whose log no longer has the oldest entries) decides an entry differently from one
  // that has run for days. `it.fails`: passes while the bug is there.
  // Whether an item's buckets collided in the table used to depend on what it held before, so a poller started
  // later (whose log no longer has the oldest entries) could decide an entry differently from one that had run
  // for days. 3,000 items of 16 buckets each, so that some of an item's buckets meet in the table's probes.
  it('a poller that replays only the last days decides like one that saw the older entries too', () => {
    const day0 = Math.floor(T0 / DAY) * DAY;
    const ITEMS = 3000;
    const sigs = Array.from({ length: ITEMS }, () => rows(null));
    const buckets = (i: number) => Array.from({ length: 16 }, (_, b) => `${b}:i${i}`);
    const log: NearEntry[] = [
      // Day 0: unrelated items in the first bucket of each later item (trimmed from the log three days later).
      { feedId: 'unrelated', now: day0, need: NEED, items: sigs.map((_, i) => item(`unrelated-${i}`, rows(null), [buckets(i)[0]!])) },
      // Day 2: items in 16 buckets each.
      { feedId: 'a', now: day0 + 2 * DAY, need: NEED, items: sigs.map((sig, i) => item(`a-${i}`, sig, buckets(i))) },
      // Day 3: copies of each, one per bucket.
      ...Array.from({ length: 16 }, (_, b): NearEntry => ({ feedId: 'b', now: day0 + 3 * DAY, need: NEED, items: sigs.map((sig, i) => item(`b-${i}-${b}`, sig, [buckets(i)[b]!])) })),
    ];
    const running = new NearIndex();
    const started = new NearIndex();
    const byRunning = log.map((e) => running.apply(e)).slice(2);
    const byStarted = log.slice(1).map((e) => started.apply(e)).slice(1);
    const expected = Array.from({ length: 16 }, () => sigs.map((_, i) => mergedInto(`a-${i}`, 32)));
    expect(byRunning).toEqual(expected);
    expect(byStarted).toEqual(expected);
  });
});
