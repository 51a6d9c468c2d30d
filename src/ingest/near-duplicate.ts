/**
 * Cross-outlet near-duplicate detection with MinHash over word 3-shingles, banded for lookup (LSH).
 * The signature uses one-permutation hashing with optimal densification (Shrivastava, ICML 2017): each shingle
 * is hashed once, not once per signature row, which keeps ingestion close to the parser's own speed.
 *
 * Words are runs of letters and digits of any script; Han, kana and Thai characters count as one word each,
 * since those scripts put no spaces between words. Shingles of three words of the title and the start of the
 * summary survive the edits outlets make to wire copy (a changed headline word, an appended "- Reuters",
 * punctuation) while two different stories on one topic share few of them. 16 bands of 2 rows: a pair with
 * similarity 0.5 shares a band with probability 1 - (1 - 0.5^2)^16 = 99%, one at 0.1 with 15%; every candidate
 * is then checked against NEAR_DUPLICATE_THRESHOLD (justified by the table test in tests/ingest).
 */

export const SHINGLE = 3;
export const BANDS = 16;
export const ROWS = 2;
const HASHES = BANDS * ROWS;
/** Estimated Jaccard similarity at or above which two stories from different feeds are one story. */
export const NEAR_DUPLICATE_THRESHOLD = 0.5;
/** Only this much of the summary counts: leads are what syndicated copies share. */
const SUMMARY_CHARS = 400;


function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const WORD = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}]|[\p{L}\p{N}\p{M}]+/gu;

/** The words shingles are made of: NFKC, lower case, letters and digits only. */
export function shingleWords(title: string, summary: string): string[] {
  return shingleText(title, summary).normalize('NFKC').toLowerCase().match(WORD) ?? [];
}
const shingleText = (title: string, summary: string) => `${title} ${summary.slice(0, SUMMARY_CHARS)}`;

/**
 * FNV-1a hash of each word, in order. Most feeds are ASCII: there the words ([a-z0-9]+ of the lower-cased
 * text) are hashed as they are scanned, without a string per word (the same hashes as hashing the words of
 * shingleWords, which handles every other text).
 */
function wordHashes(title: string, summary: string): number[] {
  const text = shingleText(title, summary);
  if (/[^\x00-\x7f]/.test(text)) return shingleWords(title, summary).map((w) => fnv1a(w, 0, w.length));
  const out: number[] = [];
  let h = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) {
      if (!inWord) {
        h = 0x811c9dc5;
        inWord = true;
      }
      h = Math.imul(h ^ c, 0x01000193);
    } else if (inWord) {
      out.push(h >>> 0);
      inWord = false;
    }
  }
  if (inWord) out.push(h >>> 0);
  return out;
}

/** Hashes of the word 3-shingles (repeats included: MinHash and Jaccard treat them as a set anyway). */
function shingleHashes(h: number[]): number[] {
  if (h.length < SHINGLE) return h.length ? [h.reduce((a, b) => fmix32(a ^ b))] : [];
  const out = new Array<number>(h.length - SHINGLE + 1);
  for (let i = 0; i + SHINGLE <= h.length; i++) out[i] = fmix32(Math.imul(fmix32(h[i]! ^ 0x9747b28c), 31) ^ Math.imul(h[i + 1]!, 17) ^ h[i + 2]!);
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
  const sig = new Uint32Array(HASHES).fill(EMPTY);
  for (const h of shingleHashes(wordHashes(title, summary))) {
    const bin = h % HASHES;
    const v = fmix32(h ^ 0x5bd1e995);
    if (v < sig[bin]!) sig[bin] = v;
  }
  // Optimal densification: an empty bin borrows the value of a non-empty bin picked by a hash of its index.
  const filled: number[] = [];
  for (let i = 0; i < HASHES; i++) if (sig[i] !== EMPTY) filled.push(i);
  if (filled.length === 0 || filled.length === HASHES) return sig;
  const out = sig.slice();
  for (let i = 0; i < HASHES; i++) {
    if (sig[i] !== EMPTY) continue;
    for (let attempt = 1; ; attempt++) {
      const j = fmix32(Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(attempt, 0x85ebca6b)) % HASHES;
      if (sig[j] !== EMPTY) {
        out[i] = sig[j]!;
        break;
      }
    }
  }
  return out;
}
const EMPTY = 0xffffffff;

/** Fraction of equal MinHash rows: an unbiased estimate of the Jaccard similarity of the shingle sets. */
export function estimateSimilarity(a: Signature, b: Signature): number {
  if (a.length !== b.length || a.length === 0) return 0;
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

/** Exact Jaccard similarity of the shingle sets (for tests and threshold checks). */
export function jaccard(a: { title: string; summary: string }, b: { title: string; summary: string }): number {
  const x = new Set(shingleHashes(wordHashes(a.title, a.summary)));
  const y = new Set(shingleHashes(wordHashes(b.title, b.summary)));
  let inter = 0;
  for (const h of x) if (y.has(h)) inter++;
  const union = x.size + y.size - inter;
  return union === 0 ? 0 : inter / union;
}

/** One bucket name per band, `<band>:<hash>`: stories sharing any band's bucket are candidates. */
export function bandKeys(sig: Signature): string[] {
  const out = new Array<string>(BANDS);
  for (let b = 0; b < BANDS; b++) {
    let h = 0x811c9dc5;
    for (let r = 0; r < ROWS; r++) h = Math.imul(h ^ sig[b * ROWS + r]!, 0x01000193);
    out[b] = `${b}:${(h >>> 0).toString(36)}`;
  }
  return out;
}

/**
 * A signature as stored: 8 hex characters per row (each row's 4 bytes, little-endian), so the store's Lua
 * decision compares rows as substrings (equal rows of two encodings are equal rows of the signatures).
 */
export function encodeSignature(sig: Signature): string {
  return Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('hex');
}
