import { escapeHtml } from '../deliver/email/render.ts';
import { page } from './pages.ts';

export function renderUnsubscribePage(input: { state: 'confirm' | 'done'; what: string; action: string } | { state: 'stale' }): string {
  if (input.state === 'stale') {
    return page(
      'Unsubscribe',
      `<h1>The address this email went to no longer gets Herald emails.</h1><p>Its link has nothing left to stop, so nothing was changed.</p><p><a href="/">Change your alert settings</a></p>`,
    );
  }
  const body =
    input.state === 'confirm'
      ? `<h1>Unsubscribe from ${escapeHtml(input.what)}?</h1>
<form method="post" action="${escapeHtml(input.action)}"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`
      : `<h1>You are unsubscribed from ${escapeHtml(input.what)}.</h1><p><a href="/">Change your alert settings</a></p>`;
  return page('Unsubscribe', body);
}
