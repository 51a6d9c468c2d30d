import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RedisClient } from '../store/redis.ts';
import type { Logger } from 'pino';
import type { Topic } from '../config/catalog.ts';
import type { Mailer } from '../deliver/email/mailer.ts';
import type { PushSender } from '../deliver/push/web-push-sender.ts';
import type { Clock, Follow } from '../model.ts';
import type { Enqueue, JobStateOf, Redelay } from '../queue/queues.ts';
import type { DigestStore } from '../store/digests.ts';
import type { Ledger } from '../store/ledger.ts';
import type { StoryStore } from '../store/stories.ts';
import type { SubscriberStore } from '../store/subscribers.ts';
import { HttpError } from './http-error.ts';
import type { AlertRoutesOptions } from './routes/alerts.ts';
import type { Limiters, SecuritySettings } from './security.ts';

export interface WebDeps {
  /** Readers' own alerts API (src/web/routes/alerts.ts). */
  alerts: Omit<AlertRoutesOptions, 'authenticate' | 'limitReplay'>;
  redis: RedisClient;
  subscribers: SubscriberStore;
  digests: DigestStore;
  /** Stories a digest's page lists. */
  stories: StoryStore;
  ledger: Ledger;
  /** Add and move the bundle of a reader's held pushes when they change their quiet hours. */
  enqueue: Enqueue;
  jobState: JobStateOf;
  redelay: Redelay;
  topics: readonly Topic[];
  vapidPublicKey: string;
  signingKey: string;
  /** Cookies get the Secure flag when the public URL is https. */
  secureCookies: boolean;
  clock: Clock;
  log: Logger;
  /** Sends confirmation and "manage your alerts" emails. */
  mailer: Mailer;
  /** Sends "send a test notification" pushes. */
  pushSender: PushSender;
  /** Public base URL without a trailing slash, for links in emails. */
  baseUrl: string;
  /** Redis key prefix, for the rate-limit counters. */
  prefix: string;
  /** Push service origins a subscription endpoint must belong to (HERALD_PUSH_SERVICES). */
  pushServices: readonly string[];
  /** Most push devices one subscriber may register (HERALD_MAX_PUSH_DEVICES_PER_SUBSCRIBER). */
  maxPushDevices: number;
  limits: SecuritySettings;
  trustProxy: boolean;
}

export const TOKEN_COOKIE = 'herald_token';
const ONE_YEAR_SECONDS = 365 * 24 * 60 * 60;

/** What every route plugin shares: the dependencies and the identity helpers built on them. */
export interface WebContext {
  deps: WebDeps;
  limiters: Limiters;
  /** The subscriber id behind the request's bearer token or cookie; 401 without one, 403 for an unknown one. */
  authenticate(req: FastifyRequest): Promise<string>;
  setTokenCookie(reply: FastifyReply, token: string): void;
  checkTopics(topics: Record<string, Follow> | undefined): void;
}

export function requestToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7) : req.cookies[TOKEN_COOKIE];
}

export function createWebContext(deps: WebDeps, limiters: Limiters): WebContext {
  const topicIds = new Set(deps.topics.map((t) => t.id));
  return {
    deps,
    limiters,
    async authenticate(req) {
      const token = requestToken(req);
      if (!token) throw new HttpError(401, 'not signed in: save your settings first, or open your "manage your alerts" link');
      const id = await deps.subscribers.idForToken(token);
      if (!id) throw new HttpError(403, 'this alert link or cookie is not valid any more');
      return id;
    },
    setTokenCookie(reply, token) {
      reply.setCookie(TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'lax', secure: deps.secureCookies, path: '/', maxAge: ONE_YEAR_SECONDS });
    },
    checkTopics(topics) {
      for (const id of Object.keys(topics ?? {})) {
        if (!topicIds.has(id)) throw new HttpError(400, `invalid request: topics.${id}: unknown topic`, { fields: [{ field: `topics.${id}`, message: 'unknown topic' }] });
      }
    },
  };
}
