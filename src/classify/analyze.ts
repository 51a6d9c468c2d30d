import { stemmer } from 'stemmer';

/**
 * Text analysis shared by queries and stories: both sides go through the same steps, so whatever the
 * segmenter does with a script (ICU splits Japanese by dictionary, Hindi by spaces) it does to both.
 */

export interface Token {
  /** Case- and diacritic-folded word: what quoted phrases and prefixes match. */
  readonly word: string;
  /** English stem of the folded word (the word itself outside a-z): what plain terms match. */
  readonly stem: string;
  /** The word as written, for explanations ("Tokyo", not "tokyo"). */
  readonly text: string;
}

// 'und' (undetermined): ICU picks the rules per script, so no language has to be guessed first.
const segmenter = new Intl.Segmenter('und', { granularity: 'word' });

/** Lower case, compatibility forms unified (full-width letters), Latin accents dropped ("São" = "sao"). */
export function foldWord(raw: string): string {
  const folded = raw
    .normalize('NFKD')
    // Only the combining accents of Latin, Greek and Cyrillic: Devanagari vowel signs are marks too, and are letters there.
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[\u2018\u2019\u02bc]/g, "'")
    .normalize('NFC');
  // "India's" and "India" are one name to a reader.
  return folded.endsWith("'s") ? folded.slice(0, -2) : folded.replace(/'$/, '');
}

const ASCII_WORD = /^[a-z]+$/;
/** Words Porter folds into a different, common word: "news" into "new", "innings" into "in". */
const KEEP_AS_IS = new Set(['news', 'innings', 'series', 'species', 'bus', 'gas', 'chess', 'boss', 'us', 'always', 'analysis']);

/** Porter stems only for plain English words: stemming "5g" or a Japanese word would only damage it. */
export function stemWord(word: string): string {
  if (word.length <= 3 || !ASCII_WORD.test(word) || KEEP_AS_IS.has(word)) return word;
  const stem = stemmer(word);
  // A stem this short is usually another word ("inning" -> "in"): keep the word itself.
  return stem.length < 3 ? word : stem;
}

/**
 * One token per word as written. News repeats its words, so this spares most folding and stemming; one
 * string object per distinct word lets index look-ups compare by identity; and since tokens are shared (never
 * mutated), a story's analysis is an array of references, small enough to keep (preview's analysis cache).
 */
const analyzed = new Map<string, Token>();
const ANALYZED_MAX = 200_000;

function analyzeWord(raw: string): Token {
  let a = analyzed.get(raw);
  if (!a) {
    // Bounded: a flood of unique words (numbers, names) empties it instead of growing without end.
    if (analyzed.size >= ANALYZED_MAX) analyzed.clear();
    const word = foldWord(raw);
    const stem = stemWord(word);
    a = { word, stem: stem === word ? word : stem, text: raw };
    analyzed.set(raw, a);
  }
  return a;
}

/** Words of `text` (at most `maxChars` of it), folded and stemmed, in order. Tokens are shared: do not mutate them. */
export function analyzeText(text: string, maxChars = Number.POSITIVE_INFINITY): Token[] {
  const bounded = text.length > maxChars ? text.slice(0, maxChars) : text;
  const out: Token[] = [];
  for (const s of segmenter.segment(bounded)) {
    if (!s.isWordLike) continue;
    const token = analyzeWord(s.segment);
    if (token.word === '') continue;
    out.push(token);
  }
  return out;
}

/**
 * A guess of the story's language from its script, for `lang:` scopes: stories carry no language of their own.
 * Latin script counts as English, the language of the catalog; other Latin-script languages need `source:`.
 */
export function guessLanguage(text: string): string {
  if (/[\u3040-\u30ff]/u.test(text)) return 'ja';
  if (/\p{Script=Hangul}/u.test(text)) return 'ko';
  if (/\p{Script=Han}/u.test(text)) return 'zh';
  if (/\p{Script=Devanagari}/u.test(text)) return 'hi';
  if (/\p{Script=Bengali}/u.test(text)) return 'bn';
  if (/\p{Script=Tamil}/u.test(text)) return 'ta';
  if (/\p{Script=Telugu}/u.test(text)) return 'te';
  if (/\p{Script=Malayalam}/u.test(text)) return 'ml';
  if (/\p{Script=Kannada}/u.test(text)) return 'kn';
  if (/\p{Script=Gujarati}/u.test(text)) return 'gu';
  if (/\p{Script=Arabic}/u.test(text)) return 'ar';
  if (/\p{Script=Cyrillic}/u.test(text)) return 'ru';
  if (/\p{Script=Thai}/u.test(text)) return 'th';
  return 'en';
}
