import nodemailer from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import { systemClock, type Clock } from '../../model.ts';
import { createOriginLimiter, realSleep } from '../rate-limit.ts';
import { buildMimeMessage, newBoundary, parseSender } from './mime.ts';

export interface OutgoingEmail {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** Extra headers such as List-Unsubscribe; names the MIME builder writes itself are refused. */
  headers: Record<string, string>;
  messageId: string;
}

/**
 * permanent: the server refused this message for good (5xx), or it could not be built; `hardBounce` when the
 * recipient was refused. retry with
 * `unsent`: never handed to the server (the dispatcher is shutting down), so no SMTP error either; with
 * `outcomeUnknown`: given up while the server had not answered, so it may have the message (a retry may resend it).
 */
export type MailOutcome =
  | { kind: 'sent' }
  | { kind: 'retry'; reason: string; unsent?: true; outcomeUnknown?: true }
  | { kind: 'permanent'; reason: string; hardBounce: boolean };

/**
 * Whether a retry was stopped by this process' shutdown rather than by the server (never handed over, or abandoned
 * with no answer): such an attempt does not count toward the job's attempts (retryError's handedBack).
 */
export const handedBackAtShutdown = (outcome: Extract<MailOutcome, { kind: 'retry' }>): boolean => outcome.unsent === true || outcome.outcomeUnknown === true;

export interface Mailer {
  send(mail: OutgoingEmail): Promise<MailOutcome>;
  /** Shutdown begins: mails that would wait for the rate limit answer 'retry' (unsent) at once. */
  stopWaiting?(): void;
  /** The shutdown deadline is near: sends still waiting for the server answer 'retry' (outcome unknown) at once. */
  abandon?(): void;
  close(): void;
}

export interface DkimOptions {
  domainName: string;
  keySelector: string;
  privateKey: string;
}

/**
 * The one place nodemailer errors are read: SMTP 5xx to the message is permanent, 4xx and connection trouble
 * (a 5xx refusal of the session or of Herald's sender included) are not.
 * A hard bounce of the address is a 5xx answer to RCPT TO (nodemailer's EENVELOPE), or an enhanced status
 * 5.1.x (bad mailbox; not 5.1.7/5.1.8, the sender's address) from a server that checks recipients after DATA. Any other refusal of the message
 * (552 size, 550 5.7.1 content) says nothing about the address, and must not count toward disabling it.
 */
export function classifyMailError(err: { responseCode?: number; code?: string; command?: string; response?: string; message: string }): MailOutcome {
  const code = err.responseCode;
  // A 5xx before any envelope (the greeting, EHLO, AUTH) refuses the session, not this message: a relay turning
  // connections away or credentials the operator has to fix. Every mail of that moment fails alike, and ending
  // them as permanent lost every alert and digest sent until the fix; retried, they go out once it is made.
  // 530 (RFC 4954: authentication required) is that same fix to make, whichever command a relay answers it to.
  if (code !== undefined && code >= 500 && (err.code === 'EAUTH' || code === 530 || /^(CONN|EHLO|HELO|LHLO|AUTH|STARTTLS)\b/i.test(err.command ?? '') || refusesSender(code, err))) {
    return { kind: 'retry', reason: `SMTP ${code}: ${err.message}` };
  }
  if (code !== undefined && code >= 500) {
    // 5.1.x is the addressing class, but 5.1.7 and 5.1.8 (RFC 3463) name the sender's address, not the recipient's.
    const recipient = /RCPT/i.test(err.command ?? '') ? !aboutSender(err.response ?? err.message) : /\b5\.1\.(?![78]\b)\d{1,3}\b/.test(err.message);
    return { kind: 'permanent', reason: `SMTP ${code}: ${err.message}`, hardBounce: recipient };
  }
  return { kind: 'retry', reason: code ? `SMTP ${code}: ${err.message}` : `${err.code ?? 'error'}: ${err.message}` };
}

/**
 * Whether a 5xx refuses Herald's sender: any answer to MAIL FROM ('553 5.1.8' a sender domain that does not resolve,
 * '550 5.7.1' a relay refusing it), or an enhanced status 5.1.7/5.1.8 (RFC 3463: the sender's address) to a later
 * command, where Postfix gives its sender refusals. The same for every mail until the operator fixes MAIL_FROM or the
 * relay, and no word on any reader's mailbox: ended as permanent, every alert and digest of that time was lost.
 * BullMQ's give-up records the ones still refused when their attempts run out. A 552 (or 5.3.4) to MAIL FROM is the
 * declared SIZE refused (RFC 1870): about this message, so it stays permanent.
 */
function refusesSender(code: number, err: { command?: string; response?: string; message: string }): boolean {
  const text = err.response ?? err.message;
  if (/^MAIL\b/i.test(err.command ?? '')) return code !== 552 && !/\b5\.3\.4\b/.test(text);
  // A word of its own, so an IP address in the text ('[5.1.8.9]') is not read as one.
  return /(?:^|\s)(?:5\d\d[ -])?5\.1\.[78](?!\.?\d)/.test(text);
}

