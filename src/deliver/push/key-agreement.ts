import { createECDH } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The P-256 key agreement of one push message (RFC 8291 section 3.1): a fresh ephemeral key pair, and the secret it
 * shares with the browser's `p256dh` point. Writes the ephemeral public key (65 bytes, uncompressed) then the secret
 * (32 bytes) into `out`; throws for a point that is not on P-256.
 */
export type KeyAgreement = (uaPublic: Buffer, out: Buffer) => void;

export const AGREEMENT_BYTES = 65 + 32;

/** Where `npm install` builds the native key agreement (native/p256.c; see native/build.mjs). */
const ADDON_PATH = fileURLToPath(new URL('./native/build/Release/p256.node', import.meta.url));

/**
 * Node's own ECDH, the fallback wherever the native one was not built. Its computeSecret checks its own key pair
 * before every derivation (OpenSSL's EC_KEY_check_key, a full scalar multiplication), which doubles the cost of
 * the agreement; one object is reused, since creating one costs about 9 µs.
 */
export function nodeKeyAgreement(): KeyAgreement {
  const ephemeral = createECDH('prime256v1');
  return (uaPublic, out) => {
    const asPublic = ephemeral.generateKeys();
    let secret: Buffer;
    try {
      secret = ephemeral.computeSecret(uaPublic);
    } catch {
      throw new Error('the subscription p256dh value is not a point on P-256');
    }
    asPublic.copy(out, 0);
    secret.copy(out, 65);
  };
}

/**
 * The native key agreement (the same OpenSSL, called without the redundant check: about 40 µs per message
 * instead of 78 µs on the benchmark machine), or null with the reason it cannot be used.
 */
export function loadNativeKeyAgreement(path = ADDON_PATH): { agreement: KeyAgreement; reason: null } | { agreement: null; reason: string } {
  if (!existsSync(path)) return { agreement: null, reason: `not built (${path} is missing; npm install builds it where a C compiler is found)` };
  let derive: KeyAgreement;
  try {
    derive = (createRequire(import.meta.url)(path) as { derive: KeyAgreement }).derive;
  } catch (err) {
    return { agreement: null, reason: `could not be loaded: ${(err as Error).message}` };
  }
  // A wrong secret would not show until browsers failed to decrypt every push: checked once against Node's ECDH.
  const problem = agreementProblem(derive);
  return problem === null ? { agreement: derive, reason: null } : { agreement: null, reason: `failed its check against Node's ECDH: ${problem}` };
}

/** Why `agree` cannot be used, or null: the browser's side (Node's ECDH) must find the secret it gives. */
export function agreementProblem(agree: KeyAgreement): string | null {
  const browser = createECDH('prime256v1');
  const out = Buffer.alloc(AGREEMENT_BYTES);
  try {
    agree(browser.generateKeys(), out);
    return browser.computeSecret(out.subarray(0, 65)).equals(out.subarray(65)) ? null : 'the secrets differ';
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The key agreement push encryption uses: the native one when `useNative` and it loads, else Node's, with the reason
 * (logged at start). Both give the same messages: tests/deliver/push-encrypt.test.ts runs every case through each.
 */
export function chooseKeyAgreement(useNative: boolean): { agreement: KeyAgreement; native: boolean; reason: string | null } {
  if (!useNative) return { agreement: nodeKeyAgreement(), native: false, reason: 'turned off (HERALD_PUSH_NATIVE_ECDH=false)' };
  const loaded = loadNativeKeyAgreement();
  return loaded.agreement ? { agreement: loaded.agreement, native: true, reason: null } : { agreement: nodeKeyAgreement(), native: false, reason: loaded.reason };
}
