import { describe, expect, it } from 'vitest';
import { bandBucketHashes, bandKeys, bucketNameHash, encodeSignature, estimateSimilarity, jaccard, minhashSignature, NEAR_DUPLICATE_THRESHOLD } from '../../src/ingest/near-duplicate.ts';

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

  it('text without a word has no buckets: two unrelated wordless items are never near-duplicates', () => {
    expect(bandKeys(minhashSignature('📷', ''))).toEqual([]);
    expect(bandKeys(minhashSignature('🎥 ▶', '—'))).toEqual([]);
    expect(bandKeys(minhashSignature('Photo', ''))).toHaveLength(16);
  });

  it('bandBucketHashes gives each band\'s bucket name hash without making the names', () => {
    const sigs = [
      ...Array.from({ length: 300 }, (_, i) => minhashSignature(`${wire.title} ${i}`, `story ${i * 7919} ${wire.summary}`)),
      // Rows of every size, 0 and 2^32 - 1 included: base-36 names of one to seven digits.
      Uint32Array.from({ length: 32 }, (_, r) => (r % 4 === 0 ? 0 : r % 4 === 1 ? 0xfffffffe : r * 37)),
      minhashSignature('📷', ''),
    ];
    const out = new Int32Array(16);
    for (const sig of sigs) {
      // At an offset, as the index reads its signatures out of one table.
      const table = new Uint32Array(96);
      table.set(sig, 32);
      const n = bandBucketHashes(table, 32, out);
      expect([...out.subarray(0, n)]).toEqual(bandKeys(sig).map(bucketNameHash));
    }
    expect(bandBucketHashes(minhashSignature('📷', ''), 0, out)).toBe(0);
  });

  it('a bucket name is a band\'s only as bandKeys makes it; every other name is a bucket of its own', () => {
    const names = new Set<string>();
    for (let i = 0; i < 300; i++) for (const name of bandKeys(minhashSignature(`${wire.title} ${i}`, wire.summary))) names.add(name);
    for (const name of [...names].slice(0, 50)) {
      const [b, v] = name.split(':');
      // A leading zero, a band that does not exist, another separator: not that band's name.
      names.add(`${b}:0${v}`).add(`1${b}:${v}`).add(`${b}-${v}`).add(`${b}:${v}x`);
    }
    names.add('0:own-abc').add('3:busy1').add('');
    const hashes = new Set([...names].map(bucketNameHash));
    expect(hashes.size).toBe(names.size);
    expect(hashes.has(0)).toBe(false);
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

  // Buckets and signatures stay in Redis for two days: a release that computed them differently would miss
  // every near-duplicate of the stories ingested before it. These values were computed before the one-pass
  // ASCII path and the precomputed densification probes were written, by the per-word path they replace.
  it.each([
    ["India and Japan foreign ministers meet in Tokyo", "The foreign ministers of India and Japan met in Tokyo on Monday to discuss Indo-Pacific security, trade and a high-speed rail link.", 'bf23e224bf23e2242da43e10896e5a0521f1598a2da43e1021f1598aa33745671490b4ac8595becbf2c9a74e1e82f1571490b4ac097cc109a33745674e95fd1df2c9a74e977fdd9e15cef9607cb36a5e71ee5f512da43e102da43e102da43e1044729af7ce012c07474b3aa91490b4aca3374567800861861e82f1571490b4ac',
     '0:1jjji5f 1:1nlpodf 2:1ciu2fn 3:118cuvx 4:x8rc36 5:i74d75 6:1gnttxa 7:1xziq1g 8:11mluzq 9:sc5pes 10:jkpwpv 11:1imwfm7 12:ymw6hz 13:96jvw6 14:1fh6ogm 15:8fm15b'],
    ["Überschwemmungen in Köln", "Der Rhein trat über die Ufer; Straßen in der Altstadt wurden gesperrt.", '46fc8ec2951fcd318ec27b0684fcdd7f4a15fc4884fcdd7f46fc8ec28ec27b064a15fc487517a62a72057ef5971f697a7d0b99d68ec27b0670ce53a17d0b99d672057ef5951fcd3172057ef570ce53a18a9f6ef572057ef57d0b99d67517a62a4a15fc487d0b99d68ec27b06f78ea3247517a62a46fc8ec270ce53a172057ef5',
     '0:1n3l7lw 1:1cbgebz 2:mtbwt7 3:1i2t53p 4:151d7so 5:5mmlra 6:1wwyl02 7:6b90wm 8:6wcups 9:r735dr 10:1bqj9x9 11:80kbmv 12:1lwxl40 13:upag42 14:8kmwyq 15:t2rzb'],
    ["東京で日印外相会談", "インド太平洋の安全保障について協議した。", '07a12a705d8a9301e09ee0c9d2eaa41f39bca5a7e09ee0c9f80222357868c622d50c573ef58ff60a2242e2505ca0eb9339bca5a7deccbc6707c22fcebb9fc90d2242e2500d812b8207a12a7007c22fce5ca0eb93e09ee0c90d812b8239bca5a77868c622bb9fc90dfa3e1417d50c573e7868c6225ca0eb931e6b5e771e6b5e77',
     '0:ori95t 1:1fy9hqv 2:qnnb5o 3:17d8oh9 4:116qjhb 5:y82ghn 6:1l8425a 7:jdmf3b 8:1h2t7y0 9:fnm08j 10:4zcr8h 11:1mzzd4j 12:151ilpw 13:d4x014 14:vmonup 15:15fs6bx'],
    ["Two words", "", '1e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d81e3262d8',
     '0:1v8fjf1 1:1v8fjf1 2:1v8fjf1 3:1v8fjf1 4:1v8fjf1 5:1v8fjf1 6:1v8fjf1 7:1v8fjf1 8:1v8fjf1 9:1v8fjf1 10:1v8fjf1 11:1v8fjf1 12:1v8fjf1 13:1v8fjf1 14:1v8fjf1 15:1v8fjf1'],
    ["", "", 'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
     // No words, no buckets (they were '0:f444o3 1:f444o3 …', one bucket shared by every wordless item).
     ''],
  ])('signature and band keys of %j / %j are the stored values', (title, summary, signature, bands) => {
    const sig = minhashSignature(title, summary);
    expect(encodeSignature(sig)).toBe(signature);
    expect(bandKeys(sig).join(' ')).toBe(bands);
  });

  it('ASCII text and the same text with a non-ASCII separator (the general path) give the same signature', () => {
    for (const [, t] of [...SAME_EVENT, ...DIFFERENT_EVENT]) {
      const summary = t.summary.slice(0, 300);
      expect(encodeSignature(minhashSignature(t.title, `${summary} …`))).toBe(encodeSignature(minhashSignature(t.title, summary)));
    }
    // Under three words: the words folded into one shingle on both paths.
    for (const short of ['Tokyo', 'Tokyo quake']) expect(encodeSignature(minhashSignature(short, '…'))).toBe(encodeSignature(minhashSignature(short, '')));
  });

  it('signatures kept while thousands more are computed keep their values (they share storage blocks)', () => {
    const texts = Array.from({ length: 3000 }, (_, i) => [`${wire.title} ${i}`, `${i} ${wire.summary}`] as const);
    const kept = texts.map(([t, s]) => minhashSignature(t, s));
    const again = texts.map(([t, s]) => encodeSignature(minhashSignature(t, s)));
    expect(kept.map(encodeSignature)).toEqual(again);
    expect(new Set(again).size).toBeGreaterThan(2900);
  });
});
