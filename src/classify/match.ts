import type { Story, TopicMatch } from '../model.ts';
import { analyzeText, guessLanguage, type Token } from './analyze.ts';
import { isCommonPrefix, isCommonStem, isFrequentStem, parseQuery, type QueryLimits, type QueryNode, type Scope, type TermNode, type TextField } from './query.ts';

/**
 * Matching: topics compiled from queries, an inverted index from the words a topic needs to the topics
 * that need them, and an evaluator that explains every match. Pure: no I/O, no clock.
 */

/** Title words are the strongest evidence of what a story is about; categories are the publisher's own label. */
export const FIELD_WEIGHT: Record<Scope, number> = { title: 3, category: 2, summary: 1, source: 1, lang: 1 };
const TEXT_FIELDS: readonly TextField[] = ['title', 'summary', 'category'];

export interface TopicDefinition {
  id: string;
  name: string;
  query: string;
  parent?: string | undefined;
  /** Matches scoring below this are dropped (default 1: any hit). */
  minScore?: number | undefined;
}

export interface CompiledTopic {
  id: string;
  name: string;
  parent: string | null;
  minScore: number;
  query: string;
  ast: QueryNode;
}

/** One piece of evidence: a query term found in a field of the story. */
export class Hit {
  constructor(
    /** The query term as written. */
    readonly term: string,
    readonly field: Scope,
    readonly weight: number,
    /** Position within the field, to order explanations as the story reads. */
    readonly at: number,
    /** Words the hit spans, or for source:/lang: the value matched. */
    private readonly span: readonly Token[] | string,
  ) {}

  /** The story's words as written; built on demand, since most hits are never shown. */
  get text(): string {
    return typeof this.span === 'string' ? this.span : this.span.map((t) => t.text).join(' ');
  }

  toJSON() {
    return { term: this.term, field: this.field, text: this.text, weight: this.weight, at: this.at };
  }
}

/**
 * A matched topic with its evidence. The evidence and the sentence `why` are built on first use: the
 * fan-out needs them for the few topics someone follows instantly, not for every match.
 */
export class TopicExplanation implements TopicMatch {
  #hits: readonly Hit[] | null = null;
  #why: string | null = null;
  readonly #topic: CompiledTopic;
  readonly #story: AnalyzedStory;
  constructor(
    readonly topicId: string,
    readonly score: number,
    /** The topic whose query found the evidence (the child's, for a parent matched through it). */
    topic: CompiledTopic,
    story: AnalyzedStory,
    /** Set when the topic matched through a child topic (cricket counts for sports). */
    readonly via: string | null,
  ) {
    this.#topic = topic;
    this.#story = story;
  }