/**
 * Whether a 5xx answer to RCPT TO says, by its enhanced status code (RFC 3463), that the refusal is about Herald
 * rather than the reader's mailbox: X.7.x security or policy (Herald's IP on a blocklist, relaying denied), X.3.x
 * mail system, X.5.x protocol, X.6.x content, X.1.7/X.1.8 the sender's address. Postfix (smtpd_delay_reject=yes,
 * its default) gives every client and sender refusal at RCPT TO; counted as bounces, one blocklisting of Herald's
 * IP disabled the address of every reader at that provider. A bare code or another class still counts.
 */
function aboutSender(response: string): boolean {
  // Right after the reply code, so an IP address in the text ('[5.6.7.8]') is not read as one.
  const m = /(?:^|\s)5\d\d[ -]5\.(\d{1,3})\.(\d{1,3})\b/.exec(response);
  if (!m) return false;
  const [subject, detail] = [Number(m[1]), Number(m[2])];
  return subject === 3 || subject === 5 || subject === 6 || subject === 7 || (subject === 1 && (detail === 7 || detail === 8));
}

/**
 * Whether `to` is one bare address, exactly as nodemailer will read it. nodemailer parses the envelope's
 * recipients as an address list, so a stored address holding CR/LF, a space or angle brackets (written before
 * validation, or by hand) was delivered to whatever address it contained: 'a@x.test\r\nRCPT TO:<b@y.test>' went
 * to b@y.test, with a's signed unsubscribe links in it.
 */
export function isBareRecipient(to: string): boolean {
  if (/[\x00-\x20\x7f<>,;"()\\]/.test(to)) return false;
  const parsed = addressparser(to, { flatten: true });
  return parsed.length === 1 && parsed[0]!.address === to;
}

/**
 * A pooled SMTP transport: `poolSize` connections reused across messages, at most `ratePerSecond`
 * messages handed to the server per second, DKIM-signed when configured (nodemailer signs `raw` messages too).
 */
export function createMailer(opts: { url: string; user?: string; password?: string; from: string; poolSize: number; ratePerSecond?: number; dkim?: DkimOptions; clock?: Clock }): Mailer {
  const u = new URL(opts.url);
  const sender = parseSender(opts.from);
  const clock = opts.clock ?? systemClock;
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: opts.poolSize,
    // A long-lived connection is cheaper than a handshake per mail; servers often cap messages per session.
    maxMessages: 1000,
    host: u.hostname,
    port: Number(u.port || (u.protocol === 'smtps:' ? 465 : 587)),
    secure: u.protocol === 'smtps:',
    ...(opts.user ? { auth: { user: opts.user, pass: opts.password ?? '' } } : {}),
    ...(opts.dkim ? { dkim: opts.dkim } : {}),
  });
  // Paced here rather than by nodemailer's rateLimit, which is checked only when a pooled connection is
  // released: each new connection takes a mail at once, so with a pool larger than the rate the first mails
  // all went together (8 at 2 per second were handed over within 0.9 s).
  const limiter = opts.ratePerSecond ? createOriginLimiter(opts.ratePerSecond, systemClock, realSleep) : null;
  // nodemailer's pool closes the connection of a send whose signal aborts and fails that send alone.
  const abandoned = new AbortController();
  return {
    async send(mail) {
      // Refused like a mailbox that does not exist: a hard bounce, so the address is disabled and the reader told.
      if (!isBareRecipient(mail.to)) return { kind: 'permanent', reason: 'invalid recipient address: not one plain address', hardBounce: true };
      // Stopping, a mail that would wait for its slot is not handed over after SIGTERM: its job takes it up later.
      if (limiter && (await limiter.take(opts.url)) > 0) return { kind: 'retry', reason: 'not sent: the dispatcher is shutting down', unsent: true };
      let raw: Buffer;
      try {
        // Built here, not by nodemailer's MailComposer: see mime.ts for the measured cost that avoids.
        raw = buildMimeMessage({ ...mail, from: sender, date: new Date(clock.now()), boundary: newBoundary() });
      } catch (err) {
        // The build depends on this mail alone, so every retry would throw the same (8 attempts for nothing). Not
        // a bounce: no server saw the address.
        return { kind: 'permanent', reason: `message not built: ${(err as Error).message}`, hardBounce: false };
      }
      try {
        // With `raw`, nodemailer reads no addresses from the message: the envelope says who gets it.
        // The message id only names the mail in nodemailer's result; given, nodemailer does not generate one.
        // `signal` is nodemailer's (10.x); @types/nodemailer 8 does not declare it, hence the separate object.
        const options: Parameters<typeof transport.sendMail>[0] & { signal: AbortSignal } = { envelope: { from: sender.address, to: [mail.to] }, raw, messageId: mail.messageId, signal: abandoned.signal };
        await transport.sendMail(options);
        return { kind: 'sent' };
      } catch (err) {
        if (abandoned.signal.aborted) return { kind: 'retry', reason: 'abandoned at shutdown: no answer from the SMTP server in time', outcomeUnknown: true };
        return classifyMailError(err as Error & { responseCode?: number; code?: string; command?: string });
      }
    },
    stopWaiting: () => limiter?.stop(),
    abandon: () => abandoned.abort(),
    close() {
      transport.close();
    },
  };
}
