import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { recipients } from '../../helpers/smtp-sink.ts';

/**
 * Per recipient: 4xx for the first n tries, 5xx to RCPT TO, the message itself refused after DATA (its size or
 * content), or accepted only after `acceptAfterMs` (a slow server).
 */
export type RecipientScript =
  | { tempFail: number; code?: 421 | 451 }
  /** RCPT TO refused with `message` (default a 5.1.1 unknown mailbox), for the first `times` tries (default: every one). */
  | { reject: 530 | 550 | 553 | 554; message?: string; times?: number }
  | { refuseData: 550 | 552 | 554; message: string } | { acceptAfterMs: number };

/**
 * An SMTP server in this process that each test scripts per recipient: accept, answer 421/451 for the
 * first n tries, refuse the address with 550, or refuse the message after DATA. Accepted mails are parsed with mailparser; `raw` keeps the bytes.
 */
export async function startScriptedSmtp(opts: { parse?: boolean; delayMs?: number } = {}) {
  const mails: ParsedMail[] = [];
  const raw: string[] = [];
  /** When each message's data finished arriving (ms), in order: what a rate limit is judged by. */
  const arrivals: number[] = [];
  let accepted = 0;
  const scripts = new Map<string, RecipientScript>();
  const tries = new Map<string, number>();
  /** Answers to the next MAIL FROMs, one each, whoever the mail is for: the relay refusing Herald's sender. */
  let senderRefusals: { code: 550 | 553 | 554; message: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    size: 10 * 1024 * 1024,
    onMailFrom(_address, _session, callback) {
      const refusal = senderRefusals.shift();
      if (refusal) return callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
      callback();
    },
    onRcptTo(address, _session, callback) {
      const to = address.address.toLowerCase();
      const n = (tries.get(to) ?? 0) + 1;
      tries.set(to, n);
      const s = scripts.get(to);
      if (s && 'reject' in s && n <= (s.times ?? Infinity)) return callback(Object.assign(new Error(s.message ?? `5.1.1 <${to}>: mailbox unavailable`), { responseCode: s.reject }));
      if (s && 'tempFail' in s && n <= s.tempFail) return callback(Object.assign(new Error('4.3.2 try again later'), { responseCode: s.code ?? 451 }));
      callback();
    },
    onData(stream, session, callback) {
      const refusal = session.envelope.rcptTo.map((r) => scripts.get(r.address.toLowerCase())).find((x) => x !== undefined && 'refuseData' in x);
      if (refusal && 'refuseData' in refusal) {
        stream.on('data', () => undefined);
        stream.on('end', () => callback(Object.assign(new Error(refusal.message), { responseCode: refusal.refuseData })));
        return;
      }
      if (opts.parse === false) {
        stream.on('data', () => undefined);
        stream.on('end', () => {
          arrivals.push(Date.now());
          accepted++;
          callback();
        });
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        arrivals.push(Date.now());
        const buf = Buffer.concat(chunks);
        raw.push(buf.toString('utf8'));
        simpleParser(buf)
          .then((mail) => {
            // Counted as received once the data is in, before the reply: a sender killed now never hears "250".
            mails.push(mail);
            accepted++;
            const slow = session.envelope.rcptTo.map((r) => scripts.get(r.address.toLowerCase())).find((x) => x !== undefined && 'acceptAfterMs' in x);
            const delayMs = slow && 'acceptAfterMs' in slow ? slow.acceptAfterMs : opts.delayMs;
            if (delayMs) setTimeout(callback, delayMs);
            else callback();
          })
          .catch(callback);
      });
    },
  });
  // A client killed mid-session resets its connection; smtp-server reports that here.
  server.on('error', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    raw,
    arrivals,
    accepted: () => accepted,
    tries: (address: string) => tries.get(address.toLowerCase()) ?? 0,
    script: (address: string, s: RecipientScript) => void scripts.set(address.toLowerCase(), s),
    refuseSender: (refusals: { code: 550 | 553 | 554; message: string }[]) => void (senderRefusals = [...refusals]),
    to: (address: string) => mails.filter((m) => recipients(m).includes(address.toLowerCase())),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
export type ScriptedSmtp = Awaited<ReturnType<typeof startScriptedSmtp>>;