  get hits(): readonly Hit[] {
    return (this.#hits ??= hitsOf(this.#topic, this.#story));
  }

  get why(): string {
    return (this.#why ??= renderWhy(this.hits, this.via));
  }

  /** For parents: the child's evidence, named as coming through the child. */
  through(parentId: string, childName: string): TopicExplanation {
    return new TopicExplanation(parentId, this.score, this.#topic, this.#story, childName);
  }

  toJSON() {
    return { topicId: this.topicId, score: this.score, why: this.why, hits: this.hits, via: this.via };
  }
}

export function compileTopic(def: TopicDefinition, limits?: QueryLimits): CompiledTopic {
  return { id: def.id, name: def.name, parent: def.parent ?? null, minScore: def.minScore ?? 1, query: def.query, ast: parseQuery(def.query, limits) };
}

export interface StoryLimits {
  /** Characters of each field analyzed; the rest is ignored, so a huge story costs a bounded time. */
  maxFieldChars: number;
}
export const DEFAULT_STORY_LIMITS: StoryLimits = { maxFieldChars: 4000 };

interface Occurrence {
  field: TextField;
  at: number;
}

/**
 * The costly part of analyzing a story (segmenting, folding, stemming), kept apart so it can be cached:
 * tokens are shared objects, so this is mostly arrays of references.
 */
export interface TokenizedStory {
  fields: Record<TextField, Token[]>;
  /** Category i's words carry segment i, so a phrase never spans two categories. */
  segments: number[];
  /** Feed id, host and parent domains of the link: what source: matches. */
  sources: Set<string>;
  lang: string;
}

export interface AnalyzedStory extends TokenizedStory {
  byStem: Map<string, Occurrence[]>;
  byWord: Map<string, Occurrence[]>;
}

export type StoryText = Pick<Story, 'title' | 'summary' | 'categories'> & Partial<Pick<Story, 'feedId' | 'url'>>;

function sourcesOf(story: StoryText): Set<string> {
  const out = new Set<string>();
  if (story.feedId) out.add(story.feedId.toLowerCase());
  if (story.url) {
    try {
      const labels = new URL(story.url).hostname.toLowerCase().replace(/^www\./, '').split('.');
      // "news.example.co.uk" is reachable as itself and as example.co.uk, never as a bare suffix like "uk".
      for (let i = 0; i < labels.length - 1; i++) out.add(labels.slice(i).join('.'));
    } catch {
      // A story without a parseable link simply has no host to match.
    }
  }
  return out;
}

/** Analyzes a story once; every topic is then evaluated against the result. Markup never gets here: stories are plain text. */
export function analyzeStory(story: StoryText, limits: StoryLimits = DEFAULT_STORY_LIMITS): AnalyzedStory {
  return indexTokens(tokenizeStory(story, limits));
}

/** The story's words, folded and stemmed, with its sources and language: about 1 ms for 2 KB of text. */
export function tokenizeStory(story: StoryText, limits: StoryLimits = DEFAULT_STORY_LIMITS): TokenizedStory {
  const segments: number[] = [];
  const categoryTokens: Token[] = [];
  let budget = limits.maxFieldChars;
  story.categories.forEach((c, i) => {
    if (budget <= 0) return;
    for (const t of analyzeText(c, budget)) {
      categoryTokens.push(t);
      segments.push(i);
    }
    budget -= c.length;
  });
  return {
    fields: {
      title: analyzeText(story.title, limits.maxFieldChars),
      summary: analyzeText(story.summary, limits.maxFieldChars),
      category: categoryTokens,
    },
    segments,
    sources: sourcesOf(story),
    lang: guessLanguage(`${story.title} ${story.summary}`),
  };
}

/** Where each stem and word occurs: what matching looks up. A twentieth of what tokenizing costs. */
export function indexTokens(t: TokenizedStory): AnalyzedStory {
  const byStem = new Map<string, Occurrence[]>();
  const byWord = new Map<string, Occurrence[]>();
  const add = (map: Map<string, Occurrence[]>, key: string, occ: Occurrence) => {
    const list = map.get(key);
    if (list) list.push(occ);
    else map.set(key, [occ]);
  };
  for (const field of TEXT_FIELDS) {
    t.fields[field].forEach((token, at) => {
      add(byStem, token.stem, { field, at });
      add(byWord, token.word, { field, at });
    });
  }
  return { ...t, byStem, byWord };
}

const sameSegment = (s: AnalyzedStory, field: TextField, a: number, b: number) => field !== 'category' || s.segments[a] === s.segments[b];

const NONE: Occurrence[] = [];

/** Whether the term occurs in the story, without building the list of where. */
function occurs(term: TermNode, s: AnalyzedStory): boolean {
  if (term.match === 'value') return term.scope === 'lang' ? s.lang === term.words[0] : s.sources.has(term.words[0]!.replace(/^www\./, ''));
  if (term.prefix) {
    const first = term.words[0]!;
    for (const [word, occ] of s.byWord) {
      if (!word.startsWith(first)) continue;
      if (!term.scope) return true;
      for (const o of occ) if (o.field === term.scope) return true;
    }
    return false;
  }
  if (term.words.length === 1 && !term.scope) return (term.match === 'stem' ? s.byStem : s.byWord).has(term.words[0]!);
  if (!(term.match === 'stem' ? s.byStem : s.byWord).has(term.words[0]!)) return false;
  return occurrences(term, s).length > 0;
}

/** Where the term occurs in the story (empty: it does not). */
function occurrences(term: TermNode, s: AnalyzedStory): Occurrence[] {
  const first = term.words[0]!;
  let starts: Occurrence[];
  if (term.prefix) {
    starts = [];
    for (const [word, occ] of s.byWord) if (word.startsWith(first)) starts.push(...occ);
  } else {
    starts = (term.match === 'stem' ? s.byStem : s.byWord).get(first) ?? NONE;
  }
  if (term.scope) starts = starts.filter((o) => o.field === term.scope);
  if (term.words.length === 1) return starts;
  return starts.filter(({ field, at }) => {
    const tokens = s.fields[field];
    for (let i = 1; i < term.words.length; i++) {
      const t = tokens[at + i];
      if (!t || !sameSegment(s, field, at, at + i) || (term.match === 'stem' ? t.stem : t.word) !== term.words[i]) return false;
    }
    return true;
  });
}

/** The occurrence an explanation quotes: in the strongest field, the first one. */
function bestOccurrence(occ: Occurrence[]): Occurrence {
  let best = occ[0]!;
  for (const o of occ) if (FIELD_WEIGHT[o.field] > FIELD_WEIGHT[best.field] || (o.field === best.field && o.at < best.at)) best = o;
  return best;
}

function bestHit(term: TermNode, occ: Occurrence[], s: AnalyzedStory): Hit {
  const best = bestOccurrence(occ);
  return new Hit(term.label, best.field, FIELD_WEIGHT[best.field], best.at, s.fields[best.field].slice(best.at, best.at + term.words.length));
}

const FIELD_CODE: Record<Scope, number> = { title: 0, summary: 1, category: 2, source: 3, lang: 4 };
const CODE_WEIGHT = [FIELD_WEIGHT.title, FIELD_WEIGHT.summary, FIELD_WEIGHT.category, FIELD_WEIGHT.source, FIELD_WEIGHT.lang];
const POSITIONS = 1 << 20;

/**
 * The same walk as evaluate, recording each piece of evidence as one number (field and position) into a
 * reused array: scoring a match allocates nothing, and the Hit objects are built only if someone asks why.
 */
function collectEvidence(node: QueryNode, s: AnalyzedStory, out: number[]): boolean {
  switch (node.type) {
    case 'term': {
      if (node.match === 'value') {
        if (!occurs(node, s)) return false;
        out.push(FIELD_CODE[node.scope ?? 'source'] * POSITIONS);
        return true;
      }
      const occ = occurrences(node, s);
      if (occ.length === 0) return false;
      const best = bestOccurrence(occ);
      out.push(FIELD_CODE[best.field] * POSITIONS + best.at);
      return true;
    }
    case 'not': {
      const mark = out.length;
      const inner = collectEvidence(node.child, s, out);
      out.length = mark;
      return !inner;
    }
    case 'and': {
      const mark = out.length;
      for (const c of node.children) {
        if (!collectEvidence(c, s, out)) {
          out.length = mark;
          return false;
        }
      }
      return true;
    }
    case 'or': {
      let any = false;
      for (const c of node.children) any = collectEvidence(c, s, out) || any;
      return any;
    }
  }
}

const scratch: number[] = [];

/** Sum of the weights of distinct pieces of evidence (one story word counts once). */
function sumEvidence(codes: readonly number[]): number {
  let score = 0;
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i]!;
    let dup = false;
    for (let j = 0; j < i && !dup; j++) dup = codes[j] === code;
    if (!dup) score += CODE_WEIGHT[Math.floor(code / POSITIONS)]!;
  }
  return score;
}

/** Score of the topic on the story, or -1 when its query does not hold. */
function scoreOf(topic: CompiledTopic, s: AnalyzedStory): number {
  scratch.length = 0;
  return collectEvidence(topic.ast, s, scratch) ? sumEvidence(scratch) : -1;
}

/** Evaluates the query; `hits` receives the evidence of the terms that made it true. */
function evaluate(node: QueryNode, s: AnalyzedStory, hits: Hit[]): boolean {
  switch (node.type) {
    case 'term': {
      if (node.match === 'value') {
        const value = node.words[0]!;
        const ok = node.scope === 'lang' ? s.lang === value : s.sources.has(value.replace(/^www\./, ''));
        if (ok) hits.push(new Hit(node.label, node.scope ?? 'source', FIELD_WEIGHT[node.scope ?? 'source'], 0, value));
        return ok;
      }
      const occ = occurrences(node, s);
      if (occ.length === 0) return false;
      hits.push(bestHit(node, occ, s));
      return true;
    }
    case 'not': {
      const mark = hits.length;
      const inner = evaluate(node.child, s, hits);
      hits.length = mark;
      return !inner;
    }
    case 'and': {
      const mark = hits.length;
      for (const c of node.children) {
        if (!evaluate(c, s, hits)) {
          hits.length = mark;
          return false;
        }
      }
      return true;
    }
    case 'or': {
      // Every true branch adds evidence: a story naming Tokyo and Osaka is more about Japan than one naming Tokyo.
      let any = false;
      for (const c of node.children) any = evaluate(c, s, hits) || any;
      return any;
    }
  }
}

const FIELD_ORDER: Record<Scope, number> = { title: 0, category: 1, summary: 2, source: 3, lang: 4 };

/** "Matched: Japan in title, Tokyo in title, Japanese in summary": the strongest three pieces of evidence. */
export function renderWhy(hits: readonly Hit[], via: string | null = null): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  const ordered = [...hits].sort((a, b) => b.weight - a.weight || FIELD_ORDER[a.field] - FIELD_ORDER[b.field] || a.at - b.at);
  for (const h of ordered) {
    const key = `${h.field}:${h.text.toLowerCase()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    parts.push(`${h.text} in ${h.field}`);
    if (parts.length === 3) break;
  }
  return `Matched: ${parts.join(', ')}${via ? ` (via ${via})` : ''}`;
}

/** One topic against one analyzed story: its score and evidence, or null when it does not match. */
export function matchTopic(topic: CompiledTopic, s: AnalyzedStory): TopicExplanation | null {
  const score = scoreOf(topic, s);
  return score < 0 || score < topic.minScore ? null : new TopicExplanation(topic.id, score, topic, s, null);
}

/** The evidence of a match, each story word once. */
function hitsOf(topic: CompiledTopic, s: AnalyzedStory): Hit[] {
  const found: Hit[] = [];
  evaluate(topic.ast, s, found);
  // One word of the story is one piece of evidence, however many terms ("patient", "patients") point at it.
  const seen = new Set<string>();
  const hits = found.length < 2 ? found : found.filter((h) => {
    const key = `${h.field}:${h.at}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return hits;
}

type TriggerKind = 'stem' | 'word' | 'value' | 'prefix';
type Trigger = { kind: TriggerKind; key: string };
/**
 * A phrase needs all its words: file it under its least common one, a word nearly every story has last
 * ("the Hague" under "hague"), then the longest, usually the rarest in news ("Bank of Japan" under "japan", not "of").
 */
function termTrigger(t: TermNode): Trigger {
  if (t.match === 'value') return { kind: 'value', key: `${t.scope === 'lang' ? 'lang' : 'src'}:${t.words[0]!.replace(/^www\./, '')}` };
  if (t.prefix) return { kind: 'prefix', key: t.words[0]! };
  let key = t.words[0]!;
  for (const w of t.words) if (wordCost(w) < wordCost(key)) key = w;
  return { kind: t.match, key };
}

/**
 * How many stories a key is expected to bring as candidates, roughly: a common word ("the", "news") or a
 * language or source is shared by most stories, a function word ("about") by many, a prefix by several words,
 * any other word by few; among those a longer one is usually rarer.
 */
function wordCost(word: string): number {
  return isCommonStem(word) ? COMMON_COST : isFrequentStem(word) ? 100 : 1 + 1 / (1 + word.length);
}
const COMMON_COST = 1000;
function keyCost(t: Trigger): number {
  if (t.kind === 'value') return COMMON_COST;
  if (t.kind === 'prefix') return isCommonPrefix(t.key) ? COMMON_COST : 10;
  return wordCost(t.key);
}
/** An AND is filed under its cheapest side: a story is evaluated against it only when it has that side's keys. */
const triggerCost = (ts: Trigger[]) => ts.reduce((n, t) => n + keyCost(t), 0);

/**
 * Keys such that a story can match the node only if it offers one of them. Parsing guarantees every
 * accepted query has some (a query that can match without any of its words is refused).
 */
function triggersOf(node: QueryNode): Trigger[] | null {
  switch (node.type) {
    case 'term':
      return [termTrigger(node)];
    case 'not':
      return null;
    case 'or': {
      const out: Trigger[] = [];
      for (const c of node.children) {
        const t = triggersOf(c);
        if (!t) return null;
        out.push(...t);
      }
      return out;
    }
    case 'and': {
      let best: Trigger[] | null = null;
      for (const c of node.children) {
        const t = triggersOf(c);
        if (t && (!best || triggerCost(t) < triggerCost(best))) best = t;
      }
      return best;
    }
  }
}

/**
 * The index's own test for one topic, on a story that was only tokenized: false when the story offers none
 * of the keys the topic is filed under, so it cannot match. Lets a preview skip indexing most stories.
 */
export function offersTriggerOf(topic: CompiledTopic): (t: TokenizedStory) => boolean {
  const triggers = triggersOf(topic.ast) ?? [];
  const keys = (kind: TriggerKind) => new Set(triggers.filter((t) => t.kind === kind).map((t) => t.key));
  const stems = keys('stem');
  const words = keys('word');
  const values = keys('value');
  const prefixes = keys('prefix');
  const prefixLengths = [...new Set([...prefixes].map((p) => p.length))];
  const offers = (token: Token) =>
    stems.has(token.stem) || words.has(token.word) || prefixLengths.some((n) => n <= token.word.length && prefixes.has(token.word.slice(0, n)));
  return (t) => {
    if (values.has(`lang:${t.lang}`)) return true;
    for (const src of t.sources) if (values.has(`src:${src}`)) return true;
    for (const field of TEXT_FIELDS) if (t.fields[field].some(offers)) return true;
    return false;
  };
}

/**
 * A topic's query compiled for the index: one flat Int32Array per topic, words replaced by ids of the
 * index's dictionary. With 100,000 topics a story's candidates are scattered over a large heap, and
 * walking each query's object tree cost a cache miss per node; a flat program costs one or two.
 *
 * Node layout (every node starts with its op and its total length, so a node can be skipped):
 *   STEM [op, len, scope, id]            one word, any form (scope: -1 any field, else a FIELD_CODE)
 *   SEQ  [op, len, scope, id1 … idN]     consecutive words (a phrase)
 *   TERM [op, len, n]                    any other term (prefix, source:, lang:): the n-th of the topic's terms
 *   AND / OR [op, len, children…]        NOT [op, len, child]
 */
const OP_STEM = 0;
const OP_SEQ = 1;
const OP_TERM = 2;
const OP_AND = 3;
const OP_OR = 4;
const OP_NOT = 5;

interface Slot {
  topic: CompiledTopic;
  /** The program's place in the arena. */
  start: number;
  length: number;
  /** Terms the program evaluates as objects (prefixes, values). */
  terms: TermNode[];
  triggers: Trigger[];
  /** Where trigger k's entry sits in its posting list, so removing it needs no search. */
  positions: number[];
}

/**
 * The slots filed under one key, in no particular order. `trigger[i]` says which of `slots[i]`'s triggers
 * filed it there: removing an entry moves the last one into its place and updates that one's position, O(1).
 * (indexOf + splice cost the length of the list, so removing n alerts filed under one word cost n².)
 */
interface Posting {
  slots: number[];
  trigger: number[];
}

/** The story as the programs read it: its dictionary words and where they are. */
interface StoryIds {
  /** Evidence codes (field × POSITIONS + position) of each dictionary word present. */
  occ: Map<number, number[]>;
  /** Dictionary id of the word at each position of each field (-1: no topic uses it). */
  idAt: Int32Array[];
}

/**
 * Inverted index over compiled topics: a story is evaluated only against the topics filed under its own
 * stems, words, source or language, so its cost grows with its words and the topics they touch, not
 * with the number of topics.
 */
export class TopicIndex {
  private readonly topics = new Map<string, CompiledTopic>();
  private readonly slotOf = new Map<string, number>();
  private readonly slots: (Slot | null)[] = [];
  private readonly freeSlots: number[] = [];
  /** Stem -> id; only grows (a removed topic's words keep their ids, which costs a few bytes each). */
  private readonly dict = new Map<string, number>();
  /** Topics (slots) filed under a dictionary id, and under other keys (prefixes, sources, languages). */
  private readonly byId = new Map<number, Posting>();
  private readonly postings: Record<Exclude<TriggerKind, 'stem'>, Map<string, Posting>> = { word: new Map(), value: new Map(), prefix: new Map() };
  /** Prefix lengths in use (with how many topics use each), so a story word is looked up only at those lengths. */
  private readonly prefixLengths = new Map<number, number>();
  /** Which slots were already taken as candidates of the current story, without a Set per story. */
  private seen = new Int32Array(0);
  private generation = 0;
  /**
   * Every program back to back in one array, found by slot through `starts`: evaluating a candidate reads
   * one place in memory, however many topics there are. Removed programs leave holes until compaction.
   */
  private arena = new Int32Array(1024);
  private arenaUsed = 0;
  private arenaWasted = 0;
  private starts = new Int32Array(64);
  /** Copied from the topics, so rejecting a candidate never touches a topic object. */
  private minScores = new Float64Array(64);
  /** By slot, so reporting a match reads two arrays rather than the slot's and the topic's objects. */
  private readonly topicOf: (CompiledTopic | undefined)[] = [];
  private readonly idOfSlot: (string | undefined)[] = [];
  /** How many topics have a parent: with none (readers' alerts only), matches need no parent pass. */
  private withParent = 0;

