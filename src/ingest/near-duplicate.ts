/**
 * Cross-outlet near-duplicate detection with MinHash over character shingles, banded for lookup (LSH).
 *
 * Character 5-grams of the normalized title and the start of the summary work for every script (CJK has no
 * spaces between words) and survive the small edits outlets make to wire copy: a changed headline word,
 * an appended "- Reuters", different punctuation. 20 bands of 3 rows: a pair with similarity 0.5 shares a
 * band with probability 1 - (1 - 0.5^3)^20 = 93%, one at 0.7 with 99.9%, one at 0.2 with 15%; every candidate
 * is then checked against NEAR_DUPLICATE_THRESHOLD (justified by the table test in tests/ingest).
 */

export const SHINGLE = 5;
export const BANDS = 20;
export const ROWS = 3;
const HASHES = BANDS * ROWS;
/** Estimated Jaccard similarity at or above which two stories from different feeds are one story. */
export const NEAR_DUPLICATE_THRESHOLD = 0.5;
/** Only this much of the summary counts: leads are what syndicated copies share. */
const SUMMARY_CHARS = 400;

const SEEDS = Uint32Array.from({ length: HASHES }, (_, i) => fmix32((i + 1) * 0x9e3779b1));

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Lower-case letters and digits of any script, single spaces between words. */
export function shingleText(title: string, summary: string): string {
  return `${title} ${summary.slice(0, SUMMARY_CHARS)}`
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

function shingleHashes(text: string): Set<number> {
  const out = new Set<number>();
  if (text.length <= SHINGLE) {
    if (text) out.add(fnv1a(text, 0, text.length));
    return out;
  }
  for (let i = 0; i + SHINGLE <= text.length; i++) out.add(fnv1a(text, i, i + SHINGLE));
  return out;
}

function fnv1a(s: string, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export type Signature = Uint32Array;

export function minhashSignature(title: string, summary: string): Signature {
  const sig = new Uint32Array(HASHES).fill(0xffffffff);
  for (const h of shingleHashes(shingleText(title, summary))) {
    for (let i = 0; i < HASHES; i++) {
      const v = fmix32(h ^ SEEDS[i]!);
      if (v < sig[i]!) sig[i] = v;
    }
  }
  return sig;
}

/** Fraction of equal MinHash rows: an unbiased estimate of the Jaccard similarity of the shingle sets. */
export function estimateSimilarity(a: Signature, b: Signature): number {
  if (a.length !== b.length || a.length === 0) return 0;
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

/** Exact Jaccard similarity of the shingle sets (for tests and threshold checks). */
export function jaccard(a: { title: string; summary: string }, b: { title: string; summary: string }): number {
  const x = shingleHashes(shingleText(a.title, a.summary));
  const y = shingleHashes(shingleText(b.title, b.summary));
  let inter = 0;
  for (const h of x) if (y.has(h)) inter++;
  const union = x.size + y.size - inter;
  return union === 0 ? 0 : inter / union;
}

/** One bucket name per band: stories sharing any bucket are candidates. */
export function bandKeys(sig: Signature): string[] {
  const out: string[] = [];
  for (let b = 0; b < BANDS; b++) {
    let h = 0x811c9dc5 ^ b;
    for (let r = 0; r < ROWS; r++) h = fmix32(Math.imul(h ^ sig[b * ROWS + r]!, 0x01000193));
    out.push(`${b}:${h.toString(36)}`);
  }
  return out;
}

export function encodeSignature(sig: Signature): string {
  const buf = Buffer.alloc(sig.length * 4);
  for (let i = 0; i < sig.length; i++) buf.writeUInt32LE(sig[i]!, i * 4);
  return buf.toString('base64');
}
export function decodeSignature(s: string): Signature | null {
  const buf = Buffer.from(s, 'base64');
  if (buf.byteLength !== HASHES * 4) return null;
  const out = new Uint32Array(HASHES);
  for (let i = 0; i < HASHES; i++) out[i] = buf.readUInt32LE(i * 4);
  return out;
}
