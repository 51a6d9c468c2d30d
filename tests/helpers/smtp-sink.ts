import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface SmtpSink {
  url: string;
  mails: ParsedMail[];
  /** Mails to one recipient. */
  to(address: string): ParsedMail[];
  close(): Promise<void>;
}

/** Lower-cased To: addresses of a parsed mail. */
export function recipients(m: ParsedMail): (string | undefined)[] {
  const to = Array.isArray(m.to) ? m.to : m.to ? [m.to] : [];
  return to.flatMap((a) => a.value.map((v) => v.address?.toLowerCase()));
}

/** A real SMTP server in this process; every accepted message is parsed with mailparser. */
export async function startSmtpSink(opts: { delayMs?: number } = {}): Promise<SmtpSink> {
  const mails: ParsedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream)
        .then(async (mail) => {
          // A slow server keeps sends in flight, as a real one under load does.
          if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
          mails.push(mail);
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    to: (address) => mails.filter((m) => recipients(m).includes(address.toLowerCase())),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
