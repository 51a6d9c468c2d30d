import { escapeHtml } from '../deliver/email/render.ts';

/** Server-rendered so it works from any mail client, with no script. */
export function renderUnsubscribePage(input: { state: 'confirm' | 'done'; what: string; action: string }): string {
  const body =
    input.state === 'confirm'
      ? `<h1>Unsubscribe from ${escapeHtml(input.what)}?</h1>
<form method="post" action="${escapeHtml(input.action)}"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`
      : `<h1>You are unsubscribed from ${escapeHtml(input.what)}.</h1><p><a href="/">Change your alert settings</a></p>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Unsubscribe · Herald</title><link rel="stylesheet" href="/style.css"></head><body><main class="narrow">${body}</main></body></html>`;
}
