import { describe, expect, it } from 'vitest';
import { bandKeys, encodeSignature, estimateSimilarity, jaccard, minhashSignature, NEAR_DUPLICATE_THRESHOLD } from '../../src/ingest/near-duplicate.ts';

type Text = { title: string; summary: string };
const wire: Text = {
  title: 'Earthquake of magnitude 6.1 strikes off the coast of Hokkaido, no tsunami warning issued',
  summary: 'A magnitude 6.1 earthquake struck off the coast of Hokkaido in northern Japan on Tuesday, the Japan Meteorological Agency said. No tsunami warning was issued and there were no immediate reports of damage.',
};

/**
 * The threshold is where these pairs separate. Copies of one wire story as outlets carry it (retitled, with
 * the agency's name appended, the summary cut short, punctuation changed) must land at or above it; different
 * events about the same place or topic, sharing many words, must land below it.
 */
const SAME_EVENT: [string, Text][] = [
  ['verbatim copy from another outlet', { ...wire }],
  ['headline suffix and trimmed summary', { title: `${wire.title} - Reuters`, summary: wire.summary.slice(0, 150) }],
  ['one headline word changed, "quake" for "earthquake"', { title: 'Quake of magnitude 6.1 strikes off the coast of Hokkaido, no tsunami warning issued', summary: wire.summary }],
  ['punctuation and case differences', { title: 'EARTHQUAKE OF MAGNITUDE 6.1 STRIKES OFF THE COAST OF HOKKAIDO; NO TSUNAMI WARNING ISSUED', summary: wire.summary.replace(/,/g, '') }],
  ['summary with a sentence added by the outlet', { title: wire.title, summary: `${wire.summary} More updates to follow.` }],
];
const DIFFERENT_EVENT: [string, Text][] = [
  ['another quake in Japan days later', {
    title: 'Magnitude 5.4 earthquake shakes Tokyo, trains briefly halted',
    summary: 'An earthquake of magnitude 5.4 shook Tokyo on Friday, briefly halting trains. The Japan Meteorological Agency said there was no danger of a tsunami.',
  }],
  ['same region, unrelated story', {
    title: 'Hokkaido snow festival opens with record number of sculptures',
    summary: 'The Sapporo Snow Festival in Hokkaido, northern Japan, opened on Tuesday with a record number of ice and snow sculptures.',
  }],
  ['follow-up on the same quake with new facts', {
    title: 'Hokkaido aftershocks continue as residents return home',
    summary: 'Dozens of aftershocks have followed Tuesday\'s earthquake off Hokkaido. Residents who spent the night in shelters began returning home on Wednesday.',
  }],
];

describe('cross-outlet near-duplicates (MinHash over character 5-grams)', () => {
  it.each(SAME_EVENT)('same event, %s: similarity ≥ threshold', (_name, other) => {
    expect(jaccard(wire, other)).toBeGreaterThanOrEqual(NEAR_DUPLICATE_THRESHOLD);
    expect(estimateSimilarity(minhashSignature(wire.title, wire.summary), minhashSignature(other.title, other.summary))).toBeGreaterThanOrEqual(NEAR_DUPLICATE_THRESHOLD);
  });

  it.each(DIFFERENT_EVENT)('different event, %s: similarity < threshold', (_name, other) => {
    expect(jaccard(wire, other)).toBeLessThan(NEAR_DUPLICATE_THRESHOLD);
    expect(estimateSimilarity(minhashSignature(wire.title, wire.summary), minhashSignature(other.title, other.summary))).toBeLessThan(NEAR_DUPLICATE_THRESHOLD);
  });

  it('near-duplicates share at least one LSH band, so the lookup finds them', () => {
    const a = new Set(bandKeys(minhashSignature(wire.title, wire.summary)));
    for (const [, other] of SAME_EVENT) {
      expect(bandKeys(minhashSignature(other.title, other.summary)).some((b) => a.has(b))).toBe(true);
    }
  });

  it('works for scripts without spaces between words', () => {
    const a = { title: '北海道沖でマグニチュード6.1の地震、津波の心配なし', summary: '気象庁によると、北海道沖で地震があった。' };
    const b = { title: '北海道沖でM6.1の地震 津波の心配なし', summary: '気象庁によると、北海道沖で地震があった。' };
    const c = { title: '東京で桜が開花、平年より早く', summary: '気象庁は東京で桜の開花を発表した。' };
    expect(jaccard(a, b)).toBeGreaterThanOrEqual(NEAR_DUPLICATE_THRESHOLD);
    expect(jaccard(a, c)).toBeLessThan(NEAR_DUPLICATE_THRESHOLD);
  });

  it('signatures are stored as 8 hex characters per row, one row per slice', () => {
    const sig = minhashSignature(wire.title, wire.summary);
    const other = minhashSignature(SAME_EVENT[1]![1].title, SAME_EVENT[1]![1].summary);
    const [a, b] = [encodeSignature(sig), encodeSignature(other)];
    expect(a).toMatch(/^[0-9a-f]{256}$/);
    // The store's decision compares rows as these slices: equal slices exactly where the rows are equal.
    for (let r = 0; r < 32; r++) expect(a.slice(8 * r, 8 * r + 8) === b.slice(8 * r, 8 * r + 8)).toBe(sig[r] === other[r]);
  });
});
