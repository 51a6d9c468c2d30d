import { analyzeText, foldWord } from './analyze.ts';

/**
 * The topic query language: terms, "quoted phrases", AND / OR / NOT / -term, parentheses, prefix term*,
 * field scopes (title: summary: category: source: lang:), implicit AND between terms, case-insensitive.
 *
 *   query   := or
 *   or      := and ("OR" and)*
 *   and     := unary (["AND"] unary)*
 *   unary   := ("NOT" | "-") unary | primary
 *   primary := "(" or ")" | scope ":" primary | "phrase" | word | word*
 */

export type TextField = 'title' | 'summary' | 'category';
export type Scope = TextField | 'source' | 'lang';
export const SCOPES: readonly Scope[] = ['title', 'summary', 'category', 'source', 'lang'];

export interface TermNode {
  type: 'term';
  /** Index of the term within its query: hits are reported per term. */
  id: number;
  /** null: any of title, summary and category. */
  scope: Scope | null;
  /**
   * stem: words and phrases, matched on English stems; word: prefixes, matched on folded words;
   * value: source:/lang: scopes, matched against the story's feed, host or language.
   */
  match: 'stem' | 'word' | 'value';
  /** A sequence of more than one word is matched on consecutive positions within one field. */
  words: string[];
  /** The last word is a prefix (term*). */
  prefix: boolean;
  /** As the reader wrote it, for explanations and errors. */
  label: string;
  position: number;
}
export type QueryNode =
  | TermNode
  | { type: 'and'; children: QueryNode[] }
  | { type: 'or'; children: QueryNode[] }
  | { type: 'not'; child: QueryNode };

export interface QueryLimits {
  maxChars: number;
  maxTerms: number;
}
export const DEFAULT_QUERY_LIMITS: QueryLimits = { maxChars: 1000, maxTerms: 64 };
const MAX_DEPTH = 16;
const MIN_PREFIX = 3;

export class QueryError extends Error {
  override name = 'QueryError';
  /**
   * @param position 0-based offset in the query the problem was found at
   * @param expected what would have been valid there ('' for refusals of a whole query)
   * @param code syntax: not a valid query; refused: valid, but it would match (nearly) every story; too-long: past a limit
   */
  constructor(
    readonly position: number,
    readonly expected: string,
    message: string,
    readonly code: 'syntax' | 'refused' | 'too-long' = 'syntax',
  ) {
    super(message);
  }
  toJSON() {
    return { error: this.message, position: this.position, expected: this.expected, code: this.code };
  }
}

type Lexeme =
  | { kind: 'lparen' | 'rparen' | 'minus' | 'end'; pos: number }
  | { kind: 'phrase'; text: string; pos: number }
  | { kind: 'scope'; scope: Scope; pos: number }
  | { kind: 'word'; text: string; pos: number };

const SPECIAL = new Set(['(', ')', '"']);
const isSpace = (c: string) => /\s/u.test(c);

