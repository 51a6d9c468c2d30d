// Where a story's claims (its link in the link index, its near-duplicate registration) and its record part:
// the claims are written by one command, the record by a later one. Candidates are built by hand, as in
// tests/ingest/near-duplicate-buckets.test.ts, so each test decides what an item can find.
import { describe, expect, it } from 'vitest';
import { encodeSignature } from '../../src/ingest/near-duplicate.ts';
import type { Story } from '../../src/model.ts';
import { BATCH_HOOK, type BatchHook, type RedisClient } from '../../src/store/redis.ts';
import { createStoryStore, type IngestCandidate, type IngestOutcome } from '../../src/store/stories.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';

const { redis, prefix } = isolatedRedis('story-claims');
const stories = createStoryStore(redis, prefix);
const DAY = 86_400_000;
/** The 30-day generations of the seen and link indexes (SEEN_GEN_MS in stories.ts). */
const GEN = 30 * DAY;
const rollover = Math.ceil(Date.UTC(2027, 2, 10) / GEN) * GEN;

let seq = 0;
const uniqueRows = () => Array.from({ length: 32 }, (_, r) => 0x10000 + seq++ * 32 + r);

function candidate(feedId: string, n: string, opts: { link?: string; rows?: number[]; buckets?: string[]; at: number }): IngestCandidate {
  const id = `${feedId}-${n}`;
  const url = opts.link ?? `https://${feedId}.example.test/${n}`;
  const story: Story = { id, feedId, guid: null, url, title: `Story ${id}`, summary: `Text of ${id}`, categories: [], publishedAt: opts.at, firstSeenAt: opts.at };
  const rows = opts.rows ?? uniqueRows();
  return {
    id, feedId, guid: null, url, canonicalUrl: opts.link ?? null, contentHash: `h-${id}`,
    story: () => story,
    fingerprint: () => ({ signature: encodeSignature(Uint32Array.from(rows)), bands: opts.buckets ?? Array.from({ length: 16 }, (_, b) => `${b}:own-${id}`) }),
  };
}
const ingestWith = async (store: ReturnType<typeof createStoryStore>, c: IngestCandidate, at: number): Promise<IngestOutcome> =>
  (await store.ingestBatch([c], { threshold: 0.5, now: at }))[0]!;

