import { escapeHtml } from '../deliver/email/render.ts';

/** Server-rendered pages reached from email links: they work from any mail client, with no script. */
export const page = (title: string, body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)} · Herald</title><link rel="stylesheet" href="/style.css"></head><body><main class="narrow">${body}</main></body></html>`;

export function renderMessagePage(input: { title: string; message: string }): string {
  return page(input.title, `<h1>${escapeHtml(input.title)}</h1><p>${escapeHtml(input.message)}</p><p><a href="/">Open your alert settings</a></p>`);
}

/** The page an emailed confirmation link opens: one button, so a mail scanner's prefetch confirms nothing. */
export function renderConfirmPage(input: { action: string }): string {
  return page(
    'Confirm your address',
    `<h1>Confirm your address for Herald alerts</h1><p>Press the button to start receiving the email alerts and digests you chose.</p>
<form method="post" action="${escapeHtml(input.action)}"><button type="submit">Confirm my address</button></form>`,
  );
}
