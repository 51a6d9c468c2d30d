/**
 * Text as notifications and emails show it. Stored titles and summaries are already plain text: ingest
 * turned the feed's HTML into text and decoded its entities. So "x < 5 and y > 3" or "&lt;b&gt;" is what
 * the story says, shown as written; stripping "tags" again would delete words.
 */

/** On one line: runs of whitespace and control characters become one space. */
export function displayText(s: string): string {
  return s.replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
}

/** The first `max` UTF-16 units, or one fewer when the cut would split a surrogate pair (half an emoji). */
export function sliceWhole(s: string, max: number): string {
  if (s.length <= max) return s;
  const end = max > 0 && isHighSurrogate(s.charCodeAt(max - 1)) ? max - 1 : max;
  return s.slice(0, Math.max(0, end));
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** At most `max` units ending in "…", cut at a word boundary when one is near the end. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = sliceWhole(text, Math.max(0, max - 1));
  const space = cut.lastIndexOf(' ');
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).trimEnd()}…`;
}
