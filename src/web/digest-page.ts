import { cleanStory, escapeHtml, groupAnchor, type DigestStory } from '../deliver/email/render.ts';
import { page } from './pages.ts';

export interface DigestPageGroup {
  topicId: string;
  topicName: string;
  stories: DigestStory[];
  /** Stories the digest listed that Herald no longer keeps. */
  gone: number;
}

/** The whole of one digest, every story of every topic, as the email's "…and N more" links open it. */
export function renderDigestPage(input: { localDate: string; groups: DigestPageGroup[] }): string {
  const count = input.groups.reduce((n, g) => n + g.stories.length, 0);
  const body =
    `<h1>Your Herald digest for ${escapeHtml(input.localDate)}</h1>` +
    `<p>${count} ${count === 1 ? 'story' : 'stories'} in ${input.groups.map((g) => escapeHtml(g.topicName)).join(', ')}.</p>` +
    input.groups
      .map((g) => {
        const items = g.stories
          .map(cleanStory)
          .map((s) => `<li><a href="${escapeHtml(s.url)}">${escapeHtml(s.title)}</a>${s.pushed ? ' <small>(already sent as a push)</small>' : ''}${s.summary ? `<br><span>${escapeHtml(s.summary)}</span>` : ''}</li>`)
          .join('');
        const gone = g.gone > 0 ? `<p><small>${g.gone} ${g.gone === 1 ? 'story is' : 'stories are'} no longer kept.</small></p>` : '';
        return `<section id="${escapeHtml(groupAnchor(g.topicId))}"><h2>${escapeHtml(g.topicName)}</h2><ul>${items}</ul>${gone}</section>`;
      })
      .join('') +
    '<p><a href="/">Change your alert settings</a></p>';
  return page(`Digest for ${input.localDate}`, body);
}
