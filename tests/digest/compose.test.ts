import { describe, expect, it } from 'vitest';
import { renderDigestEmail } from '../../src/deliver/email/render.ts';
import { collapseNearDuplicates, composeDigest, titleSimilarity } from '../../src/digest/compose.ts';
import type { Story } from '../../src/model.ts';

const s = (id: string, title: string, url: string, publishedAt: number): Story => ({
  id, feedId: 'f', guid: null, url, title, summary: `${title} summary`, categories: [], publishedAt, firstSeenAt: publishedAt,
});

describe('digest composition', () => {
  const a = s('a', 'India and Japan sign semiconductor pact in Tokyo', 'https://w1.test/a', 3);
  const a2 = s('a2', 'Japan and India sign semiconductor pact in Tokyo', 'https://w2.test/x', 2);
  const b = s('b', 'Kerala beat Karnataka in Ranji Trophy', 'https://w1.test/b', 1);
  const c = s('c', 'Different story on the same page', 'https://www.w1.test/b/?utm_source=rss', 0);
  const stories = new Map([a, a2, b, c].map((x) => [x.id, x]));
  const names = (id: string) => ({ japan: 'Japan', india: 'India', cricket: 'Cricket' })[id] ?? id;

  it('measures title likeness on words, ignoring case, order and filler', () => {
    expect(titleSimilarity(a.title, a2.title)).toBe(1);
    expect(titleSimilarity(a.title, b.title)).toBe(0);
    expect(titleSimilarity('Magnitude 6 quake hits Tokyo', 'Magnitude 7 quake hits Tokyo')).toBeLessThan(0.6);
  });

  it('collapses near-duplicates and copies of one page, keeping the first', () => {
    expect(collapseNearDuplicates([a, a2, b, c]).map((x) => x.id)).toEqual(['a', 'b']);
  });

  it('groups by topic, lists a story once, and marks or omits what was already pushed', () => {
    const topicStories = [
      { topicId: 'japan', storyIds: ['a', 'a2'] },
      { topicId: 'india', storyIds: ['a', 'a2'] },
      { topicId: 'cricket', storyIds: ['b', 'missing'] },
    ];
    const marked = composeDigest({ topicStories, stories, topicName: names, pushed: new Set(['b']), pushedMode: 'mark' });
    expect(marked.storyIds).toEqual(['a', 'b']);
    expect(marked.groups.map((g) => [g.topicName, g.stories.map((x) => [x.title, x.pushed])])).toEqual([
      ['Japan', [[a.title, false]]],
      ['Cricket', [[b.title, true]]],
    ]);
    const omitted = composeDigest({ topicStories, stories, topicName: names, pushed: new Set(['b']), pushedMode: 'omit' });
    expect(omitted.storyIds).toEqual(['a']);
  });

  it('renders the pushed mark, escapes titles, and says so when nothing is new', () => {
    const links = { all: 'https://h.test/u?t=all', manage: 'https://h.test/' };
    const stopUrl = 'https://h.test/unsubscribe?s=x&t=japan&sig=y';
    const mail = renderDigestEmail({ localDate: '2027-03-14', groups: [{ topicId: 'japan', topicName: 'Japan', stopUrl, stories: [{ title: '<b>Pact</b> & more', summary: '', url: 'https://w.test/a', pushed: true }] }], links });
    expect(mail.text).toContain('* Pact & more (already sent as a push)');
    // Every topic of a digest has its own signed stop link; the footer stops everything.
    expect(mail.text).toContain(`(Stop Japan emails: ${stopUrl})`);
    expect(mail.html).toContain(`<a href="https://h.test/unsubscribe?s=x&amp;t=japan&amp;sig=y">Stop Japan emails</a>`);
    expect(mail.text).toContain('Stop all Herald emails: https://h.test/u?t=all');
    expect(mail.html).toContain('Pact &amp; more</a> <small style="color:#888">(already sent as a push)</small>');
    const empty = renderDigestEmail({ localDate: '2027-03-14', groups: [], links });
    expect(empty.subject).toBe('Your Herald digest for 2027-03-14: nothing new today');
    expect(empty.text).toContain('Nothing new in your daily topics since the last digest.');
  });
});