  get hasParents(): boolean {
    return this.withParent > 0;
  }

  constructor(topics: Iterable<CompiledTopic> = []) {
    for (const t of topics) this.add(t);
  }

  get size() {
    return this.topics.size;
  }

  get(id: string): CompiledTopic | undefined {
    return this.topics.get(id);
  }

  all(): IterableIterator<CompiledTopic> {
    return this.topics.values();
  }

  private idOf(stem: string): number {
    let id = this.dict.get(stem);
    if (id === undefined) this.dict.set(stem, (id = this.dict.size));
    return id;
  }

  private compile(node: QueryNode, out: number[], terms: TermNode[]): void {
    const start = out.length;
    switch (node.type) {
      case 'term':
        if (node.match === 'stem' && node.words.length === 1) {
          out.push(OP_STEM, 4, node.scope ? FIELD_CODE[node.scope] : -1, this.idOf(node.words[0]!));
        } else if (node.match === 'stem') {
          out.push(OP_SEQ, 3 + node.words.length, node.scope ? FIELD_CODE[node.scope] : -1, ...node.words.map((w) => this.idOf(w)));
        } else {
          out.push(OP_TERM, 3, terms.length);
          terms.push(node);
        }
        return;
      case 'not':
        out.push(OP_NOT, 0);
        this.compile(node.child, out, terms);
        break;
      default:
        out.push(node.type === 'and' ? OP_AND : OP_OR, 0);
        for (const c of node.children) this.compile(c, out, terms);
    }
    out[start + 1] = out.length - start;
  }

