import { createHash, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailer, type Mailer } from '../../src/deliver/email/mailer.ts';
import { manualClock } from '../helpers/clock.ts';
import { startScriptedSmtp, type ScriptedSmtp } from './support/smtp.ts';

/**
 * DKIM relaxed/relaxed (RFC 6376 3.4.2, 3.4.4) checked the way a receiver does: the body hash over the
 * received body, the RSA signature over the signed headers. One instance of each signed header is enough here.
 */
function verifyDkim(raw: string, publicKey: KeyObject) {
  const split = raw.indexOf('\r\n\r\n');
  const fields = raw.slice(0, split).split(/\r\n(?![ \t])/);
  const body = raw.slice(split + 4);
  const signature = fields.find((f) => /^dkim-signature:/i.test(f))!;
  const tags = new Map(signature.slice(signature.indexOf(':') + 1).replace(/\s+/g, '').split(';').filter(Boolean).map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]));
  const canonBody = `${body.replace(/[ \t]+/g, ' ').replace(/ \r\n/g, '\r\n').replace(/(\r\n)+$/, '')}\r\n`;
  const canonHeader = (f: string) => `${f.slice(0, f.indexOf(':')).trim().toLowerCase()}:${f.slice(f.indexOf(':') + 1).replace(/\r\n/g, '').replace(/[ \t]+/g, ' ').trim()}`;
  const signed = tags.get('h')!.split(':').map((name) => fields.find((f) => f.toLowerCase().startsWith(`${name.toLowerCase()}:`)));
  const data = [...signed.filter((f) => f !== undefined).map(canonHeader), canonHeader(signature.replace(/(;\s*b=)[^;]*/, '$1'))].join('\r\n');
  return {
    bodyHash: createHash('sha256').update(canonBody).digest('base64') === tags.get('bh'),
    signature: verify('sha256', Buffer.from(data), publicKey, Buffer.from(tags.get('b')!, 'base64')),
    signedHeaders: tags.get('h')!.toLowerCase().split(':'),
  };
}

