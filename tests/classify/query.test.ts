import { describe, expect, it } from 'vitest';
import { parseQuery, QueryError, type QueryNode } from '../../src/classify/query.ts';

/** A compact rendering of the AST, so each case reads as one line. */
function show(n: QueryNode): string {
  switch (n.type) {
    case 'term':
      return `${n.scope ? `${n.scope}:` : ''}${n.words.length > 1 ? `"${n.words.join(' ')}"` : n.words[0]}${n.prefix ? '*' : ''}`;
    case 'not':
      return `-${show(n.child)}`;
    default:
      return `${n.type}(${n.children.map(show).join(' ')})`;
  }
}

describe('parseQuery: the language', () => {
  it.each([
    ['Japan', 'japan'],
    ['Jaishankar AND (Japan OR Quad)', 'and(jaishankar or(japan quad))'],
    ['"Jaishankar" AND (Japan OR Quad)', 'and(jaishankar or(japan quad))'],
    ['japan india', 'and(japan india)'],
    ['japan OR india tokyo', 'or(japan and(india tokyo))'],
    ['japan or india', 'or(japan india)'],
    ['sports -cricket', 'and(sport -cricket)'],
    ['sports NOT cricket', 'and(sport -cricket)'],
    ['sports AND NOT (cricket OR football)', 'and(sport -or(cricket footbal))'],
    ['"foreign ministers" talks', 'and("foreign minist" talk)'],
    ['indo-pacific', '"indo pacif"'],
    ['jaishank*', 'jaishank*'],
    ['title:japan summary:tokyo', 'and(title:japan summary:tokyo)'],
    ['TITLE:(japan OR tokyo)', 'or(title:japan title:tokyo)'],
    ['category:cricket source:wire lang:ja', 'and(category:cricket source:wire lang:ja)'],
    ['São Paulo', 'and(sao paulo)'],
    ['東京', '東京'],
    ['भारत', 'भारत'],
    ['10:30 meeting', 'and("10 30" meet)'],
  ])('%s', (query, expected) => {
    expect(show(parseQuery(query))).toBe(expected);
  });
});

describe('parseQuery: errors say where and what was expected', () => {
  const fail = (query: string, limits?: { maxChars: number; maxTerms: number }) => {
    try {
      parseQuery(query, limits);
    } catch (err) {
      expect(err).toBeInstanceOf(QueryError);
      return err as QueryError;
    }
    throw new Error(`"${query}" was accepted`);
  };

  it.each([
    ['japan AND', 9, 'a term', 'syntax'],
    ['japan OR', 8, 'a term', 'syntax'],
    ['(japan OR india', 15, '")"', 'syntax'],
    ['japan )', 6, 'the end of the query', 'syntax'],
    ['"tokyo talks', 0, 'a closing "', 'syntax'],
    ['foo:bar', 0, 'one of title:', 'syntax'],
    ['japan AND OR india', 10, 'a term', 'syntax'],
    ['ja*', 0, 'at least 3 letters', 'refused'],
    ['jap*an', 3, '"*" only at the end', 'syntax'],
    ['lang:japanese', 5, 'language code', 'syntax'],
    ['""', 0, 'a phrase with at least one word', 'syntax'],
    ['', 0, 'a term', 'syntax'],
    ['NOT cricket', 0, 'a word the story must contain', 'refused'],
    ['-cricket', 0, 'a word the story must contain', 'refused'],
    ['japan OR -cricket', 0, 'a word the story must contain', 'refused'],
    ['the', 0, 'a more specific word', 'refused'],
    ['news OR japan', 0, 'a more specific word', 'refused'],
    // Phrases of common words and prefixes of one match nearly every story just as well.
    ['"of the"', 0, 'a more specific word', 'refused'],
    ['japan OR "in the"', 9, 'a more specific word', 'refused'],
    ['the*', 0, 'a more specific word', 'refused'],
    ['title:new*', 6, 'a more specific word', 'refused'],
  ])('%j fails at %i expecting %s', (query, position, expected, code) => {
    const err = fail(query);
    expect(err.position).toBe(position);
    expect(err.expected).toContain(expected);
    expect(err.code).toBe(code);
    expect(err.message.length).toBeGreaterThan(10);
  });

  it.each([
    ['"of the"', 'the query would match almost every story: "of the" appears in most news; use a more specific word'],
    ['new*', 'the query would match almost every story: "new*" finds "new", which appears in most news; use a more specific word'],
  ])('says why %j is refused, as for "the"', (query, message) => {
    expect(fail(query).message).toBe(message);
  });

  it('accepts common words beside a specific one, and prefixes that start no common word', () => {
    for (const q of ['"of the" zyzzyva', 'new* AND zyzzyva', 'thai*', '"the Hague"']) expect(() => parseQuery(q)).not.toThrow();
  });

  it('says why a pure negation is refused', () => {
    expect(fail('NOT cricket').message).toMatch(/contain none of its words/);
  });

  it('bounds the length and the number of terms', () => {
    expect(fail('japan '.repeat(200), { maxChars: 1000, maxTerms: 500 }).code).toBe('too-long');
    const terms = fail(Array.from({ length: 10 }, (_, i) => `word${i}`).join(' OR '), { maxChars: 1000, maxTerms: 5 });
    expect(terms.code).toBe('too-long');
    expect(terms.message).toContain('more than 5 terms');
    expect(fail('('.repeat(40) + 'japan' + ')'.repeat(40)).code).toBe('too-long');
  });
});