  /** Files (or unfiles) the slot's k-th trigger. */
  private file(slot: number, k: number, add: boolean): void {
    const owner = this.slots[slot]!;
    const t = owner.triggers[k]!;
    const map: Map<string | number, Posting> = t.kind === 'stem' ? this.byId : this.postings[t.kind];
    const key = t.kind === 'stem' ? this.idOf(t.key) : t.key;
    let list = map.get(key);
    if (add) {
      if (!list) map.set(key, (list = { slots: [], trigger: [] }));
      owner.positions[k] = list.slots.length;
      list.slots.push(slot);
      list.trigger.push(k);
    } else if (list) {
      const i = owner.positions[k]!;
      const last = list.slots.length - 1;
      if (i !== last) {
        const movedSlot = list.slots[last]!;
        const movedTrigger = list.trigger[last]!;
        list.slots[i] = movedSlot;
        list.trigger[i] = movedTrigger;
        this.slots[movedSlot]!.positions[movedTrigger] = i;
      }
      list.slots.pop();
      list.trigger.pop();
      if (list.slots.length === 0) map.delete(key);
    }
    if (t.kind === 'prefix') {
      const n = (this.prefixLengths.get(t.key.length) ?? 0) + (add ? 1 : -1);
      if (n <= 0) this.prefixLengths.delete(t.key.length);
      else this.prefixLengths.set(t.key.length, n);
    }
  }

