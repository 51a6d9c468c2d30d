import { simpleParser, type AddressObject } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { buildMimeMessage, newBoundary, parseSender, type MimeInput } from '../../src/deliver/email/mime.ts';

const DATE = new Date('2027-02-01T09:00:00Z');
const base: MimeInput = {
  from: { name: 'Herald', address: 'herald@example.org' },
  to: 'reader@example.test',
  subject: 'Japan: Tokyo markets',
  text: 'Tokyo markets\n\nRead: https://news.example.test/a\n',
  html: '<p>Tokyo markets</p>',
  headers: { 'List-Unsubscribe': '<https://herald.example.test/unsubscribe?s=abc&t=japan&sig=x_y-z>', 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
  messageId: '<alert.abc.s1.email@herald.example.test>',
  date: DATE,
  boundary: '----herald_0123456789abcdef01234567',
};
const build = (patch: Partial<MimeInput> = {}) => buildMimeMessage({ ...base, ...patch });
const parse = (patch: Partial<MimeInput> = {}) => simpleParser(build(patch));
const first = (a: AddressObject | AddressObject[] | undefined) => (Array.isArray(a) ? a[0] : a)?.value[0];
/** Header lines of the top-level header block, without their CRLF. */
const headLines = (raw: Buffer) => raw.toString('utf8').split('\r\n\r\n')[0]!.split('\r\n');
const unfolded = (raw: Buffer) => raw.toString('utf8').split('\r\n\r\n')[0]!.split(/\r\n(?![ \t])/).map((l) => l.replace(/\r\n/g, ''));

describe('buildMimeMessage', () => {
  it('writes this exact message for a short ASCII mail', () => {
    const raw = build({ text: 'Hi\n', html: '<p>Hi</p>' }).toString('utf8');
    expect(raw).toBe([
      'From: Herald <herald@example.org>',
      'To: reader@example.test',
      'Subject: Japan: Tokyo markets',
      'Date: Mon, 01 Feb 2027 09:00:00 +0000',
      'Message-ID: <alert.abc.s1.email@herald.example.test>',
      // Folded: the line would be 84 characters.
      'List-Unsubscribe:',
      ' <https://herald.example.test/unsubscribe?s=abc&t=japan&sig=x_y-z>',
      'List-Unsubscribe-Post: List-Unsubscribe=One-Click',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative;',
      ' boundary="----herald_0123456789abcdef01234567"',
      '',
      '------herald_0123456789abcdef01234567',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      'SGkK',
      '------herald_0123456789abcdef01234567',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      'PHA+SGk8L3A+',
      '------herald_0123456789abcdef01234567--',
      '',
    ].join('\r\n'));
  });

  // Each case is parsed back by mailparser, as a receiving client would read it.
  const cases: { name: string; patch: Partial<MimeInput>; fromName: string }[] = [
    { name: 'ASCII', patch: {}, fromName: 'Herald' },
    { name: 'non-ASCII subject and bodies', patch: { subject: 'Japón – 東京', text: 'Japón – 東京\nzweite Zeile ü\n', html: '<p>Japón – 東京 🗼</p>' }, fromName: 'Herald' },
    { name: 'non-ASCII display name', patch: { from: { name: 'Heraldo Ñandú', address: 'herald@example.org' } }, fromName: 'Heraldo Ñandú' },
    { name: 'display name with specials', patch: { from: { name: 'Herald, "News" \\ Alerts', address: 'herald@example.org' } }, fromName: 'Herald, "News" \\ Alerts' },
    { name: 'bare sender address', patch: { from: { name: '', address: 'herald@example.org' } }, fromName: '' },
    { name: 'a subject that looks encoded is sent as literal text', patch: { subject: '=?UTF-8?B?ZXZpbA==?= and =?x?' }, fromName: 'Herald' },
    { name: 'a large digest', patch: { text: 'Story line ü\n'.repeat(5000), html: `<ul>${'<li>東京 story</li>'.repeat(5000)}</ul>` }, fromName: 'Herald' },
  ];
  it.each(cases)('parses back to the input: $name', async ({ patch, fromName }) => {
    const input = { ...base, ...patch };
    const m = await parse(patch);
    expect(m.subject).toBe(input.subject);
    expect(first(m.from)).toEqual({ name: fromName, address: 'herald@example.org' });
    expect(first(m.to)).toEqual({ name: '', address: 'reader@example.test' });
    expect(m.messageId).toBe(input.messageId);
    expect(m.date?.toISOString()).toBe(DATE.toISOString());
    expect(m.text).toBe(input.text);
    expect(m.html).toBe(input.html);
    // Non-ASCII goes out as RFC 2047 words: mailparser would also read raw UTF-8, so check the bytes.
    expect(headLines(build(patch)).filter((l) => !/^[\x20-\x7e]*$/.test(l))).toEqual([]);
    const lines = unfolded(build(patch));
    expect(lines).toContain('List-Unsubscribe: <https://herald.example.test/unsubscribe?s=abc&t=japan&sig=x_y-z>');
    expect(lines).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    expect(lines).toContain('MIME-Version: 1.0');
  });

  it('CRLF line ends everywhere, base64 bodies in lines of 76, a boundary no base64 line can equal', () => {
    const raw = build({ text: 'ü'.repeat(1000), html: `<p>${'x'.repeat(1000)}</p>\n` }).toString('utf8');
    expect(raw).not.toMatch(/[^\r]\n|\r[^\n]/);
    // Each part: its headers, a blank line, then base64 lines of exactly 76 but the last.
    const parts = raw.split(/\r\n--[^\r]+\r\n/).slice(1, -1).map((p) => p.split('\r\n\r\n')[1]!.split('\r\n'));
    expect(parts).toHaveLength(2);
    for (const lines of parts) {
      expect(lines.length).toBeGreaterThan(10);
      expect(lines.slice(0, -1).every((l) => l.length === 76)).toBe(true);
      expect(lines.at(-1)!.length).toBeLessThanOrEqual(76);
      expect(lines.every((l) => /^[A-Za-z0-9+/=]+$/.test(l))).toBe(true);
    }
    expect(raw.match(/^Content-Transfer-Encoding: base64$/gm)).toHaveLength(2);
    expect(newBoundary()).toMatch(/[^A-Za-z0-9+/=]/);
    expect(newBoundary()).not.toBe(newBoundary());
    expect(newBoundary().length).toBeLessThanOrEqual(70);
  });

  it('CR/LF in a subject, a display name or an extra header value never starts a new header', async () => {
    const evil = 'Tokyo\r\nBcc: evil@x\r\n\r\nbody';
    const raw = build({ subject: evil, from: { name: evil, address: 'herald@example.org' }, headers: { ...base.headers, 'X-Herald-Note': evil } });
    const m = await simpleParser(raw);
    expect(m.bcc).toBeUndefined();
    expect(m.headers.has('bcc')).toBe(false);
    expect(headLines(raw).filter((l) => /^bcc:/i.test(l))).toEqual([]);
    expect(m.subject).toBe('Tokyo Bcc: evil@x body');
    expect(m.text).toBe(base.text);
  });

  it('refuses an extra header that would duplicate one the builder writes, or a malformed name', () => {
    expect(() => build({ headers: { bcc: 'evil@x' } })).toThrow(/bcc/);
    expect(() => build({ headers: { 'From': 'evil@x' } })).toThrow(/From/);
    expect(() => build({ headers: { 'X-Bad: Name': 'v' } })).toThrow(/X-Bad/);
  });

  const longSubjects = [
    { name: 'words', subject: Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ') },
    { name: 'one 2000-character word', subject: `Tokyo ${'x'.repeat(2000)} end` },
    { name: 'non-ASCII', subject: 'Japón – 東京 '.repeat(80).trim() },
  ];
  it.each(longSubjects)('a long subject ($name) folds into lines of at most 78 and parses back identically', async ({ subject }) => {
    const raw = build({ subject });
    const lines = headLines(raw);
    expect(lines.filter((l) => l.startsWith(' ')).length).toBeGreaterThan(5);
    expect(Math.max(...lines.map((l) => Buffer.byteLength(l)))).toBeLessThanOrEqual(78);
    expect((await simpleParser(raw)).subject).toBe(subject);
  });

  it('keeps an extra header verbatim when it is ASCII: a List-Unsubscribe URL must stay a URL', () => {
    const url = `<https://herald.example.test/unsubscribe?q=?a&long=${'b'.repeat(120)}>`;
    expect(unfolded(build({ headers: { 'List-Unsubscribe': url } }))).toContain(`List-Unsubscribe: ${url}`);
  });

  it('refuses an extra header it cannot fold under 998 octets rather than sending a broken message', () => {
    expect(() => build({ headers: { 'List-Unsubscribe': `<https://x.test/${'a'.repeat(1000)}>` } })).toThrow(/998/);
  });
});

describe('parseSender', () => {
  it.each([
    ['Herald <herald@example.org>', { name: 'Herald', address: 'herald@example.org' }],
    ['herald@example.org', { name: '', address: 'herald@example.org' }],
    ['"Herald, News" <herald@example.org>', { name: 'Herald, News', address: 'herald@example.org' }],
    ['Herald <herald@bücher.example>', { name: 'Herald', address: 'herald@xn--bcher-kva.example' }],
  ])('%s', (from, expected) => {
    expect(parseSender(from)).toEqual(expected);
  });

  it('says how to fix a sender without an address', () => {
    expect(() => parseSender('Herald')).toThrow(/MAIL_FROM "Herald" holds no email address/);
  });
});
