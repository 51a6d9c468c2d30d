import type { Agent } from 'node:https';
import webpush, { WebPushError } from 'web-push';
import type { PushSubscriptionRecord } from '../../model.ts';

export interface VapidKeys {
  publicKey: string;
  privateKey: string;
  subject: string;
}

export type PushOutcome =
  | { kind: 'sent'; status: number }
  /** The subscription no longer exists at the push service: remove it. */
  | { kind: 'gone'; status: number }
  | { kind: 'retry'; status: number | null; reason: string; retryAfterMs: number | null }
  | { kind: 'permanent'; status: number; reason: string };

export interface PushSender {
  send(sub: PushSubscriptionRecord, payload: string, opts: { ttlSeconds: number; urgency: 'normal' | 'high'; topic?: string }): Promise<PushOutcome>;
}

function retryAfterMs(headers: Record<string, string | string[] | undefined> | undefined): number | null {
  const raw = headers?.['retry-after'];
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (!v) return null;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const date = Date.parse(v);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : null;
}

/** Maps web-push's answers to what the dispatcher does next; the one place WebPushError is read. */
export function classifyPushResponse(status: number, body: string, headers?: Record<string, string | string[] | undefined>): PushOutcome {
  if (status >= 200 && status < 300) return { kind: 'sent', status };
  if (status === 404 || status === 410) return { kind: 'gone', status };
  if (status === 429 || status >= 500) return { kind: 'retry', status, reason: `push service answered ${status}`, retryAfterMs: retryAfterMs(headers) };
  return { kind: 'permanent', status, reason: `push service answered ${status}: ${body.slice(0, 200)}` };
}

export function createWebPushSender(vapid: VapidKeys, opts: { agent?: Agent; timeoutMs?: number } = {}): PushSender {
  return {
    async send(sub, payload, o) {
      try {
        const res = await webpush.sendNotification({ endpoint: sub.endpoint, keys: sub.keys }, payload, {
          vapidDetails: vapid,
          TTL: o.ttlSeconds,
          urgency: o.urgency,
          ...(o.topic ? { topic: o.topic } : {}),
          contentEncoding: 'aes128gcm',
          timeout: opts.timeoutMs ?? 15000,
          ...(opts.agent ? { agent: opts.agent } : {}),
        });
        return classifyPushResponse(res.statusCode, res.body, res.headers);
      } catch (err) {
        if (err instanceof WebPushError) return classifyPushResponse(err.statusCode, err.body, err.headers);
        const e = err as Error & { code?: string };
        // A subscription whose keys cannot be used will never work: permanent, not retried.
        if (/public key|auth secret|p256dh/i.test(e.message)) return { kind: 'permanent', status: 0, reason: `invalid subscription keys: ${e.message}` };
        return { kind: 'retry', status: null, reason: `network error: ${e.code ?? e.message}`, retryAfterMs: null };
      }
    },
  };
}