  /** Adds or replaces a topic. */
  add(topic: CompiledTopic): void {
    if (this.topics.has(topic.id)) this.remove(topic.id);
    const triggers = triggersOf(topic.ast);
    if (!triggers) throw new Error(`topic ${topic.id}: query "${topic.query}" has no word a story must contain`);
    const code: number[] = [];
    const terms: TermNode[] = [];
    this.compile(topic.ast, code, terms);
    const slot = this.freeSlots.pop() ?? this.slots.length;
    if (this.seen.length <= slot) {
      const size = Math.max(64, this.seen.length * 2, slot + 1);
      this.seen = grow(this.seen, size);
      this.starts = grow(this.starts, size);
      this.minScores = grow(this.minScores, size);
    }
    if (this.arenaUsed + code.length > this.arena.length) this.arena = grow(this.arena, Math.max(this.arena.length * 2, this.arenaUsed + code.length));
    this.arena.set(code, this.arenaUsed);
    this.slots[slot] = { topic, start: this.arenaUsed, length: code.length, terms, triggers, positions: [] };
    this.starts[slot] = this.arenaUsed;
    this.minScores[slot] = topic.minScore;
    this.topicOf[slot] = topic;
    this.idOfSlot[slot] = topic.id;
    this.arenaUsed += code.length;
    if (topic.parent) this.withParent++;
    this.topics.set(topic.id, topic);
    this.slotOf.set(topic.id, slot);
    for (let k = 0; k < triggers.length; k++) this.file(slot, k, true);
  }

