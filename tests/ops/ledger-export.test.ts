import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/store/redis.ts';
import { csvField, exportLedger, parseExportRange } from '../../src/ops/ledger-export.ts';
import { createLedger, LEDGER_DAY_SHARDS, type Ledger, type LedgerEntry } from '../../src/store/ledger.ts';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2027-02-01T00:00:00Z');

describe('ledger export formats', () => {
  it.each([
    [null, ''], [3, '3'], ['plain', 'plain'], ['a,b', '"a,b"'], ['say "hi"', '"say ""hi"""'], ['two\nlines', '"two\nlines"'],
    ['=HYPERLINK("x")', `"'=HYPERLINK(""x"")"`], ['-1', "'-1"],
  ] as const)('csvField(%j) = %j', (v, out) => {
    expect(csvField(v)).toBe(out);
  });

  it.each([
    [{}, { from: T0 - DAY, to: T0, format: 'csv' }],
    [{ from: '2027-01-30', to: '2027-01-31', format: 'json' }, { from: Date.parse('2027-01-30'), to: Date.parse('2027-01-31'), format: 'json' }],
    [{ format: 'xml' }, { error: 'format must be csv or json, not "xml"' }],
    [{ from: 'soon' }, { error: '"from" is not a date or time between 2000 and 9999: soon' }],
    // The earliest time JavaScript knows: the default "from", a day before, is no date at all (it threw: 500).
    [{ to: '-271821-04-20T00:00:00Z' }, { error: '"to" is not a date or time between 2000 and 9999: -271821-04-20T00:00:00Z' }],
    [{ to: '2000-01-01T12:00:00Z' }, { error: '"from" is not a date or time between 2000 and 9999: (a day before "to")' }],
    [{ from: '2027-02-01', to: '2027-01-01' }, { error: '"from" must be before "to"' }],
    [{ from: '2026-01-01', to: '2027-01-01' }, { error: 'a range of at most 35 days can be exported (the ledger\'s time index keeps that long)' }],
  ])('parseExportRange(%j)', (q, out) => {
    expect(parseExportRange(q, T0)).toEqual(out);
  });

  it('JSON is one array, valid with zero or many records', async () => {
    async function* none(): AsyncGenerator<LedgerEntry> {}
    const collect = async (g: AsyncIterable<string>) => {
      let s = '';
      for await (const c of g) s += c;
      return s;
    };
    expect(JSON.parse(await collect(exportLedger(none(), 'json')))).toEqual([]);
    expect(await collect(exportLedger(none(), 'csv'))).toBe('createdAt,updatedAt,subscriberId,storyId,channel,topicId,status,reason,attempts,reclaims,lastError,via,clickedAt\r\n');
  });
});

describe('ledger time index (real Redis)', () => {
  let redis: RedisClient;
  let ledger: Ledger;
  const prefix = uniquePrefix('ledger-index');

  beforeAll(async () => {
    redis = testRedis();
    ledger = createLedger(redis, prefix);
    // 40 readers over three days: claimed then sent, skipped without a claim, or held.
    for (let i = 0; i < 40; i++) {
      const at = T0 + (i % 3) * DAY + i * 1000;
      if (i % 4 === 0) await ledger.finish(`r${i}`, 'story', 'email', 'skipped', at, { reason: 'no-email', topicId: 'japan' });
      else if (i % 4 === 1) await ledger.hold(`r${i}`, 'story', 'japan', 'bundle', 'quiet-hours', at);
      else {
        await ledger.claim(`r${i}`, 'story', 'push', `job${i}`, 'japan', at, 30_000);
        await ledger.finish(`r${i}`, 'story', 'push', 'sent', at + 500);
      }
    }
  });
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it('finds every record created in the range once, reading in small batches', async () => {
    const all: LedgerEntry[] = [];
    for await (const e of ledger.between(T0, T0 + 3 * DAY, 3)) all.push(e);
    expect(all).toHaveLength(40);
    expect(new Set(all.map((e) => e.subscriberId)).size).toBe(40);
    expect(all.filter((e) => e.status === 'held')).toHaveLength(10);
    expect(all.find((e) => e.subscriberId === 'r2')).toMatchObject({ channel: 'push', status: 'sent', createdAt: T0 + 2 * DAY + 2000, updatedAt: T0 + 2 * DAY + 2500, attempts: 1 });
  });

  it('keeps to the range: one day only, and an hour inside it', async () => {
    const day1: LedgerEntry[] = [];
    for await (const e of ledger.between(T0 + DAY, T0 + 2 * DAY, 4)) day1.push(e);
    expect(day1.map((e) => Number(e.subscriberId.slice(1))).sort((a, b) => a - b)).toEqual([1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37]);
    const slice: LedgerEntry[] = [];
    for await (const e of ledger.between(T0 + DAY + 10_000, T0 + DAY + 20_000)) slice.push(e);
    expect(slice.map((e) => e.subscriberId).sort()).toEqual(['r10', 'r13', 'r16', 'r19']);
  });

  it('spreads a day over several index keys (Cluster slots)', async () => {
    const keys = await redis.keys(`${prefix}:ledger:*`);
    expect(new Set(keys.map((k) => k.split(':').pop())).size).toBeGreaterThan(1);
    expect(keys.length).toBeLessThanOrEqual(3 * LEDGER_DAY_SHARDS);
  });
});
