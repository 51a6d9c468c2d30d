import { describe, expect, it } from 'vitest';
import { renderDigestEmail } from '../../src/deliver/email/render.ts';
import { collapseNearDuplicates, composeDigest, NEAR_DUPLICATE_SIMILARITY, titleSimilarity } from '../../src/digest/compose.ts';
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

  it('keeps different articles of a site that names them in the query (article.php?id=…, item?id=…)', () => {
    const q1 = s('q1', 'Kerala beat Karnataka in Ranji Trophy final', 'https://news.w3.test/article.php?id=101', 2);
    const q2 = s('q2', 'Monsoon reaches Kerala two days early', 'https://news.w3.test/article.php?id=102', 1);
    // Tracking parameters still name the same page.
    const q1Again = s('q1b', 'Different title for the same page', 'https://www.news.w3.test/article.php?id=101&utm_source=rss', 0);
    expect(collapseNearDuplicates([q1, q2, q1Again]).map((x) => x.id)).toEqual(['q1', 'q2']);
  });

  it('finds the same near-duplicates as comparing every pair, on titles that often collapse', () => {
    // The reference: each story against every story kept before it.
    const allPairs = <S extends { title: string; url: string }>(list: S[]) => {
      const kept: S[] = [];
      for (const x of list) {
        const page = (u: string) => new URL(u).pathname;
        if (kept.some((k) => page(k.url) === page(x.url) || titleSimilarity(k.title, x.title) >= NEAR_DUPLICATE_SIMILARITY)) continue;
        kept.push(x);
      }
      return kept;
    };
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 48271) % 2147483647) % n);
    // A small vocabulary and short titles: many pairs sit near the 60% line, some titles carry figures.
    const words = ['japan', 'india', 'pact', 'chip', 'tokyo', 'delhi', 'talks', 'yen', 'quake', 'storm', 'minister', 'trade', 'rail', 'port'];
    let byTitle = 0;
    for (let round = 0; round < 40; round++) {
      const list = Array.from({ length: 150 }, (_, i) => {
        const title = Array.from({ length: 1 + rnd(6) }, () => (rnd(12) === 0 ? String(rnd(3)) : words[rnd(words.length)])).join(' ');
        return { title, url: `https://w.test/${round}/${rnd(400)}` };
      });
      const expected = allPairs(list);
      expect(collapseNearDuplicates(list)).toEqual(expected);
      const pages = new Set(list.map((x) => new URL(x.url).pathname));
      byTitle += pages.size - expected.length;
    }
    // The table is not trivial: about a quarter of the distinct pages collapse by title.
    expect(byTitle).toBeGreaterThan(1000);
  });

  it('groups by topic, lists a story once, and marks or omits what was already pushed', () => {
    const topicStories = [
      { topicId: 'japan', storyIds: ['a', 'a2'] },
      { topicId: 'india', storyIds: ['a', 'a2'] },
      { topicId: 'cricket', storyIds: ['b', 'missing'] },
    ];
    const marked = composeDigest({ topicStories, stories, topicName: names, pushed: new Set(['b']), pushedMode: 'mark', perTopic: 10 });
    expect(marked.storyIds).toEqual(['a', 'b']);
    expect(marked.groups.map((g) => [g.topicName, g.stories.map((x) => [x.title, x.pushed])])).toEqual([
      ['Japan', [[a.title, false]]],
      ['Cricket', [[b.title, true]]],
    ]);
    const omitted = composeDigest({ topicStories, stories, topicName: names, pushed: new Set(['b']), pushedMode: 'omit', perTopic: 10 });
    expect(omitted.storyIds).toEqual(['a']);
  });

  it('renders the pushed mark, escapes titles, and says so when nothing is new', () => {
    const links = { all: 'https://h.test/u?t=all', manage: 'https://h.test/' };
    const stopUrl = 'https://h.test/unsubscribe?s=x&t=japan&sig=y';
    const mail = renderDigestEmail({ localDate: '2027-03-14', groups: [{ topicId: 'japan', topicName: 'Japan', stopUrl, stories: [{ title: '<b>Pact</b> & more', summary: '', url: 'https://w.test/a', pushed: true }] }], links });
    expect(mail.text).toContain('* <b>Pact</b> & more (already sent as a push)');
    // Every topic of a digest has its own signed stop link; the footer stops everything.
    expect(mail.text).toContain(`(Stop Japan emails: ${stopUrl})`);
    expect(mail.html).toContain(`<a href="https://h.test/unsubscribe?s=x&amp;t=japan&amp;sig=y">Stop Japan emails</a>`);
    expect(mail.text).toContain('Stop all Herald emails: https://h.test/u?t=all');
    expect(mail.html).toContain('&lt;b&gt;Pact&lt;/b&gt; &amp; more</a> <small style="color:#888">(already sent as a push)</small>');
    const empty = renderDigestEmail({ localDate: '2027-03-14', groups: [], links });
    expect(empty.subject).toBe('Your Herald digest for 2027-03-14: nothing new today');
    expect(empty.text).toContain('Nothing new in your daily topics since the last digest.');
  });

  describe('a topic with more stories than the email lists', () => {
    // j0 … j13, j13 the newest; j3 was carried by five outlets, j7 by three, the rest by one.
    const many = Array.from({ length: 14 }, (_, i) => ({
      ...s(`j${i}`, `Japan story ${i}`, `https://w.test/j${i}`, 1000 + i),
      sources: Array.from({ length: i === 3 ? 5 : i === 7 ? 3 : 1 }, (_, k) => ({ feedId: `f${k}`, url: `https://f${k}.test/j${i}` })),
    }));
    const byId = new Map(many.map((x) => [x.id, x]));
    const compose = (pushed: string[] = []) =>
      composeDigest({ topicStories: [{ topicId: 'japan', storyIds: many.map((x) => x.id) }], stories: byId, topicName: names, pushed: new Set(pushed), pushedMode: 'mark', perTopic: 4 });

    it('lists the most widely carried, then the newest, in the group\'s newest-first order, and counts the rest', () => {
      const { groups, storyIds, view } = compose(['j3', 'j0']);
      expect(groups).toHaveLength(1);
      expect(groups[0]!.stories.map((x) => x.title)).toEqual(['Japan story 13', 'Japan story 12', 'Japan story 7', 'Japan story 3']);
      expect(groups[0]!.more).toBe(10);
      // The page keeps every story, newest first, and which were pushed.
      expect(view.groups).toEqual([{ topicId: 'japan', topicName: 'Japan', storyIds: many.map((x) => x.id).reverse(), pushedIds: ['j3', 'j0'] }]);
      expect(storyIds).toHaveLength(14);
    });

    it('lists everything, with nothing counted, when the topic fits', () => {
      const { groups } = composeDigest({ topicStories: [{ topicId: 'japan', storyIds: ['j1', 'j2'] }], stories: byId, topicName: names, pushed: new Set(), pushedMode: 'mark', perTopic: 2 });
      expect(groups[0]!.stories.map((x) => x.title)).toEqual(['Japan story 2', 'Japan story 1']);
      expect(groups[0]!.more).toBe(0);
    });

    it('renders "…and N more" linking to the topic on the digest\'s page; the subject counts every story', () => {
      const { groups } = compose();
      const links = { all: 'https://h.test/u?t=all', manage: 'https://h.test/' };
      const viewUrl = 'https://h.test/digest?s=x&d=2027-03-14&sig=y';
      const mail = renderDigestEmail({ localDate: '2027-03-14', groups: [{ ...groups[0]!, topicName: 'Japan & Korea' }], links, viewUrl });
      expect(mail.subject).toBe('Your Herald digest for 2027-03-14: 14 stories in Japan & Korea');
      expect(mail.text).toContain('* Japan story 3\n  https://w.test/j3\n* …and 10 more stories in Japan & Korea\n  https://h.test/digest?s=x&d=2027-03-14&sig=y#t-japan\n');
      expect(mail.html).toContain('<a href="https://h.test/digest?s=x&amp;d=2027-03-14&amp;sig=y#t-japan">…and 10 more stories in Japan &amp; Korea</a>');
      expect(mail.text).not.toContain('Japan story 5');
      // Without a page (a digest that fits), no link is made up.
      const plain = renderDigestEmail({ localDate: '2027-03-14', groups: [{ ...groups[0]!, more: 1 }], links });
      expect(plain.text).toContain('* …and 1 more story in Japan\n\n');
      expect(plain.html).not.toContain('/digest?');
    });
  });
});
