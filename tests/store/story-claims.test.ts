// Where a story's claims (its link in the link index, its near-duplicate registration) and its record part:
// the claims are written by one command, the record by a later one. Candidates are built by hand, as in
// tests/ingest/near-duplicate-buckets.test.ts, so each test decides what an item can find.
// Two tests here are `it.fails`: they show open problems (see each), and fail as soon as one is fixed.
import { describe, expect, it } from 'vitest';
import { encodeSignature } from '../../src/ingest/near-duplicate.ts';
import type { Story } from '../../src/model.ts';
import type { RedisClient } from '../../src/store/redis.ts';
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
      if (p === 'pipeline') {
        return (cmds: [string, ...unknown[]][]) => {
          if (cmds.some(([name]) => name === 'heraldCreateStory')) throw new Error('poller killed before its stories were written');
          return target.pipeline(cmds as never);
        };
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

  // Open: the near-duplicate registration (NEAR) and the link claim (CLAIM) of a new item are written before its
  // record (heraldCreateStory, the next round trip). A poller that dies in between leaves an id that other feeds'
  // items merge into although no story of that id exists: they are never classified nor sent. It mends itself
  // when the dead poller's feed is fetched again and still lists the item (below); when it never is (the feed
  // removed or paused, the item gone from it by then), the merged items are lost. Not mendable by checking the
  // target at merge time alone: a record still being written one round trip later looks the same. Fix sketch:
  // an item merged into an id with no record is left out of its feed's seen index, so its next fetch decides
  // it again, and one that finds its target still missing then (a poll interval later, long past any write in
  // flight) is created as a story of its own.
  it.fails('an item merged as a near-duplicate joins a story that exists', async () => {
    const rows = uniqueRows();
    const buckets = Array.from({ length: 16 }, (_, b) => `${b}:crash-near`);
    await expect(ingestWith(dyingStore(), candidate('dead', 'near', { rows, buckets, at }), at)).rejects.toThrow(/poller killed/);
    const merged = await ingestWith(stories, candidate('live', 'near', { rows, buckets, at }), at);
    expect(merged).toMatchObject({ outcome: 'merged', id: 'dead-near' });
    expect(await stories.get('dead-near')).not.toBeNull();
  });

  it.fails('an item merged by its link joins a story that exists', async () => {
    const link = 'https://wire.example.test/crash-link';
    await expect(ingestWith(dyingStore(), candidate('dead', 'link', { link, at }), at)).rejects.toThrow(/poller killed/);
    const merged = await ingestWith(stories, candidate('live', 'link', { link, at }), at);
    expect(merged).toMatchObject({ outcome: 'merged', id: 'dead-link' });
    expect(await stories.get('dead-link')).not.toBeNull();
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
  });
});
