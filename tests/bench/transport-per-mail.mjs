// The digest benchmark's baseline, in its own process as the digest dispatcher is: the SMTP sink stays in the
// benchmark process for both, and each client's CPU is its own process's. Reads one JSON line on stdin,
// { port, count, concurrency, mail: { subject, text, html, headers } }, sends `count` mails with a new
// nodemailer transport (one SMTP connection) per mail, `concurrency` at a time, and prints one JSON line:
// { ms, cpuMs } for the sending alone (module loading excluded).
import nodemailer from 'nodemailer';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { port, count, concurrency, mail } = JSON.parse(input);

const cpu0 = process.cpuUsage();
const t0 = performance.now();
let next = 0;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < count) {
    const i = next++;
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false });
    await transport.sendMail({ from: 'Herald <herald@localhost>', to: `reader${i}@bench.test`, subject: mail.subject, text: mail.text, html: mail.html, headers: mail.headers });
    transport.close();
  }
}));
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