function lex(q: string): Lexeme[] {
  const out: Lexeme[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i]!;
    if (isSpace(c)) {
      i++;
    } else if (c === '(') {
      out.push({ kind: 'lparen', pos: i++ });
    } else if (c === ')') {
      out.push({ kind: 'rparen', pos: i++ });
    } else if (c === '"' || c === '\u201c' || c === '\u201d') {
      const close = q.slice(i + 1).search(/["\u201c\u201d]/u);
      if (close < 0) throw new QueryError(i, 'a closing "', `at character ${i + 1}: this quote is never closed: expected a closing " after the phrase`);
      out.push({ kind: 'phrase', text: q.slice(i + 1, i + 1 + close), pos: i });
      i += close + 2;
    } else if (c === '-' && i + 1 < q.length && !isSpace(q[i + 1]!) && (i === 0 || isSpace(q[i - 1]!) || q[i - 1] === '(')) {
      out.push({ kind: 'minus', pos: i++ });
    } else {
      const start = i;
      while (i < q.length && !isSpace(q[i]!) && !SPECIAL.has(q[i]!) && q[i] !== '\u201c' && q[i] !== '\u201d') {
        // "title:" opens a scope; "10:30" is just a word.
        if (q[i] === ':' && i > start && /^\p{L}+$/u.test(q.slice(start, i))) break;
        i++;
      }
      const text = q.slice(start, i);
      if (q[i] === ':') {
        const name = text.toLowerCase();
        if (!(SCOPES as readonly string[]).includes(name)) {
          throw new QueryError(start, `one of ${SCOPES.map((s) => `${s}:`).join(', ')}`, `at character ${start + 1}: unknown field "${text}:": expected one of ${SCOPES.map((s) => `${s}:`).join(', ')} (quote the text to search for it literally)`);
        }
        out.push({ kind: 'scope', scope: name as Scope, pos: start });
        i++;
      } else {
        out.push({ kind: 'word', text, pos: start });
      }
    }
  }
  out.push({ kind: 'end', pos: q.length });
  return out;
}

const OPERATORS = new Set(['AND', 'OR', 'NOT']);
const operatorOf = (l: Lexeme) => (l.kind === 'word' && OPERATORS.has(l.text.toUpperCase()) ? l.text.toUpperCase() : null);
function describe(l: Lexeme): string {
  switch (l.kind) {
    case 'end':
      return 'the end of the query';
    case 'rparen':
      return '")"';
    case 'lparen':
      return '"("';
    case 'minus':
      return '"-"';
    case 'scope':
      return `${l.scope}:`;
    default:
      return `"${l.text}"`;
  }
}
const TERM_EXPECTED = 'a term, a "quoted phrase", "(" or a field such as title:';

class Parser {
  private at = 0;
  private terms = 0;
  constructor(private readonly lexemes: Lexeme[], private readonly limits: QueryLimits) {}

  private peek(): Lexeme {
    return this.lexemes[this.at]!;
  }
  private next(): Lexeme {
    return this.lexemes[this.at++]!;
  }
  private fail(l: Lexeme, expected: string, context = ''): never {
    throw new QueryError(l.pos, expected, `at character ${l.pos + 1}: expected ${expected}${context}, found ${describe(l)}`);
  }

  parseQuery(): QueryNode {
    const node = this.parseOr(0);
    const l = this.peek();
    if (l.kind !== 'end') this.fail(l, l.kind === 'rparen' ? 'the end of the query (this ")" has no matching "(")' : 'AND, OR or the end of the query');
    return node;
  }

  private parseOr(depth: number): QueryNode {
    const children = [this.parseAnd(depth)];
    while (operatorOf(this.peek()) === 'OR') {
      this.next();
      children.push(this.parseAnd(depth, ' after OR'));
    }
    return children.length === 1 ? children[0]! : { type: 'or', children };
  }

  private startsUnary(l: Lexeme): boolean {
    const op = operatorOf(l);
    if (op) return op === 'NOT';
    return l.kind === 'word' || l.kind === 'phrase' || l.kind === 'lparen' || l.kind === 'minus' || l.kind === 'scope';
  }

  private parseAnd(depth: number, context = ''): QueryNode {
    const children = [this.parseUnary(depth, context)];
    for (;;) {
      const l = this.peek();
      if (operatorOf(l) === 'AND') {
        this.next();
        children.push(this.parseUnary(depth, ' after AND'));
      } else if (this.startsUnary(l)) {
        children.push(this.parseUnary(depth));
      } else {
        break;
      }
    }
    return children.length === 1 ? children[0]! : { type: 'and', children };
  }

  private parseUnary(depth: number, context = ''): QueryNode {
    const l = this.peek();
    if (operatorOf(l) === 'NOT' || l.kind === 'minus') {
      this.next();
      this.checkDepth(l, depth + 1);
      return { type: 'not', child: this.parseUnary(depth + 1, l.kind === 'minus' ? ' after "-"' : ' after NOT') };
    }
    return this.parsePrimary(depth, null, context);
  }

  private checkDepth(l: Lexeme, depth: number) {
    if (depth > MAX_DEPTH) throw new QueryError(l.pos, 'fewer nested parentheses', `at character ${l.pos + 1}: the query nests deeper than ${MAX_DEPTH} levels`, 'too-long');
  }

  private parsePrimary(depth: number, scope: Scope | null, context: string): QueryNode {
    const l = this.next();
    if (l.kind === 'lparen') {
      this.checkDepth(l, depth + 1);
      const inner = this.parseOr(depth + 1);
      const close = this.next();
      if (close.kind !== 'rparen') this.fail(close, '")" to close the "(" at character ' + (l.pos + 1));
      return scope ? applyScope(inner, scope) : inner;
    }
    if (l.kind === 'scope') {
      if (scope) this.fail(l, TERM_EXPECTED, ` after ${scope}:`);
      return this.parsePrimary(depth, l.scope, ` after ${l.scope}:`);
    }
    if (l.kind === 'phrase') return this.term(l, l.text, scope, true);
    if (l.kind === 'word' && !operatorOf(l)) return this.term(l, l.text, scope, false);
    return this.fail(l, TERM_EXPECTED, context);
  }

  private term(l: Lexeme, raw: string, scope: Scope | null, quoted: boolean): TermNode {
    if (++this.terms > this.limits.maxTerms) {
      throw new QueryError(l.pos, `at most ${this.limits.maxTerms} terms`, `at character ${l.pos + 1}: the query has more than ${this.limits.maxTerms} terms`, 'too-long');
    }
    const base = { type: 'term' as const, id: this.terms - 1, scope, label: raw, position: l.pos };
    if (scope === 'source' || scope === 'lang') {
      const value = raw.trim().toLowerCase();
      if (scope === 'lang' && !/^[a-z]{2,3}$/.test(value)) {
        throw new QueryError(l.pos, 'a two-letter language code such as en, ja or hi', `at character ${l.pos + 1}: expected a two-letter language code such as en, ja or hi after lang:, found "${raw}"`);
      }
      if (value === '' || /\s/.test(value)) throw new QueryError(l.pos, 'a feed id or host name', `at character ${l.pos + 1}: expected a feed id or a host name after source:, found "${raw}"`);
      return { ...base, match: 'value', words: [value], prefix: false };
    }
    const star = !quoted && raw.endsWith('*');
    const body = star ? raw.slice(0, -1) : raw;
    if (!quoted && body.includes('*')) {
      throw new QueryError(l.pos + body.indexOf('*'), 'a "*" only at the end of a word', `at character ${l.pos + body.indexOf('*') + 1}: "*" is only allowed at the end of a word (prefix search such as japan*)`);
    }
    const tokens = analyzeText(body);
    if (tokens.length === 0) {
      this.fail(l, quoted ? 'a phrase with at least one word' : 'a term with at least one letter or digit');
    }
    if (star) {
      if (tokens.length !== 1) {
        throw new QueryError(l.pos, 'a single word before "*"', `at character ${l.pos + 1}: a prefix search takes one word before "*", found "${raw}"`);
      }
      const word = foldWord(tokens[0]!.word);
      if ([...word].length < MIN_PREFIX) {
        throw new QueryError(l.pos, `at least ${MIN_PREFIX} letters before "*"`, `at character ${l.pos + 1}: a prefix needs at least ${MIN_PREFIX} letters before "*" ("${raw}" would match almost every story)`, 'refused');
      }
      return { ...base, match: 'word', words: [word], prefix: true };
    }
    // Phrases match any form of their words too ("foreign minister" finds "foreign ministers"), in order and adjacent.
    return { ...base, match: 'stem', words: tokens.map((t) => t.stem), prefix: false };
  }
}

function applyScope(node: QueryNode, scope: Scope): QueryNode {
  switch (node.type) {
    case 'term':
      if (node.scope) return node;
      if (scope === 'source' || scope === 'lang') {
        throw new QueryError(node.position, 'a plain value', `at character ${node.position + 1}: ${scope}:( ) takes plain values, write ${scope}:value for each`);
      }
      return { ...node, scope };
    case 'not':
      return { type: 'not', child: applyScope(node.child, scope) };
    default:
      return { type: node.type, children: node.children.map((c) => applyScope(c, scope)) };
  }
}

/** Words that nearly every English story contains: a query that any of them satisfies matches nearly everything. */
const COMMON_WORDS = ['a', 'an', 'the', 'of', 'in', 'on', 'at', 'to', 'for', 'and', 'or', 'is', 'are', 'was', 'be', 'by', 'with', 'as', 'it', 'its', 'from', 'that', 'this', 'has', 'have', 'after', 'new', 'news', 'says', 'said', 'will', 'over', 'more', 'year', 'day', 'time', 'people', 'report', 'story'];
const COMMON = new Set(COMMON_WORDS.flatMap((w) => analyzeText(w).map((t) => t.stem)));

/** Is this stem one of the words nearly every story contains? */
export const isCommonStem = (stem: string): boolean => COMMON.has(stem);

/**
 * Function words many stories contain, though not nearly all: a query may use them, but the index should not
 * file a topic under one when it has a rarer word ("news about japan" under "japan", not "about").
 */
const FREQUENT = new Set(
  ['about', 'into', 'than', 'then', 'they', 'their', 'there', 'were', 'which', 'while', 'would', 'could', 'should', 'been', 'also', 'what', 'when', 'where', 'who', 'why', 'how', 'but', 'all', 'not', 'can', 'had', 'his', 'her', 'she', 'he', 'we', 'you', 'our', 'out', 'up', 'down', 'off', 'most', 'some', 'such', 'only', 'other', 'these', 'those', 'because', 'before', 'against', 'under', 'between', 'during', 'still', 'just', 'back', 'if', 'no', 'so', 'them', 'him', 'may', 'one', 'two']
    .flatMap((w) => analyzeText(w).map((t) => t.stem)),
);
export const isFrequentStem = (stem: string): boolean => FREQUENT.has(stem);

/** Does a prefix search for this start a common word ("new*" finds "news"), and so match nearly every story? */
export const isCommonPrefix = (prefix: string): boolean => COMMON_WORDS.some((w) => w.startsWith(prefix));

/** A term that common words alone satisfy: a common word, a phrase of common words ("of the"), a prefix of one. */
function isCommonTerm(t: TermNode): boolean {
  if (t.match === 'stem') return t.words.every(isCommonStem);
  return t.prefix && isCommonPrefix(t.words[0]!);
}

/** Can the node be true for a story that contains none of the query's words? */
function canMatchWithoutWords(node: QueryNode): boolean {
  switch (node.type) {
    case 'term':
      return false;
    case 'not':
      return true;
    case 'and':
      return node.children.every(canMatchWithoutWords);
    case 'or':
      return node.children.some(canMatchWithoutWords);
  }
}

/** Is the node satisfied by common words alone (and the absence of others)? */
function satisfiedByCommonWords(node: QueryNode): boolean {
  switch (node.type) {
    case 'term':
      return isCommonTerm(node);
    case 'not':
      return true;
    case 'and':
      return node.children.every(satisfiedByCommonWords);
    case 'or':
      return node.children.some(satisfiedByCommonWords);
  }
}

function firstCommon(node: QueryNode): TermNode | null {
  if (node.type === 'term') return isCommonTerm(node) ? node : null;
  if (node.type === 'not') return null;
  for (const c of node.children) {
    const t = firstCommon(c);
    if (t) return t;
  }
  return null;
}

/**
 * Parses and checks a query. Throws QueryError with the position and what was expected; also refuses a
 * valid query that would match (nearly) every story, so no topic can flood its followers.
 */
export function parseQuery(query: string, limits: QueryLimits = DEFAULT_QUERY_LIMITS): QueryNode {
  if (query.length > limits.maxChars) {
    throw new QueryError(limits.maxChars, `at most ${limits.maxChars} characters`, `the query is ${query.length} characters long: at most ${limits.maxChars} are allowed`, 'too-long');
  }
  const ast = new Parser(lex(query), limits).parseQuery();
  if (canMatchWithoutWords(ast)) {
    throw new QueryError(0, 'a word the story must contain', 'the query would match stories that contain none of its words (a query that is only NOT/-terms, or has such a branch in an OR): add a word the story must contain, e.g. "sports -cricket"', 'refused');
  }
  if (satisfiedByCommonWords(ast)) {
    const t = firstCommon(ast);
    const common = t?.prefix ? `"${t.label}" finds "${COMMON_WORDS.find((w) => w.startsWith(t.words[0]!))}", which appears` : `"${t?.label ?? ''}" appears`;
    throw new QueryError(t?.position ?? 0, 'a more specific word', `the query would match almost every story: ${common} in most news; use a more specific word`, 'refused');
  }
  return ast;
}

/** Every term of the query, in order. */
export function termsOf(node: QueryNode, out: TermNode[] = []): TermNode[] {
  if (node.type === 'term') out.push(node);
  else if (node.type === 'not') termsOf(node.child, out);
  else for (const c of node.children) termsOf(c, out);
  return out;
}