/** createMailer over a real pooled SMTP session: the pre-built message, its envelope, DKIM and error mapping. */
describe('createMailer', () => {
  const clock = manualClock('2027-02-01T09:00:00Z');
  const keys = generateKeyPairSync('rsa', { modulusLength: 1024 });
  let smtp: ScriptedSmtp;
  let mailer: Mailer;
  const mail = (to: string, patch: { subject?: string } = {}) => ({
    to,
    subject: patch.subject ?? 'Japón – 東京',
    text: 'Tokyo markets ü\n',
    html: '<p>Tokyo markets ü</p>',
    headers: { 'List-Unsubscribe': '<https://herald.example.test/u?s=1>', 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
    messageId: `<test.${to}@herald.example.test>`,
  });

  beforeAll(async () => {
    smtp = await startScriptedSmtp();
    mailer = createMailer({
      url: smtp.url, from: 'Heraldo Ñandú <herald@example.test>', poolSize: 2, clock,
      dkim: { domainName: 'example.test', keySelector: 'herald', privateKey: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
    });
  });
  afterAll(async () => {
    mailer?.close();
    await smtp?.close();
  });

  it('sends the pre-built message to the envelope recipient only, with nothing added but a valid DKIM signature', async () => {
    expect(await mailer.send(mail('reader@example.test'))).toEqual({ kind: 'sent' });
    const [m] = smtp.to('reader@example.test');
    expect(m?.subject).toBe('Japón – 東京');
    expect(m?.from?.value).toEqual([{ name: 'Heraldo Ñandú', address: 'herald@example.test' }]);
    expect(m?.date?.toISOString()).toBe('2027-02-01T09:00:00.000Z');
    expect(m?.messageId).toBe('<test.reader@example.test@herald.example.test>');
    expect(m?.text).toBe('Tokyo markets ü\n');
    expect(m?.html).toBe('<p>Tokyo markets ü</p>');
    expect(smtp.tries('reader@example.test')).toBe(1);
    expect(m?.headerLines.map((h) => h.key)).toEqual(['dkim-signature', 'from', 'to', 'subject', 'date', 'message-id', 'list-unsubscribe', 'list-unsubscribe-post', 'mime-version', 'content-type']);

    const raw = smtp.raw.find((r) => r.includes('test.reader@example.test'))!;
    const dkim = verifyDkim(raw, keys.publicKey);
    // RFC 8058 4: one-click unsubscribe counts only when the signature covers both List-Unsubscribe headers.
    expect(dkim.signedHeaders).toEqual(expect.arrayContaining(['from', 'to', 'subject', 'date', 'message-id', 'list-unsubscribe', 'list-unsubscribe-post']));
    expect(dkim.bodyHash).toBe(true);
    expect(dkim.signature).toBe(true);
    // The verifier itself must notice a changed body or header.
    expect(verifyDkim(raw.replace(/\r\n\r\n(.)/, '\r\n\r\nX$1'), keys.publicKey).bodyHash).toBe(false);
    expect(verifyDkim(raw.replace('Subject: ', 'Subject: Re: '), keys.publicKey).signature).toBe(false);
  });

  it('an address that is not one plain address (stored before validation) is refused: the mail goes to nobody it names', async () => {
    for (const to of ['stored@example.test\r\nRCPT TO:<evil1@example.test>', 'Evil <evil2@example.test>', 'x evil3@example.test', 'stored@example.test, evil4@example.test']) {
      expect(await mailer.send(mail(to))).toEqual({ kind: 'permanent', reason: 'invalid recipient address: not one plain address', hardBounce: true });
    }
    for (const n of [1, 2, 3, 4]) expect(smtp.tries(`evil${n}@example.test`)).toBe(0);
    expect(smtp.tries('stored@example.test')).toBe(0);
    // Addresses the settings form accepts still go out.
    expect(await mailer.send(mail('first.last+tag@example.test'))).toEqual({ kind: 'sent' });
    expect(smtp.tries('first.last+tag@example.test')).toBe(1);
  });

  it('a subject carrying CR/LF adds no recipient to the envelope or the headers', async () => {
    expect(await mailer.send(mail('inject@example.test', { subject: 'Tokyo\r\nBcc: evil@example.test' }))).toEqual({ kind: 'sent' });
    expect(smtp.to('inject@example.test')[0]?.subject).toBe('Tokyo Bcc: evil@example.test');
    expect(smtp.tries('evil@example.test')).toBe(0);
  });

  it('keeps to ratePerSecond (HERALD_SMTP_RATE_PER_SECOND) across its pooled connections, and every mail arrives', async () => {
    const limited = createMailer({ url: smtp.url, from: 'herald@example.test', poolSize: 2, ratePerSecond: 4, clock });
    try {
      const from = smtp.arrivals.length;
      const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => limited.send(mail(`paced${i}@example.test`))));
      expect(outcomes.every((o) => o.kind === 'sent')).toBe(true);
      const at = smtp.arrivals.slice(from);
      expect(at).toHaveLength(10);
      // A bucket of four refilled at four per second: the other six are handed over at least 1.5 s after the
      // first; the first also waited for its new connection, so the bound allows for that (unpaced, the ten
      // arrive here within about 100 ms).
      expect(at[9]! - at[0]!).toBeGreaterThanOrEqual(1200);
    } finally {
      limited.close();
    }
  });

  it('a message that cannot be built (a header the builder writes itself) fails for good, no bounce, and nothing reaches the server', async () => {
    const outcome = await mailer.send({ ...mail('unbuilt@example.test'), headers: { Bcc: 'evil@example.test' } });
    expect(outcome).toEqual({ kind: 'permanent', reason: 'message not built: refusing email header name "Bcc"', hardBounce: false });
    expect(smtp.tries('unbuilt@example.test')).toBe(0);
  });

  it('maps a 550 on RCPT TO to a permanent hard bounce, as before', async () => {
    smtp.script('gone@example.test', { reject: 550 });
    const outcome = await mailer.send(mail('gone@example.test'));
    expect(outcome).toMatchObject({ kind: 'permanent', hardBounce: true });
    expect(outcome.kind === 'permanent' && outcome.reason).toMatch(/^SMTP 550: /);
  });
});
