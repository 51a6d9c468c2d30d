import nodemailer from 'nodemailer';

export interface OutgoingEmail {
  to: string;
  subject: string;
  text: string;
  html: string;
  headers: Record<string, string>;
  messageId: string;
}

/** permanent: the server refused this message for good (5xx); `hardBounce` when it refused the recipient. */
export type MailOutcome = { kind: 'sent' } | { kind: 'retry'; reason: string } | { kind: 'permanent'; reason: string; hardBounce: boolean };

export interface Mailer {
  send(mail: OutgoingEmail): Promise<MailOutcome>;
  close(): void;
}

export interface DkimOptions {
  domainName: string;
  keySelector: string;
  privateKey: string;
}

/**
 * The one place nodemailer errors are read: SMTP 5xx is permanent, 4xx and connection trouble are not.
 * A 5xx answer to RCPT TO (nodemailer's EENVELOPE) or 550-553 is a hard bounce of the address.
 */
export function classifyMailError(err: { responseCode?: number; code?: string; command?: string; message: string }): MailOutcome {
  const code = err.responseCode;
  if (code !== undefined && code >= 500) {
    const recipient = err.code === 'EENVELOPE' || /RCPT/i.test(err.command ?? '') || (code >= 550 && code <= 553);
    return { kind: 'permanent', reason: `SMTP ${code}: ${err.message}`, hardBounce: recipient };
  }
  return { kind: 'retry', reason: code ? `SMTP ${code}: ${err.message}` : `${err.code ?? 'error'}: ${err.message}` };
}

/**
 * A pooled SMTP transport: `poolSize` connections reused across messages, at most `ratePerSecond`
 * messages handed to the server per second, DKIM-signed when configured.
 */
export function createMailer(opts: { url: string; user?: string; password?: string; from: string; poolSize: number; ratePerSecond?: number; dkim?: DkimOptions }): Mailer {
  const u = new URL(opts.url);
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: opts.poolSize,
    // A long-lived connection is cheaper than a handshake per mail; servers often cap messages per session.
    maxMessages: 1000,
    ...(opts.ratePerSecond ? { rateDelta: 1000, rateLimit: opts.ratePerSecond } : {}),
    host: u.hostname,
    port: Number(u.port || (u.protocol === 'smtps:' ? 465 : 587)),
    secure: u.protocol === 'smtps:',
    ...(opts.user ? { auth: { user: opts.user, pass: opts.password ?? '' } } : {}),
    ...(opts.dkim ? { dkim: opts.dkim } : {}),
  });
  return {
    async send(mail) {
      try {
        await transport.sendMail({
          from: opts.from,
          to: mail.to,
          subject: mail.subject,
          text: mail.text,
          html: mail.html,
          headers: mail.headers,
          messageId: mail.messageId,
        });
        return { kind: 'sent' };
      } catch (err) {
        return classifyMailError(err as Error & { responseCode?: number; code?: string; command?: string });
      }
    },
    close() {
      transport.close();
    },
  };
}
