import type { Story } from '../../model.ts';
import { displayText, sliceWhole, truncate } from '../text.ts';
import type { UnsubscribeLinks } from './signed-links.ts';

/** Pure email rendering: every value from a feed or a reader is escaped; tested byte for byte. */

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
  headers: Record<string, string>;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const HTML_SPECIAL = /[&<>"']/;

/** A digest escapes every title, summary and link it lists: most hold nothing to escape, and skip the replace. */
export function escapeHtml(s: string): string {
  return HTML_SPECIAL.test(s) ? s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!) : s;
}

/** Subject lines are single-line; feeds sometimes carry newlines that would break headers. */
const oneLine = (s: string, max = 180) => {
  const flat = displayText(s);
  return flat.length > max ? `${sliceWhole(flat, max - 1)}…` : flat;
};

/** RFC 8058 one-click unsubscribe: mail clients POST to the URL without showing a page. */
function listUnsubscribeHeaders(url: string): Record<string, string> {
  return {
    'List-Unsubscribe': `<${url}>`,
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
  };
}

const htmlShell = (title: string, body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title></head>` +
  `<body style="font-family:system-ui,sans-serif;max-width:640px;margin:auto;padding:16px;color:#1a1a1a">${body}</body></html>`;

/** Stories as mail shows them: their plain text on one line (escaped where it goes into HTML), long summaries cut. */
const SUMMARY_CHARS = 1200;
export function cleanStory<S extends Pick<Story, 'title' | 'summary' | 'url'>>(s: S): S {
  const summary = displayText(sliceWhole(s.summary, SUMMARY_CHARS * 4));
  return { ...s, title: displayText(s.title) || s.url, summary: summary.length > SUMMARY_CHARS ? `${sliceWhole(summary, SUMMARY_CHARS - 1)}…` : summary };
}

export function renderAlertEmail(input: {
  story: Pick<Story, 'title' | 'summary' | 'url'>;
  topicName: string;
  why: string;
  links: UnsubscribeLinks;
}): RenderedEmail {
  const { topicName, why, links } = input;
  const story = cleanStory(input.story);
  const text = [
    story.title,
    '',
    story.summary,
    '',
    `Read: ${story.url}`,
    '',
    `${why} (topic: ${topicName})`,
    '',
    '--',
    `Stop ${topicName} alerts: ${links.topic}`,
    `Stop all Herald emails: ${links.all}`,
    `Manage your alerts: ${links.manage}`,
    '',
  ].join('\n');
  const html = htmlShell(
    story.title,
    `<p style="color:#666;font-size:13px;margin:0">${escapeHtml(topicName)} alert</p>` +
      `<h1 style="font-size:20px"><a href="${escapeHtml(story.url)}">${escapeHtml(story.title)}</a></h1>` +
      (story.summary ? `<p>${escapeHtml(story.summary)}</p>` : '') +
      `<p style="color:#666;font-size:13px">${escapeHtml(why)}</p>` +
      `<hr><p style="color:#666;font-size:12px"><a href="${escapeHtml(links.topic)}">Stop ${escapeHtml(topicName)} alerts</a> · ` +
      `<a href="${escapeHtml(links.all)}">Unsubscribe from all</a> · <a href="${escapeHtml(links.manage)}">Manage your alerts</a></p>`,
  );
    // The header stops this topic's emails only: the least surprising result of a mail client's "Unsubscribe".
  return { subject: oneLine(`${topicName}: ${story.title}`), text, html, headers: listUnsubscribeHeaders(links.topic) };
}

export interface DigestStory extends Pick<Story, 'title' | 'summary' | 'url'> {
  /** Already sent to this reader as a push: marked so they can skip it. */
  pushed?: boolean;
}
export interface DigestGroup {
  topicId: string;
  topicName: string;
  stories: DigestStory[];
  /** Signed link that takes this topic out of the reader's email (set by the sender, not by composition). */
  stopUrl?: string;
  /** Stories of this topic the email leaves to the digest's page (past the per-topic limit). */
  more?: number;
}

const moreLabel = (n: number, topicName: string) => `${n} more ${n === 1 ? 'story' : 'stories'} in ${topicName}`;
/** The page anchor of one topic's group. */
export const groupAnchor = (topicId: string) => `t-${topicId}`;

const PUSHED_MARK = '(already sent as a push)';

/**
 * `viewUrl`: the signed page showing the whole digest, linked from each group that has `more` stories than
 * the email lists.
 */
export function renderDigestEmail(input: { localDate: string; groups: DigestGroup[]; links: Omit<UnsubscribeLinks, 'topic'>; viewUrl?: string }): RenderedEmail {
  const { localDate, links, viewUrl } = input;
  const groups = input.groups.map((g) => ({ ...g, stories: g.stories.map((s) => ({ ...cleanStory(s), pushed: s.pushed === true })), more: g.more ?? 0 }));
  const count = groups.reduce((n, g) => n + g.stories.length + g.more, 0);
  const moreUrl = (g: DigestGroup) => (viewUrl ? `${viewUrl}#${encodeURIComponent(groupAnchor(g.topicId))}` : null);
  const subject =
    count === 0
      ? oneLine(`Your Herald digest for ${localDate}: nothing new today`)
      : oneLine(`Your Herald digest for ${localDate}: ${count} ${count === 1 ? 'story' : 'stories'} in ${groups.map((g) => g.topicName).join(', ')}`);
  const text = [
    `Your Herald digest for ${localDate}`,
    '',
    ...(count === 0 ? ['Nothing new in your daily topics since the last digest.', ''] : []),
    ...groups.flatMap((g) => [
      `== ${g.topicName} ==`,
      ...g.stories.flatMap((s) => [`* ${s.title}${s.pushed ? ` ${PUSHED_MARK}` : ''}`, `  ${s.url}`]),
      ...(g.more > 0 ? [`* …and ${moreLabel(g.more, g.topicName)}`, ...(moreUrl(g) ? [`  ${moreUrl(g)}`] : [])] : []),
      ...(g.stopUrl ? [`  (Stop ${g.topicName} emails: ${g.stopUrl})`] : []),
      '',
    ]),
    '--',
    `Stop all Herald emails: ${links.all}`,
    `Manage your alerts: ${links.manage}`,
    '',
  ].join('\n');
  const html = htmlShell(
    subject,
    `<h1 style="font-size:20px">Your Herald digest for ${escapeHtml(localDate)}</h1>` +
      (count === 0 ? '<p>Nothing new in your daily topics since the last digest.</p>' : '') +
      groups
        .map(
          (g) =>
            `<h2 style="font-size:16px;border-bottom:1px solid #ddd">${escapeHtml(g.topicName)}</h2><ul>` +
            g.stories
              .map((s) => `<li><a href="${escapeHtml(s.url)}">${escapeHtml(s.title)}</a>${s.pushed ? ` <small style="color:#888">${PUSHED_MARK}</small>` : ''}${s.summary ? `<br><span style="color:#444">${escapeHtml(truncate(s.summary, 240))}</span>` : ''}</li>`)
              .join('') +
            (g.more > 0
              ? `<li style="list-style:none">${moreUrl(g) ? `<a href="${escapeHtml(moreUrl(g)!)}">…and ${escapeHtml(moreLabel(g.more, g.topicName))}</a>` : `…and ${escapeHtml(moreLabel(g.more, g.topicName))}`}</li>`
              : '') +
            '</ul>' +
            (g.stopUrl ? `<p style="color:#666;font-size:12px"><a href="${escapeHtml(g.stopUrl)}">Stop ${escapeHtml(g.topicName)} emails</a></p>` : ''),
        )
        .join('') +
      `<hr><p style="color:#666;font-size:12px"><a href="${escapeHtml(links.all)}">Unsubscribe from all</a> · <a href="${escapeHtml(links.manage)}">Manage your alerts</a></p>`,
  );
  return { subject, text, html, headers: listUnsubscribeHeaders(links.all) };
}