  remove(id: string): void {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return;
    for (let k = 0; k < this.slots[slot]!.triggers.length; k++) this.file(slot, k, false);
    if (this.slots[slot]!.topic.parent) this.withParent--;
    this.arenaWasted += this.slots[slot]!.length;
    this.slots[slot] = null;
    this.topicOf[slot] = undefined;
    this.idOfSlot[slot] = undefined;
    this.freeSlots.push(slot);
    this.slotOf.delete(id);
    this.topics.delete(id);
    if (this.arenaWasted > 4096 && this.arenaWasted * 2 > this.arenaUsed) this.compact();
  }

  /** Rewrites the arena without the holes removed programs left. */
  private compact(): void {
    const arena = new Int32Array(Math.max(1024, (this.arenaUsed - this.arenaWasted) * 2));
    let used = 0;
    this.slots.forEach((slot, i) => {
      if (!slot) return;
      arena.set(this.arena.subarray(slot.start, slot.start + slot.length), used);
      slot.start = used;
      this.starts[i] = used;
      used += slot.length;
    });
    this.arena = arena;
    this.arenaUsed = used;
    this.arenaWasted = 0;
  }

  /** Slots of the topics that could match the story: the only ones evaluated. */
  private candidateSlots(s: AnalyzedStory, ids: StoryIds): number[] {
    const gen = ++this.generation;
    const seen = this.seen;
    const out: number[] = [];
    const collect = (posting: Posting | undefined) => {
      if (!posting) return;
      for (const slot of posting.slots) {
        if (seen[slot] === gen) continue;
        seen[slot] = gen;
        out.push(slot);
      }
    };
    for (const id of ids.occ.keys()) collect(this.byId.get(id));
    const { word, value, prefix } = this.postings;
    if (word.size > 0) for (const k of s.byWord.keys()) collect(word.get(k));
    if (value.size > 0) {
      for (const src of s.sources) collect(value.get(`src:${src}`));
      collect(value.get(`lang:${s.lang}`));
    }
    if (prefix.size > 0) {
      for (const w of s.byWord.keys()) for (const len of this.prefixLengths.keys()) if (len <= w.length) collect(prefix.get(w.slice(0, len)));
    }
    return out;
  }

