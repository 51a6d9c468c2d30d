import nodemailer from 'nodemailer';

export interface OutgoingEmail {
  to: string;
  subject: string;
  text: string;
  html: string;
  headers: Record<string, string>;
  messageId: string;
}

export type MailOutcome = { kind: 'sent' } | { kind: 'retry'; reason: string } | { kind: 'permanent'; reason: string };

export interface Mailer {
  send(mail: OutgoingEmail): Promise<MailOutcome>;
  close(): void;
}

/** The one place nodemailer errors are read: SMTP 5xx is permanent, 4xx and connection trouble are not. */
export function classifyMailError(err: { responseCode?: number; code?: string; message: string }): MailOutcome {
  const code = err.responseCode;
  if (code !== undefined && code >= 500) return { kind: 'permanent', reason: `SMTP ${code}: ${err.message}` };
  return { kind: 'retry', reason: code ? `SMTP ${code}: ${err.message}` : `${err.code ?? 'error'}: ${err.message}` };
}

export function createMailer(opts: { url: string; user?: string; password?: string; from: string; poolSize: number }): Mailer {
  const u = new URL(opts.url);
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: opts.poolSize,
    host: u.hostname,
    port: Number(u.port || (u.protocol === 'smtps:' ? 465 : 587)),
    secure: u.protocol === 'smtps:',
    ...(opts.user ? { auth: { user: opts.user, pass: opts.password ?? '' } } : {}),
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
        return classifyMailError(err as Error & { responseCode?: number; code?: string });
      }
    },
    close() {
      transport.close();
    },
  };
}
