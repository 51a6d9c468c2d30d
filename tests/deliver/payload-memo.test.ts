import { describe, expect, it } from 'vitest';
import { memoRenderer } from '../../src/deliver/push/send-alert.ts';
import { renderPushPayload } from '../../src/deliver/push/payload.ts';
import type { Story } from '../../src/model.ts';

/** A batch's alerts share one rendering per distinct payload, and each still gets exactly its own payload. */
describe('push payload memo of a batch', () => {
  const story = (title: string): Story => ({
    id: 's1', feedId: 'f1', guid: null, url: 'https://news.example.test/s1', title, summary: 'Talks in Tokyo. '.repeat(300),
    categories: [], publishedAt: 0, firstSeenAt: 0, sources: [],
  });

  it('renders once per story record, topic, why-line and size, answering what renderPushPayload answers', () => {
    const calls: string[] = [];
    const render = memoRenderer((s, topic, why, max) => {
      calls.push(`${s.title}|${topic}|${why}|${max}`);
      return renderPushPayload(s, topic, why, max);
    });
    const a = story('India and Japan sign a pact');
    const first = render(a, 'Japan', 'Matched: Japan in title', 3000);
    for (let i = 0; i < 49; i++) expect(render(a, 'Japan', 'Matched: Japan in title', 3000)).toBe(first);
    expect(first).toBe(renderPushPayload(a, 'Japan', 'Matched: Japan in title', 3000));
    expect(calls).toHaveLength(1);
    // Another topic, why-line or size (the 413 retry at half size) is its own payload.
    expect(JSON.parse(render(a, 'India foreign policy', 'Matched: India AND Japan', 3000))).toMatchObject({ topic: 'India foreign policy', why: 'Matched: India AND Japan' });
    expect(render(a, 'Japan', 'Matched: Japan in summary', 3000)).toContain('Matched: Japan in summary');
    expect(Buffer.byteLength(render(a, 'Japan', 'Matched: Japan in title', 1500))).toBeLessThanOrEqual(1500);
    expect(calls).toHaveLength(4);
    // A story read again (edited) is rendered from the new record.
    const edited = story('India and Japan sign a defence pact');
    expect(JSON.parse(render(edited, 'Japan', 'Matched: Japan in title', 3000)).title).toBe('India and Japan sign a defence pact');
    expect(calls).toHaveLength(5);
  });
});
