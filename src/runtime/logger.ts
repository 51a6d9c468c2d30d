import pino, { type Logger } from 'pino';

/** One JSON line per event; fields are snake_case (feed_id, story_id, subscriber_id, job_id). */
export function createLogger(level: string): Logger {
  return pino({ level, base: { app: 'herald' }, redact: ['*.password', '*.privateKey', '*.token'] });
}
