// The cross-feed near-duplicate decision, through the story store's own ingest. Candidates are
// built by hand: each test picks the signature rows and the LSH buckets of every item, so it decides which
// earlier stories an item can find and how alike they are.
import { describe, expect, it } from 'vitest';
import { bandKeys, encodeSignature, estimateSimilarity, minhashSignature, NEAR_DUPLICATE_THRESHOLD } from '../../src/ingest/near-duplicate.ts';
import { createStoryStore, type IngestCandidate, type IngestOutcome } from '../../src/store/stories.ts';
import { handBuiltCandidate } from '../helpers/ingest-candidates.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';

const { redis, prefix } = isolatedRedis('nd-buckets');
const stories = createStoryStore(redis, prefix);
const DAY = 86_400_000;
const now = Date.UTC(2027, 2, 10, 12);

let seq = 0;
/** 32 signature rows: those of `like` where `equal` says so, unique values elsewhere. */
function rows(like: number[] | null, equal = 32): number[] {
  return Array.from({ length: 32 }, (_, r) => (like && r < equal ? like[r]! : 0x10000 + seq++ * 32 + r));
}
/** 16 buckets: `shared` for the first `sharedBands` bands, buckets of the item's own elsewhere. */
const bucketsFor = (id: string, shared: string, sharedBands = 1) => Array.from({ length: 16 }, (_, b) => (b < sharedBands ? `${b}:${shared}` : `${b}:own-${id}`));

const candidate = (feedId: string, n: string, sig: number[], buckets: (id: string) => string[]): IngestCandidate =>
  handBuiltCandidate(feedId, n, sig, buckets(`${feedId}-${n}`), now);

const ingest = async (c: IngestCandidate, at = now): Promise<IngestOutcome> => (await stories.ingestBatch([c], { threshold: 0.5, now: at }))[0]!;

