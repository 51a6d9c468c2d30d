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
/** `h % HASHES` for unsigned h, as a mask: HASHES is a power of two (a float modulus costs more than a bin's work). */
const BIN_MASK = HASHES - 1;
if ((HASHES & BIN_MASK) !== 0) throw new Error('HASHES must be a power of two');
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

/** FNV-1a hash of each word of shingleWords, in order: the general path, for any script. */
const wordHashes = (title: string, summary: string): number[] => shingleWords(title, summary).map((w) => fnv1a(w, 0, w.length));

/** Hash of the 3-shingle starting with words a, b, c. */
const shingleHash = (a: number, b: number, c: number) => fmix32(Math.imul(fmix32(a ^ 0x9747b28c), 31) ^ Math.imul(b, 17) ^ c);

/** Hashes of the word 3-shingles (repeats included: MinHash and Jaccard treat them as a set anyway). */
function shingleHashes(h: number[]): number[] {
  if (h.length < SHINGLE) return h.length ? [h.reduce((a, b) => fmix32(a ^ b))] : [];
  const out = new Array<number>(h.length - SHINGLE + 1);
  for (let i = 0; i + SHINGLE <= h.length; i++) out[i] = shingleHash(h[i]!, h[i + 1]!, h[i + 2]!);
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

/** One shingle into its bin of the one-permutation signature. */
function addShingle(sig: Signature, h: number) {
  const bin = h & BIN_MASK;
  const v = fmix32(h ^ 0x5bd1e995);
  if (v < sig[bin]!) sig[bin] = v;
}

/**
 * The signature of ASCII text in one pass, without a string or an array per word: words ([a-z0-9]+ of the
 * lower-cased text, as shingleWords gives them for ASCII) are hashed as they are scanned, and each completed
 * shingle goes straight into its bin. The same signature as the general path (tests/ingest/near-duplicate
 * pins stored values), about twice as fast; false when the text is not ASCII.
 */
function asciiSignature(sig: Signature, text: string): boolean {
  let w0 = 0;
  let w1 = 0;
  let words = 0;
  let h = 0;
  let inWord = false;
  for (let i = 0; i <= text.length; i++) {
    let c = i < text.length ? text.charCodeAt(i) : 32;
    if (c > 0x7f) return false;
    if (c >= 65 && c <= 90) c += 32;
    if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) {
      if (!inWord) {
        h = 0x811c9dc5;
        inWord = true;
      }
      h = Math.imul(h ^ c, 0x01000193);
    } else if (inWord) {
      inWord = false;
      const w2 = h >>> 0;
      words++;
      if (words >= SHINGLE) addShingle(sig, shingleHash(w0, w1, w2));
      w0 = w1;
      w1 = w2;
    }
  }
  // Fewer words than a shingle: the words' hashes folded into one, as shingleHashes does.
  if (words === 1) addShingle(sig, w1);
  else if (words === 2) addShingle(sig, fmix32(w0 ^ w1));
  return true;
}

const EMPTY = 0xffffffff;

/**
 * Signatures are views into a shared block: a Uint32Array of its own has a backing store of its own, which
 * cost more to allocate and collect (about 2 µs each here) than computing the signature.
 */
const SIGNATURES_PER_BLOCK = 1024;
let block = new Uint32Array(HASHES * SIGNATURES_PER_BLOCK);
let blockUsed = 0;
function newSignature(): Signature {
  if (blockUsed === SIGNATURES_PER_BLOCK) {
    block = new Uint32Array(HASHES * SIGNATURES_PER_BLOCK);
    blockUsed = 0;
  }
  return block.subarray(blockUsed * HASHES, ++blockUsed * HASHES);
}
/** The bins before densification; minhashSignature is synchronous, so one suffices. */
const bins = new Uint32Array(HASHES);

/** Densification's probe sequence: bin i tries bin probeAt(i, 1), then probeAt(i, 2)... until one is filled. */
const probeAt = (i: number, attempt: number) => fmix32(Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(attempt, 0x85ebca6b)) & BIN_MASK;
/** The first PROBES of each bin's sequence, computed once: a signature of a short title has most bins empty. */
const PROBES = 64;
const PROBE = new Uint8Array(HASHES * PROBES);
for (let i = 0; i < HASHES; i++) for (let a = 1; a <= PROBES; a++) PROBE[i * PROBES + a - 1] = probeAt(i, a);

