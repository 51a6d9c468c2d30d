// The near-duplicate buckets in Redis, through the story store's own ingest: which earlier stories a new item
// is compared with. Candidates are built by hand so every story lands in the buckets the test names.
import { afterAll, describe, expect, it } from 'vitest';
import type { Story } from '../../src/model.ts';
import { createStoryStore, type IngestCandidate } from '../../src/store/stories.ts';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.ts';

const redis = testRedis();
const prefix = uniquePrefix('nd-buckets');
const stories = createStoryStore(redis, prefix);
const now = Date.UTC(2027, 2, 10, 12);

afterAll(async () => {
  await deletePrefix(redis, prefix);
  await redis.quit();
});

/** 16 band buckets: `shared` for band 0 (the one the test is about), and ones of the item's own elsewhere. */
const bandsFor = (id: string, shared: string) => Array.from({ length: 16 }, (_, b) => (b === 0 ? `0:${shared}` : `${b}:${id}`));

/** One item of one feed; its signature names it, so the similarity function sees whom it is compared with. */
function candidate(feedId: string, n: string, shared: string): IngestCandidate {
  const id = `${feedId}-${n}`;
  const story: Story = {
    id, feedId, guid: `g-${id}`, url: `https://${feedId}.example.test/${n}`, title: `Story ${id}`, summary: `Text of ${id}`,
    categories: [], publishedAt: now, firstSeenAt: now,
  };
  return {
    id, feedId, guid: story.guid, url: story.url, canonicalUrl: null, contentHash: `h-${id}`,
    story: () => story,
    fingerprint: () => ({ signature: `sig-${id}`, bands: bandsFor(id, shared) }),
  };
}

/** Ingests one item; returns the outcome and the stories it was compared with (by signature). */
async function ingest(c: IngestCandidate, sameAs: string | null = null) {
  const compared: string[] = [];
  const [outcome] = await stories.ingestBatch([c], {
    threshold: 0.5,
    now,
    similarity: (_mine, theirs) => {
      compared.push(theirs.replace(/^sig-/, ''));
      return theirs === `sig-${sameAs}` ? 1 : 0;
    },
  });
  return { outcome: outcome!, compared };
}

describe('near-duplicate buckets', () => {
  it('a new item is compared with the 16 newest stories of a shared bucket, each once', async () => {
    for (let i = 0; i < 20; i++) expect((await ingest(candidate(`feed${i}`, 'a', 'cap'))).outcome.outcome).toBe('created');
    const { outcome, compared } = await ingest(candidate('late', 'a', 'cap'));
    expect(outcome.outcome).toBe('created');
    // The 4 oldest fell out of the bucket; the rest are compared exactly once each.
    expect(compared.sort()).toEqual(Array.from({ length: 16 }, (_, i) => `feed${i + 4}-a`).sort());
  });

  it('a story found through its bucket is merged into, and the merged item adds nothing to the bucket', async () => {
    await ingest(candidate('wire', 'm', 'merge'));
    const merged = await ingest(candidate('paper', 'm', 'merge'), 'wire-m');
    expect(merged.outcome).toMatchObject({ outcome: 'merged', id: 'wire-m', similarity: 1 });
    const { compared } = await ingest(candidate('third', 'm', 'merge'));
    expect(compared).toEqual(['wire-m']);
    expect((await stories.get('wire-m'))?.sources?.map((s) => s.feedId).sort()).toEqual(['paper', 'wire']);
  });

  it('stories of one feed sharing a bucket in one document all stay findable', async () => {
    const cands = ['1', '2', '3'].map((n) => candidate('batch', n, 'same-doc'));
    const out = await stories.ingestBatch(cands, { threshold: 0.5, now, similarity: () => 0 });
    expect(out.map((o) => o.outcome)).toEqual(['created', 'created', 'created']);
    const { compared } = await ingest(candidate('reader', 'x', 'same-doc'));
    expect(compared.sort()).toEqual(['batch-1', 'batch-2', 'batch-3']);
  });
});