describe('cross-feed near-duplicate decision', () => {
  it('five feeds carrying one event, ingested at the same instant, make one story with five sources', async () => {
    const event = rows(null);
    const feeds = ['wire', 'paper', 'radio', 'portal', 'blog'];
    const out = await Promise.all(feeds.map((f) => ingest(candidate(f, 'quake', event, () => Array.from({ length: 16 }, (_, b) => `${b}:quake`)))));
    const created = out.filter((o) => o.outcome === 'created');
    expect(created).toHaveLength(1);
    const storyId = (created[0] as { id: string }).id;
    expect(out.filter((o) => o.outcome === 'merged').map((o) => (o as { id: string }).id)).toEqual([storyId, storyId, storyId, storyId]);
    expect((await stories.get(storyId))?.sources?.map((s) => s.feedId).sort()).toEqual([...feeds].sort());
  });

  it('merges at the threshold (16 of 32 rows equal, similarity 0.5) and not below it', async () => {
    const base = rows(null);
    await ingest(candidate('origin', 't', base, (id) => bucketsFor(id, 'threshold')));
    expect(await ingest(candidate('near', 't', rows(base, 16), (id) => bucketsFor(id, 'threshold')))).toEqual({ outcome: 'merged', id: 'origin-t', similarity: 0.5 });
    expect(await ingest(candidate('far', 't', rows(base, 15), (id) => bucketsFor(id, 'threshold')))).toEqual({ outcome: 'created', id: 'far-t' });
  });

  it('on real MinHash signatures, merges exactly when a band is shared and estimateSimilarity reaches the threshold', async () => {
    const outcomes = new Set<string>();
    for (let k = 0; k <= 24; k += 2) {
      // A text of its own per pair (words tagged with k), and a copy with k of its 40 words replaced.
      const words = Array.from({ length: 40 }, (_, w) => `w${w}k${k}`);
      const edited = words.map((w, i) => (i % 3 === 0 && i / 3 < k ? `x${i}k${k}` : w));
      const [a, b] = [minhashSignature(words.join(' '), ''), minhashSignature(edited.join(' '), '')];
      const real = (sig: Uint32Array) => () => ({ signature: encodeSignature(sig), bands: bandKeys(sig) });
      await ingest({ ...candidate(`ref${k}`, 'r', [], () => []), fingerprint: real(a) });
      const got = await ingest({ ...candidate(`copy${k}`, 'r', [], () => []), fingerprint: real(b) });
      const sharesBand = bandKeys(a).some((x) => bandKeys(b).includes(x));
      const similarity = estimateSimilarity(a, b);
      expect(got).toEqual(sharesBand && similarity >= NEAR_DUPLICATE_THRESHOLD ? { outcome: 'merged', id: `ref${k}-r`, similarity } : { outcome: 'created', id: `copy${k}-r` });
      outcomes.add(got.outcome);
    }
    // The edits span both sides of the threshold.
    expect([...outcomes].sort()).toEqual(['created', 'merged']);
  });

  it('a bucket keeps its 16 newest stories: an item like the oldest kept one merges, one like an older one does not', async () => {
    const sigs = Array.from({ length: 20 }, () => rows(null));
    for (let i = 0; i < 20; i++) expect((await ingest(candidate(`feed${i}`, 'a', sigs[i]!, (id) => bucketsFor(id, 'cap')))).outcome).toBe('created');
    expect(await ingest(candidate('late', 'a', sigs[4]!, (id) => bucketsFor(id, 'cap')))).toMatchObject({ outcome: 'merged', id: 'feed4-a' });
    expect(await ingest(candidate('late', 'b', sigs[3]!, (id) => bucketsFor(id, 'cap')))).toEqual({ outcome: 'created', id: 'late-b' });
  });

  it('an item never merges into a story of its own feed', async () => {
    const sig = rows(null);
    await ingest(candidate('own', '1', sig, (id) => bucketsFor(id, 'own-feed')));
    expect(await ingest(candidate('own', '2', sig, (id) => bucketsFor(id, 'own-feed')))).toEqual({ outcome: 'created', id: 'own-2' });
  });

  it('a merged item adds nothing to the buckets: a later look-alike of it is compared with the story it joined', async () => {
    const wire = rows(null);
    const paper = rows(wire, 20);
    await ingest(candidate('wire', 'm', wire, (id) => bucketsFor(id, 'merge')));
    expect(await ingest(candidate('paper', 'm', paper, (id) => bucketsFor(id, 'merge')))).toMatchObject({ outcome: 'merged', id: 'wire-m' });
    // Identical to the paper's item, which would be a 32-row match had it been registered.
    expect(await ingest(candidate('third', 'm', paper, (id) => bucketsFor(id, 'merge')))).toEqual({ outcome: 'merged', id: 'wire-m', similarity: 20 / 32 });
  });

  it('items of one document sharing a bucket all stay findable', async () => {
    const sigs = [rows(null), rows(null), rows(null)];
    const out = await stories.ingestBatch(sigs.map((s, k) => candidate('batch', String(k), s, (id) => bucketsFor(id, 'same-doc'))), { threshold: 0.5, now });
    expect(out.map((o) => o.outcome)).toEqual(['created', 'created', 'created']);
    for (let k = 0; k < 3; k++) expect(await ingest(candidate('reader', String(k), sigs[k]!, (id) => bucketsFor(id, 'same-doc')))).toMatchObject({ outcome: 'merged', id: `batch-${k}` });
  });

  it('a document of 120 new items is decided in several script calls, in order, each item once', async () => {
    const early = rows(null);
    await ingest(candidate('early', 'e', early, (id) => bucketsFor(id, 'long-last')));
    const sigs = Array.from({ length: 120 }, (_, k) => (k === 119 ? early : rows(null)));
    const out = await stories.ingestBatch(sigs.map((s, k) => candidate('long', String(k), s, (id) => bucketsFor(id, k === 119 ? 'long-last' : 'long'))), { threshold: 0.5, now });
    expect(out.slice(0, 119).every((o) => o.outcome === 'created')).toBe(true);
    expect(out[119]).toMatchObject({ outcome: 'merged', id: 'early-e' });
    // Items of every call were registered: a look-alike with the same buckets finds each (the shared bucket
    // itself keeps only the newest 16).
    for (const k of [0, 24, 25, 49, 50, 99, 100, 118]) {
      expect(await ingest(candidate('reader', `l${k}`, sigs[k]!, () => bucketsFor(`long-${k}`, 'long')))).toMatchObject({ outcome: 'merged', id: `long-${k}` });
    }
  });

  it("yesterday's stories are found, older ones are not", async () => {
    const a = rows(null);
    const b = rows(null);
    await ingest(candidate('day0', 'x', a, (id) => bucketsFor(id, 'days-a')));
    await ingest(candidate('day0', 'y', b, (id) => bucketsFor(id, 'days-b')));
    expect(await ingest(candidate('day1', 'x', a, (id) => bucketsFor(id, 'days-a')), now + DAY)).toMatchObject({ outcome: 'merged', id: 'day0-x' });
    expect(await ingest(candidate('day2', 'y', b, (id) => bucketsFor(id, 'days-b')), now + 2 * DAY)).toEqual({ outcome: 'created', id: 'day2-y' });
  });

  it('two feeds at midnight, one poller clock just past it and deciding first, still make one story', async () => {
    const midnight = Date.UTC(2027, 2, 12);
    const sig = rows(null);
    expect(await ingest(candidate('after', 'n', sig, (id) => bucketsFor(id, 'midnight')), midnight + 100)).toEqual({ outcome: 'created', id: 'after-n' });
    expect(await ingest(candidate('before', 'n', sig, (id) => bucketsFor(id, 'midnight')), midnight - 100)).toMatchObject({ outcome: 'merged', id: 'after-n' });
  });

  it('an item decided as new stays new when its ingest runs again after a crash before the story was written', async () => {
    const sig = rows(null);
    const first = candidate('crashy', 'c', sig, (id) => bucketsFor(id, 'crash'));
    expect(await ingest(first)).toEqual({ outcome: 'created', id: 'crashy-c' });
    // What a crash right after the decision leaves: the item registered for near-duplicates, but no story
    // record and no trace in the feed's seen index.
    await redis.del(`${prefix}:{st:crashy-c}:story`, `${prefix}:{st:crashy-c}:sources`, ...(await redis.keys(`${prefix}:{f:crashy}:seen:*`)));
    // Meanwhile another feed carries the same event: it joins the registered story.
    expect(await ingest(candidate('other', 'c', sig, (id) => bucketsFor(id, 'crash')))).toMatchObject({ outcome: 'merged', id: 'crashy-c' });
    // The re-run creates the story (it does not merge into anything), and the other feed is among its sources.
    expect(await ingest(first)).toEqual({ outcome: 'created', id: 'crashy-c' });
    expect((await stories.get('crashy-c'))?.sources?.map((s) => s.feedId).sort()).toEqual(['crashy', 'other']);
  });
});
