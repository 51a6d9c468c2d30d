import { encodeSignature } from '../../src/ingest/near-duplicate.ts';
import type { Story } from '../../src/model.ts';
import type { IngestCandidate } from '../../src/store/stories.ts';

/**
 * A feed item for the story store built by hand, id `<feedId>-<n>`: the test picks its 32 MinHash signature rows
 * and its LSH buckets, so it decides which earlier stories the item can find and how alike they are.
 */
export function handBuiltCandidate(feedId: string, n: string, rows: readonly number[], bands: readonly string[], at: number): IngestCandidate {
  const id = `${feedId}-${n}`;
  const story: Story = {
    id, feedId, guid: `g-${id}`, url: `https://${feedId}.example.test/${n}`, title: `Story ${id}`, summary: `Text of ${id}`,
    categories: [], publishedAt: at, firstSeenAt: at,
  };
  return {
    id, feedId, guid: story.guid, url: story.url, canonicalUrl: null, contentHash: `h-${id}`,
    story: () => story,
    fingerprint: () => ({ signature: encodeSignature(Uint32Array.from(rows)), bands: [...bands] }),
  };
}