export function minhashSignature(title: string, summary: string): Signature {
  bins.fill(EMPTY);
  if (!asciiSignature(bins, shingleText(title, summary))) {
    bins.fill(EMPTY);
    for (const h of shingleHashes(wordHashes(title, summary))) addShingle(bins, h);
  }
  const out = newSignature();
  out.set(bins);
  let filled = 0;
  for (let i = 0; i < HASHES; i++) if (bins[i] !== EMPTY) filled++;
  if (filled === 0 || filled === HASHES) return out;
  // Optimal densification: an empty bin borrows the value of a non-empty bin picked by a hash of its index.
  for (let i = 0; i < HASHES; i++) {
    if (bins[i] !== EMPTY) continue;
    let j = -1;
    for (let a = 0; a < PROBES && j < 0; a++) if (bins[PROBE[i * PROBES + a]!] !== EMPTY) j = PROBE[i * PROBES + a]!;
    for (let attempt = PROBES + 1; j < 0; attempt++) if (bins[probeAt(i, attempt)] !== EMPTY) j = probeAt(i, attempt);
    out[i] = bins[j]!;
  }
  return out;
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
  const x = new Set(shingleHashes(wordHashes(a.title, a.summary)));
  const y = new Set(shingleHashes(wordHashes(b.title, b.summary)));
  let inter = 0;
  for (const h of x) if (y.has(h)) inter++;
  const union = x.size + y.size - inter;
  return union === 0 ? 0 : inter / union;
}

/**
 * One bucket name per band, `<band>:<hash>`: stories sharing any band's bucket are candidates. Text without a
 * word (an item titled "📷" with an image for summary) has an empty signature, every row EMPTY, equal to every
 * other such item's: no buckets, so that it neither finds nor is found as a near-duplicate of anything.
 */
export function bandKeys(sig: Signature): string[] {
  // Densified signatures have no EMPTY row unless no bin was filled at all.
  if (sig[0] === EMPTY) return [];
  const out = new Array<string>(BANDS);
  for (let b = 0; b < BANDS; b++) {
    let h = 0x811c9dc5;
    for (let r = 0; r < ROWS; r++) h = Math.imul(h ^ sig[b * ROWS + r]!, 0x01000193);
    out[b] = `${b}:${base36(h >>> 0)}`;
  }
  return out;
}

const DIGITS36 = '0123456789abcdefghijklmnopqrstuvwxyz';
/** `n.toString(36)` for an unsigned 32-bit n, about four times faster (V8's non-decimal radix path is slow). */
function base36(n: number): string {
  if (n === 0) return '0';
  let s = '';
  while (n > 0) {
    const q = Math.floor(n / 36);
    s = DIGITS36[n - q * 36]! + s;
    n = q;
  }
  return s;
}

/** Band b's bucket holding value v (the FNV-1a of its rows, as bandKeys names it): one 32-bit hash, never 0. */
function bandHash(b: number, v: number): number {
  return fmix32(v ^ Math.imul(b + 1, 0x9e3779b1)) | 0 || 1;
}

const BAND_NAME = /^(\d{1,2}):([0-9a-z]{1,7})$/;
/**
 * A bucket name's 32-bit hash (never 0, the near-duplicate index's empty slot): for a band's name as bandKeys
 * makes it, the hash of that band and value (bandBucketHashes); for any other name, FNV-1a of its characters.
 */
export function bucketNameHash(name: string): number {
  const m = BAND_NAME.exec(name);
  if (m) {
    const b = Number(m[1]);
    const v = parseInt(m[2]!, 36);
    // Only the name bandKeys would give (no leading zero, a band that exists, a 32-bit value) is that band's.
    if (b < BANDS && String(b) === m[1] && v <= 0xffffffff && base36(v) === m[2]) return bandHash(b, v);
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h | 0 || 1;
}

/**
 * Per band, `bucketNameHash(bandKeys(sig)[b])`, computed from the signature's rows without making the names:
 * sixteen strings per item, then hashing them again, cost more than the item's whole MinHash signature. Reads
 * the signature at `rows[at]..rows[at + 31]`, writes the hashes to `out` and answers how many there are (0 for
 * text without a word, as bandKeys).
 */
export function bandBucketHashes(rows: Uint32Array, at: number, out: Int32Array): number {
  if (rows[at] === EMPTY) return 0;
  for (let b = 0; b < BANDS; b++) {
    let v = 0x811c9dc5;
    for (let r = 0; r < ROWS; r++) v = Math.imul(v ^ rows[at + b * ROWS + r]!, 0x01000193);
    out[b] = bandHash(b, v >>> 0);
  }
  return BANDS;
}

/**
 * A signature as stored: 8 hex characters per row (each row's 4 bytes, little-endian), so the store's Lua
 * decision compares rows as substrings (equal rows of two encodings are equal rows of the signatures).
 */
export function encodeSignature(sig: Signature): string {
  return Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('hex');
}