  /** Topics that could match the story. */
  candidates(s: AnalyzedStory): CompiledTopic[] {
    return this.candidateSlots(s, this.storyIds(s)).map((slot) => this.topicOf[slot]!);
  }

  private storyIds(s: AnalyzedStory): StoryIds {
    const occ = new Map<number, number[]>();
    // The big dictionary is consulted once per distinct stem; positions then use this small map.
    const local = new Map<string, number>();
    for (const [stem, list] of s.byStem) {
      const id = this.dict.get(stem);
      if (id === undefined) continue;
      local.set(stem, id);
      occ.set(id, list.map((o) => FIELD_CODE[o.field] * POSITIONS + o.at));
    }
    const idAt = TEXT_FIELDS.map(() => new Int32Array(0));
    for (const field of TEXT_FIELDS) {
      const tokens = s.fields[field];
      const ids = new Int32Array(tokens.length);
      for (let i = 0; i < tokens.length; i++) ids[i] = local.get(tokens[i]!.stem) ?? -1;
      idAt[FIELD_CODE[field]] = ids;
    }
    return { occ, idAt };
  }

  /** Direct matches of the story (no parents), each scored; evidence and why are built on demand. */
  match(s: AnalyzedStory): TopicExplanation[] {
    const ids = this.storyIds(s);
    const slots = this.candidateSlots(s, ids);
    const out: TopicExplanation[] = [];
    for (const slot of slots) {
      scratch.length = 0;
      if (!run(this.arena, this.starts[slot]!, ids, s, this.slots, slot, scratch)) continue;
      const score = sumEvidence(scratch);
      if (score >= this.minScores[slot]!) out.push(new TopicExplanation(this.idOfSlot[slot]!, score, this.topicOf[slot]!, s, null));
    }
    return out;
  }
}

function grow<T extends Int32Array | Float64Array>(a: T, size: number): T {
  const bigger = new (a.constructor as new (n: number) => T)(size);
  bigger.set(a);
  return bigger;
}

/** The best evidence among codes: the strongest field, then the earliest position. */
function bestCode(codes: readonly number[], scope: number): number {
  let best = -1;
  for (const c of codes) {
    const field = Math.floor(c / POSITIONS);
    if (scope >= 0 && field !== scope) continue;
    if (best < 0) {
      best = c;
      continue;
    }
    const bf = Math.floor(best / POSITIONS);
    if (CODE_WEIGHT[field]! > CODE_WEIGHT[bf]! || (field === bf && c < best)) best = c;
  }
  return best;
}

/** Evaluates the program node at `at`, pushing evidence codes as collectEvidence does for the query tree. */
function run(p: Int32Array, at: number, ids: StoryIds, s: AnalyzedStory, slots: readonly (Slot | null)[], slot: number, out: number[]): boolean {
  switch (p[at]) {
    case OP_STEM: {
      const codes = ids.occ.get(p[at + 3]!);
      if (!codes) return false;
      const best = bestCode(codes, p[at + 2]!);
      if (best < 0) return false;
      out.push(best);
      return true;
    }
    case OP_SEQ: {
      const codes = ids.occ.get(p[at + 3]!);
      if (!codes) return false;
      const n = p[at + 1]! - 3;
      const scope = p[at + 2]!;
      let best = -1;
      for (const c of codes) {
        const field = Math.floor(c / POSITIONS);
        if (scope >= 0 && field !== scope) continue;
        const pos = c - field * POSITIONS;
        const row = ids.idAt[field]!;
        let ok = true;
        for (let k = 1; k < n && ok; k++) {
          ok = row[pos + k] === p[at + 3 + k] && (field !== FIELD_CODE.category || s.segments[pos] === s.segments[pos + k]);
        }
        if (ok && (best < 0 || bestCode([best, c], -1) === c)) best = c;
      }
      if (best < 0) return false;
      out.push(best);
      return true;
    }
    case OP_TERM: {
      // Only here is the slot's object read: most programs never need it.
      const term = slots[slot]!.terms[p[at + 2]!]!;
      if (term.match === 'value') {
        if (!occurs(term, s)) return false;
        out.push(FIELD_CODE[term.scope ?? 'source'] * POSITIONS);
        return true;
      }
      const occ = occurrences(term, s);
      if (occ.length === 0) return false;
      const best = bestOccurrence(occ);
      out.push(FIELD_CODE[best.field] * POSITIONS + best.at);
      return true;
    }
    case OP_NOT: {
      const mark = out.length;
      const inner = run(p, at + 2, ids, s, slots, slot, out);
      out.length = mark;
      return !inner;
    }
    case OP_AND: {
      const mark = out.length;
      const end = at + p[at + 1]!;
      for (let c = at + 2; c < end; c += p[c + 1]!) {
        if (!run(p, c, ids, s, slots, slot, out)) {
          out.length = mark;
          return false;
        }
      }
      return true;
    }
    default: {
      let any = false;
      const end = at + p[at + 1]!;
      for (let c = at + 2; c < end; c += p[c + 1]!) any = run(p, c, ids, s, slots, slot, out) || any;
      return any;
    }
  }
}

/**
 * Adds each matched topic's ancestors: a match on cricket also counts for sports, with the child's
 * evidence, unless the parent matched more strongly on its own.
 */
/** Best first; plain code-unit order for ties, since localeCompare (ICU collation) costs more than the matching. */
const byScore = (a: TopicExplanation, b: TopicExplanation) => b.score - a.score || (a.topicId < b.topicId ? -1 : a.topicId > b.topicId ? 1 : 0);

function withParents(direct: TopicExplanation[], lookup: (id: string) => { name: string; parent: string | null } | undefined): TopicExplanation[] {
  // Readers' own alerts have no parent: most stories need no second pass.
  if (!direct.some((m) => lookup(m.topicId)?.parent)) return direct.sort(byScore);
  const all = new Map(direct.map((m) => [m.topicId, m]));
  for (const m of direct) {
    const childName = lookup(m.topicId)?.name ?? m.topicId;
    for (let parent = lookup(m.topicId)?.parent ?? null, hops = 0; parent && hops < 8; parent = lookup(parent)?.parent ?? null, hops++) {
      const existing = all.get(parent);
      if (!existing || existing.score < m.score) {
        all.set(parent, m.through(parent, childName));
      }
    }
  }
  return [...all.values()].sort(byScore);
}

/** Matches one story against the index, with the evidence of each match; parents of matched topics match too. */
export function explainStory(story: StoryText | AnalyzedStory, index: TopicIndex, limits?: StoryLimits): TopicExplanation[] {
  const s = 'byStem' in story ? story : analyzeStory(story, limits);
  const direct = index.match(s);
  return index.hasParents ? withParents(direct, (id) => index.get(id)) : direct.sort(byScore);
}

/** The same result as explainStory, found by evaluating every topic: the baseline the index is measured against. */
export function explainStoryLinear(story: StoryText | AnalyzedStory, topics: readonly CompiledTopic[], limits?: StoryLimits): TopicExplanation[] {
  const s = 'byStem' in story ? story : analyzeStory(story, limits);
  const byId = new Map(topics.map((t) => [t.id, t]));
  const direct: TopicExplanation[] = [];
  for (const topic of topics) {
    const m = matchTopic(topic, s);
    if (m) direct.push(m);
  }
  return withParents(direct, (id) => byId.get(id));
}

/** The matched topics of one story, as the fan-out and the alert payloads carry them. */
export function matchStory(story: StoryText | AnalyzedStory, index: TopicIndex, limits?: StoryLimits): TopicMatch[] {
  return explainStory(story, index, limits).map(({ topicId, score, why }) => ({ topicId, score, why }));
}

/** Compiles catalog topics into an index; a bad catalog query fails with the topic named. */
export function compileTopics(defs: readonly TopicDefinition[], limits?: QueryLimits): TopicIndex {
  const index = new TopicIndex();
  for (const def of defs) {
    try {
      index.add(compileTopic(def, limits));
    } catch (err) {
      throw new Error(`topic "${def.id}": ${(err as Error).message}`);
    }
  }
  return index;
}
