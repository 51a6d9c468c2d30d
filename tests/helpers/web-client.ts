import type { ParsedMail } from 'mailparser';

/** Subjects of the account emails the settings page sends (not alerts or digests). */
export const ACCOUNT_MAIL_SUBJECTS = ['Confirm your email address for Herald alerts', 'Your link to manage Herald alerts'];
export const isAccountMail = (m: ParsedMail) => ACCOUNT_MAIL_SUBJECTS.includes(m.subject ?? '');

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: any;
}

/**
 * A JSON API client that behaves like the settings page: it keeps its cookies, fetches a CSRF token
 * before its first change, and sends it on every change. With `token`, it calls as a bearer-token client.
 */
export function webClient(baseUrl: string) {
  const jar = new Map<string, string>();
  let csrf: string | null = null;
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const keepCookies = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      if (value === '' || /max-age=0|expires=thu, 01 jan 1970/i.test(c)) jar.delete(name);
      else jar.set(name, value);
    }
  };
  const raw = async (path: string, init: { method?: string; body?: unknown; rawBody?: string; contentType?: string; token?: string; csrf?: string | null; headers?: Record<string, string> } = {}) => {
    const method = init.method ?? 'GET';
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (jar.size > 0) headers.cookie = cookieHeader();
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    if (init.body !== undefined || init.rawBody !== undefined) headers['content-type'] = init.contentType ?? 'application/json';
    const csrfToken = init.csrf === undefined ? csrf : init.csrf;
    if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
    const res = await fetch(`${baseUrl}${path}`, { method, headers, redirect: 'manual', body: init.rawBody ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined) });
    keepCookies(res);
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // HTML pages and empty answers stay text.
    }
    return { status: res.status, headers: res.headers, body } as ApiResponse;
  };
  return {
    jar,
    async ensureCsrf() {
      if (!csrf) csrf = (await raw('/api/csrf')).body.token as string;
      return csrf;
    },
    async api(path: string, init: Parameters<typeof raw>[1] = {}) {
      if ((init.method ?? 'GET') !== 'GET' && !init.token && init.csrf === undefined) await this.ensureCsrf();
      return raw(path, init);
    },
    raw,
  };
}

/** The confirmation link in the newest confirmation email to `address`. */
export function confirmationLink(mails: ParsedMail[]): string {
  const mail = [...mails].reverse().find((m) => m.subject === ACCOUNT_MAIL_SUBJECTS[0]);
  const link = /Confirm this address: (\S+)/.exec(mail?.text ?? '')?.[1];
  if (!link) throw new Error('no confirmation email found');
  return link;
}

export function manageLink(mails: ParsedMail[]): string {
  const mail = [...mails].reverse().find((m) => m.subject === ACCOUNT_MAIL_SUBJECTS[1]);
  const link = /(https?:\/\/\S+\/manage\?t=\S+)/.exec(mail?.text ?? '')?.[1];
  if (!link) throw new Error('no manage-link email found');
  return link;
}

/** What a reader does with a confirmation email: open the link (a page with one button), then press it. */
export async function followConfirmation(link: string): Promise<Response> {
  const page = await fetch(link);
  if (page.status !== 200) return page;
  const html = await page.text();
  if (!html.includes('<button type="submit">Confirm my address</button>')) throw new Error('the confirmation page has no confirm button');
  return fetch(link, { method: 'POST' });
}
