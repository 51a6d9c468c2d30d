import { z } from 'zod';
import { isValidTimeZone, parseLocalTime } from '../digest/schedule.ts';

/** Request bodies of the JSON API. Every 400 names the failing field. */

const topicId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a topic id');
export const FollowBody = z
  .object({
    cadence: z.enum(['instant', 'daily', 'off']),
    channels: z.array(z.enum(['push', 'email'])).max(2).default(['push']),
  })
  .strict();
export const TimeZone = z.string().max(64).refine(isValidTimeZone, 'must be an IANA time zone such as Asia/Kolkata');
export const LocalTime = z.string().max(5).refine((v) => parseLocalTime(v) !== null, 'must be a 24-hour local time HH:MM, 00:00 to 23:59');
export const DigestTime = LocalTime;
export const Email = z.email().max(254);

/** A window that wraps midnight (22:00 to 07:00) is the usual case; an empty one (from = to) means nothing. */
export const QuietHoursBody = z
  .object({ from: LocalTime, to: LocalTime })
  .strict()
  .refine((q) => q.from !== q.to, { message: 'from and to must differ (turn quiet hours off with null)', path: ['to'] });

/** Time settings the push dispatcher applies (the delivery stage's `delivery` object); each field optional. */
export const DeliveryBody = z
  .object({
    quietHours: QuietHoursBody.nullable(),
    breakingThroughQuiet: z.boolean(),
    dailyPushCap: z.number().int().min(1).max(500).nullable(),
    heldAlerts: z.enum(['bundle', 'digest']),
    digestSendEmpty: z.boolean(),
    digestPushed: z.enum(['mark', 'omit']),
  })
  .strict()
  .partial();

export const SettingsBody = z
  .object({
    /** A new address waits for its confirmation link; null removes the address. */
    email: Email.nullable().optional(),
    timeZone: TimeZone.optional(),
    digestTime: DigestTime.optional(),
    delivery: DeliveryBody.optional(),
    /** "best": alerts only on strong matches (Google Alerts' "only the best results"); "all": every match. */
    quality: z.enum(['best', 'all']).optional(),
    topics: z.record(topicId, FollowBody).optional(),
  })
  .strict();

export const CreateSubscriberBody = SettingsBody.extend({
  timeZone: TimeZone.default('UTC'),
  digestTime: DigestTime.default('08:00'),
}).strict();

export const PushSubscriptionBody = z.object({
  endpoint: z.url({ protocol: /^https$/ }).max(2048),
  expirationTime: z.number().nullable().optional(),
  keys: z.object({
    // P-256 uncompressed point (65 bytes) and a 16-byte auth secret, base64url.
    p256dh: z.string().regex(/^[A-Za-z0-9_-]{86,88}={0,2}$/, 'must be the base64url P-256 public key of the subscription'),
    auth: z.string().regex(/^[A-Za-z0-9_-]{21,24}={0,2}$/, 'must be the base64url 16-byte auth secret'),
  }),
});

export const ManageLinkBody = z.object({ email: Email }).strict();
export const StoryRefBody = z.object({ storyId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a story id') }).strict();
/** Catalog ids, and readers' own alert ids ("alert.<hex>", from the classification stage), in a URL. */
export const TopicParams = z.object({ topicId: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/, 'a topic or alert id') });
export const DeviceParams = z.object({ deviceId: z.string().regex(/^[0-9a-f]{16}$/, 'a device id') });
export const TokenQuery = z.object({ t: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a link token') });

export function describeZodError(error: z.ZodError): { error: string; fields: { field: string; message: string }[] } {
  const fields = error.issues.map((i) => ({ field: i.path.join('.') || '(body)', message: i.message }));
  return { error: `invalid request: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, fields };
}

/** A reader opened an alert (sent by the service worker on notification click). */
/** More story ids than a bundle's payload can carry under the push size limit. */
const MAX_BUNDLE_CLICK_STORIES = 200;
const storyIdField = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a story id');
/** A click on a notification: one alert, or a bundle (storyId its bundle id) with the stories it listed. */
export const ClickBody = z.object({
  storyId: storyIdField,
  channel: z.enum(['push', 'email']).default('push'),
  stories: z.array(storyIdField).max(MAX_BUNDLE_CLICK_STORIES).optional(),
}).strict();
