// A story's sources: the feed that created it is the record itself (its feed and link); feeds merged in later are
// written beside it, each with its own link. What a reader sees is the list of outlets, creator first.
import { describe, expect, it } from 'vitest';
import { createStoryStore, sourcesKey, storyKey } from '../../src/store/stories.ts';
import { handBuiltCandidate } from '../helpers/ingest-candidates.ts';
import { isolatedRedis } from '../helpers/isolated-redis.ts';

const { redis, prefix } = isolatedRedis('story-sources');
const stories = createStoryStore(redis, prefix);
const T0 = Date.UTC(2027, 2, 10, 12);
const sourcesKeyOf = (id: string) => sourcesKey(prefix, id);
let seq = 0;
const rows = (like: readonly number[] | null = null, equal = 32) => Array.from({ length: 32 }, (_, r) => (like && r < equal ? like[r]! : 0x20000 + seq++ * 32 + r));
const buckets = (shared: string) => Array.from({ length: 16 }, (_, b) => (b === 0 ? `0:${shared}` : `${b}:own-${shared}-${seq++}`));

describe('story sources', () => {
  it('a story no other feed carries is its record alone (no sources key), and lists its feed with its link', async () => {
    const [out] = await stories.ingestBatch([handBuiltCandidate('wire', 'solo', rows(), buckets('solo'), T0)], { threshold: 0.5, now: T0 });
    expect(out).toEqual({ outcome: 'created', id: 'wire-solo' });
    expect(await redis.exists(storyKey(prefix, 'wire-solo'), sourcesKeyOf('wire-solo'))).toBe(1);
    expect((await stories.get('wire-solo'))?.sources).toEqual([{ feedId: 'wire', url: 'https://wire.example.test/solo' }]);
  });

  it('feeds merged in later follow the creating feed, each with its own link, and live as long as the story', async () => {
    const base = rows();
    await stories.ingestBatch([handBuiltCandidate('wire', 'quake', base, buckets('quake'), T0)], { threshold: 0.5, now: T0 });
    for (const feed of ['paper', 'radio']) {
      const [out] = await stories.ingestBatch([handBuiltCandidate(feed, 'quake', rows(base, 28), buckets('quake'), T0 + 1000)], { threshold: 0.5, now: T0 + 1000 });
      expect(out).toMatchObject({ outcome: 'merged', id: 'wire-quake' });
    }
    const [story] = await stories.getMany(['wire-quake']);
    expect(story?.sources).toEqual([
      { feedId: 'wire', url: 'https://wire.example.test/quake' },
      { feedId: 'paper', url: 'https://paper.example.test/quake' },
      { feedId: 'radio', url: 'https://radio.example.test/quake' },
    ]);
    expect(await redis.pttl(sourcesKeyOf('wire-quake'))).toBeGreaterThan(7 * 86_400_000);
  });

  it('a record written when the creating feed was also kept among the sources lists that feed once', async () => {
    const json = JSON.stringify({ guid: null, url: 'https://wire.example.test/old', title: 'Old story', summary: '', categories: [], publishedAt: T0, firstSeenAt: T0, language: null, author: null, image: null, updatedAt: null });
    await redis.hset(storyKey(prefix, 'wire-old'), 'id', 'wire-old', 'feedId', 'wire', 'contentHash', 'h', 'json', json);
    await redis.hset(sourcesKeyOf('wire-old'), 'wire', JSON.stringify({ url: 'https://wire.example.test/old', at: T0 }), 'paper', JSON.stringify({ url: 'https://paper.example.test/old', at: T0 }));
    expect((await stories.get('wire-old'))?.sources?.map((s) => s.feedId)).toEqual(['wire', 'paper']);
  });

  it('an imported story keeps the other outlets it names, for as long as the story', async () => {
    await stories.put({ id: 'import-1', feedId: 'wire', guid: null, url: 'https://wire.example.test/i1', title: 'Imported', summary: '', categories: [], publishedAt: T0, firstSeenAt: T0, sources: [{ feedId: 'wire', url: 'https://wire.example.test/i1' }, { feedId: 'paper', url: 'https://paper.example.test/i1' }] });
    expect((await stories.get('import-1'))?.sources?.map((s) => s.feedId)).toEqual(['wire', 'paper']);
    expect(await redis.pttl(sourcesKeyOf('import-1'))).toBeGreaterThan(7 * 86_400_000);
  });
});