/** A story store whose poller dies after its claims and before its records: every write of a new record fails. */
function dyingStore() {
  const dying = new Proxy(redis, {
    get(target, p) {
      if (p === BATCH_HOOK) {
        return (async (cmds, send) => {
          if (cmds.some(([name]) => name.startsWith('heraldCreateStories'))) throw new Error('poller killed before its stories were written');
          return send(cmds);
        }) satisfies BatchHook;
      }
      const v = Reflect.get(target, p, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as RedisClient;
  return createStoryStore(dying, prefix);
}

describe('link claims across a 30-day generation rollover', () => {
  it('an item just after the rollover finds the story that claimed its link just before it', async () => {
    const link = 'https://wire.example.test/rollover-same-clock';
    const first = await ingestWith(stories, candidate('early', 'a', { link, at: rollover - 1000 }), rollover - 1000);
    expect(first).toEqual({ outcome: 'created', id: 'early-a' });
    // CLAIM reads the previous generation first: the new generation does not give the link a second owner.
    expect(await ingestWith(stories, candidate('late', 'a', { link, at: rollover + 1000 }), rollover + 1000)).toEqual({ outcome: 'merged', id: 'early-a', similarity: 1 });
    expect(await stories.idForCanonicalUrl(link, rollover + 1000)).toBe('early-a');
  });

  // Two pollers whose clocks lie on both sides of the rollover. The one ahead claims the link in the new
  // generation; the one behind, a second later by real time, read only its own current generation and the one
  // before, and claimed the link again: two stories for one article. CLAIM now also reads the next generation in
  // the last minutes of one, as NEAR does with NEAR_MIDNIGHT_MS.
  it('pollers with clocks a second apart across the rollover make one story of one link', async () => {
    const link = 'https://wire.example.test/rollover-skewed-clocks';
    expect(await ingestWith(stories, candidate('ahead', 'b', { link, at: rollover + 1000 }), rollover + 1000)).toEqual({ outcome: 'created', id: 'ahead-b' });
    expect(await ingestWith(stories, candidate('behind', 'b', { link, at: rollover - 1000 }), rollover - 1000)).toEqual({ outcome: 'merged', id: 'ahead-b', similarity: 1 });
  });
});

describe('a merge into a story whose record was never written', () => {
  const at = Date.UTC(2027, 2, 10, 12);

  // The near-duplicate registration (NEAR) and the link claim (CLAIM) of a new item are written before its record
  // (heraldCreateStories, the next round trip). A poller that died in between left an id that other feeds' items
  // merged into although no story of that id existed: they were never classified nor sent, for good when the dead
  // poller's feed was never fetched again with the item (removed, paused, the item gone from it). Now an item that
  // joins a story with no record is left out of its feed's seen index (its next fetch decides it again, a record
  // in flight lands meanwhile), and a join a minute after the first that still finds no record writes the story
  // from the joining item and hands it to classification.
  const orphanedJoin = async (how: 'near' | 'link') => {
    const rows = uniqueRows();
    const buckets = Array.from({ length: 16 }, (_, b) => `${b}:crash-${how}`);
    const link = `https://wire.example.test/crash-${how}`;
    const item = (feed: string) => candidate(feed, how, how === 'near' ? { rows, buckets, at } : { link, at });
    await expect(ingestWith(dyingStore(), item('dead'), at)).rejects.toThrow(/poller killed/);
    const handed: string[][] = [];
    const ingest = async (when: number) => (await stories.ingestBatch([item('live')], { threshold: 0.5, now: when, handOver: async (ids) => void handed.push(ids) }))[0]!;
    // First join: no record yet (it may be in flight), the source is kept and nothing is handed over.
    expect(await ingest(at)).toMatchObject({ outcome: 'merged', id: `dead-${how}` });
    expect(await stories.get(`dead-${how}`)).toBeNull();
    // Within the minute: still waiting, and still not taken for a known item.
    expect(await ingest(at + 30_000)).toMatchObject({ outcome: 'merged', id: `dead-${how}` });
    expect(handed).toEqual([]);
    // A fetch later: the story is written from the live feed's item and classified.
    expect(await ingest(at + 300_000)).toEqual({ outcome: 'created', id: `dead-${how}` });
    expect(handed).toEqual([[`dead-${how}`]]);
    const story = await stories.get(`dead-${how}`);
    expect(story).toMatchObject({ id: `dead-${how}`, feedId: 'live', title: 'Story live-' + how });
    expect(story?.sources?.map((s) => s.feedId)).toEqual(['live']);
    // From then on, a known item.
    expect(await ingest(at + 600_000)).toEqual({ outcome: 'duplicate', id: `dead-${how}` });
    expect(handed).toHaveLength(1);
  };

  it('an item merged as a near-duplicate into a story never written ends on a story that exists, classified once', async () => {
    await orphanedJoin('near');
  });

  it('an item merged by its link into a story never written ends on a story that exists, classified once', async () => {
    await orphanedJoin('link');
  });

  it('the dead poller\'s feed, fetched again, writes the record, with the merged feed among its sources', async () => {
    const rows = uniqueRows();
    const buckets = Array.from({ length: 16 }, (_, b) => `${b}:crash-mend`);
    await expect(ingestWith(dyingStore(), candidate('dead', 'mend', { rows, buckets, at }), at)).rejects.toThrow(/poller killed/);
    expect(await ingestWith(stories, candidate('live', 'mend', { rows, buckets, at }), at)).toMatchObject({ outcome: 'merged', id: 'dead-mend' });
    // The item is not in its feed's seen index (written last), so the re-run decides it again: its own
    // registration answers "created" and the record is written.
    expect(await ingestWith(stories, candidate('dead', 'mend', { rows, buckets, at }), at + 60_000)).toEqual({ outcome: 'created', id: 'dead-mend' });
    expect((await stories.get('dead-mend'))?.sources?.map((s) => s.feedId).sort()).toEqual(['dead', 'live']);
    // The live feed's item, left unseen while the story was missing, now joins it and is known.
    expect(await ingestWith(stories, candidate('live', 'mend', { rows, buckets, at }), at + 120_000)).toMatchObject({ outcome: 'merged', id: 'dead-mend' });
    expect(await ingestWith(stories, candidate('live', 'mend', { rows, buckets, at }), at + 180_000)).toEqual({ outcome: 'duplicate', id: 'dead-mend' });
  });
});

describe('a big first fetch: the writes of many new items are shared by a few script calls', () => {
  it('600 new items (more than one call of each kind holds) each get their own record and link, found by later items and fetches', async () => {
    const at = Date.UTC(2027, 4, 2, 9);
    const n = 600;
    const bulk = Array.from({ length: n }, (_, k) => candidate('bulk', `${k}`, { link: `https://bulk.example.test/a/${k}`, at }));
    // Three of them already have records (written by a poller that died before recording them as seen): those
    // are left as they are and reported as known, wherever they fall among the calls.
    const known = [10, 75, 560];
    for (const k of known) await stories.put({ ...(bulk[k]!.story() as Story), title: `Imported ${k}` });
    const first = await stories.ingestBatch(bulk, { threshold: 0.5, now: at });
    expect(first.map((o) => o.outcome)).toEqual(bulk.map((_, k) => (known.includes(k) ? 'duplicate' : 'created')));
    expect(first.map((o) => ('id' in o ? o.id : null))).toEqual(bulk.map((c) => c.id));
    const records = await stories.getMany(bulk.map((c) => c.id));
    expect(records.map((s) => s.title)).toEqual(bulk.map((c, k) => (known.includes(k) ? `Imported ${k}` : `Story ${c.id}`)));
    for (const k of [0, 49, 50, 499, 500, 599]) expect(await stories.idForCanonicalUrl(`https://bulk.example.test/a/${k}`, at)).toBe(`bulk-${k}`);
    // Another feed's items with links of the first and the last call join those stories.
    const other = [3, 577].map((k) => candidate('other', `${k}`, { link: `https://bulk.example.test/a/${k}`, at: at + 1000 }));
    expect(await stories.ingestBatch(other, { threshold: 0.5, now: at + 1000 })).toEqual([
      { outcome: 'merged', id: 'bulk-3', similarity: 1 },
      { outcome: 'merged', id: 'bulk-577', similarity: 1 },
    ]);
    expect((await stories.get('bulk-577'))!.sources!.map((s) => s.feedId).sort()).toEqual(['bulk', 'other']);
    const again = await stories.ingestBatch(bulk, { threshold: 0.5, now: at + 2000 });
    expect(again.map((o) => o.outcome)).toEqual(Array(n).fill('duplicate'));
  });
});
