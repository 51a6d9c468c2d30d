import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import webpush from 'web-push';
import type { Config } from '../config/options.ts';
import type { VapidKeys } from '../deliver/push/web-push-sender.ts';

export interface Secrets {
  vapid: VapidKeys;
  signingKey: string;
  adminToken: string;
}

function readOrCreate(path: string, create: () => string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = create();
  // 0600: only the Herald user may read its keys; flag "wx" so two processes starting at once keep one key.
  try {
    writeFileSync(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return value;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(path, 'utf8').trim();
    throw err;
  }
}

/**
 * Secrets come from the environment (or *_FILE) when given; otherwise they are generated once into the
 * data directory and reused, so push subscriptions and emailed links keep working across restarts.
 */
export function resolveSecrets(config: Config): Secrets {
  const needsFiles = !config.vapidPrivateKey || !config.signingKey || !config.adminToken;
  if (needsFiles) mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  let vapid = { publicKey: config.vapidPublicKey ?? '', privateKey: config.vapidPrivateKey ?? '' };
  if (!config.vapidPrivateKey) {
    const stored = readOrCreate(join(config.dataDir, 'vapid.json'), () => JSON.stringify(webpush.generateVAPIDKeys()));
    vapid = JSON.parse(stored) as typeof vapid;
  }
  const signingKey = config.signingKey ?? readOrCreate(join(config.dataDir, 'signing-key'), () => randomBytes(32).toString('hex'));
  const adminToken = config.adminToken ?? readOrCreate(join(config.dataDir, 'admin-token'), () => randomBytes(24).toString('hex'));
  const previous = config.vapidPreviousKeys ?? [];
  return { vapid: { ...vapid, subject: config.vapidSubject, ...(previous.length > 0 ? { previous } : {}) }, signingKey, adminToken };
}
