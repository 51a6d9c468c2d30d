import { escapeHtml, type RenderedEmail } from '../deliver/email/render.ts';

/**
 * Emails the settings page sends (pure, tested byte for byte). Neither carries List-Unsubscribe: they are
 * answers to the reader's own request, not a list.
 */

const shell = (title: string, body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title></head>` +
  `<body style="font-family:system-ui,sans-serif;max-width:640px;margin:auto;padding:16px;color:#1a1a1a">${body}</body></html>`;

export function renderConfirmEmail(input: { address: string; confirmUrl: string; validHours: number }): RenderedEmail {
  const subject = 'Confirm your email address for Herald alerts';
  const text = [
    `Someone (hopefully you) asked Herald to send news alerts to ${input.address}.`,
    '',
    `Confirm this address: ${input.confirmUrl}`,
    '',
    `The link works once, for ${input.validHours} hours. If you did not ask for this, ignore this email: nothing else will be sent to you.`,
    '',
  ].join('\n');
  const html = shell(
    subject,
    `<p>Someone (hopefully you) asked Herald to send news alerts to <strong>${escapeHtml(input.address)}</strong>.</p>` +
      `<p><a href="${escapeHtml(input.confirmUrl)}">Confirm this address</a></p>` +
      `<p style="color:#666;font-size:13px">The link works once, for ${input.validHours} hours. If you did not ask for this, ignore this email: nothing else will be sent to you.</p>`,
  );
  return { subject, text, html, headers: {} };
}

export function renderManageLinkEmail(input: { manageUrl: string; validDays: number }): RenderedEmail {
  const subject = 'Your link to manage Herald alerts';
  const text = [
    'Open this link on any device to see and change your Herald alerts:',
    '',
    input.manageUrl,
    '',
    `It works for ${input.validDays} days. Anyone holding it can change your alerts, so do not forward this email. Lost it? Ask for a new one on the settings page.`,
    '',
  ].join('\n');
  const html = shell(
    subject,
    `<p>Open this link on any device to see and change your Herald alerts:</p>` +
      `<p><a href="${escapeHtml(input.manageUrl)}">Manage your alerts</a></p>` +
      `<p style="color:#666;font-size:13px">It works for ${input.validDays} days. Anyone holding it can change your alerts, so do not forward this email. Lost it? Ask for a new one on the settings page.</p>`,
  );
  return { subject, text, html, headers: {} };
}
