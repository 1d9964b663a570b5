import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Seals values at rest with AES-256-GCM, so a dump of the session store shows no token.
 * Keys are derived from SESSION_SECRET with HKDF (one per secret, so rotation keeps old sessions
 * readable); the first secret seals, every secret may open.
 */
export interface Sealer {
  seal(value: unknown): string;
  /** The value, or undefined when no key opens it (tampered, or sealed with a retired secret). */
  open(sealed: string): unknown;
}

const PREFIX = 'sealed.v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function createSealer(secrets: readonly string[]): Sealer {
  const keys = secrets.map((secret) =>
    Buffer.from(hkdfSync('sha256', secret, 'codeflow', 'session token sealing v1', 32)),
  );
  const [sealingKey] = keys;
  if (!sealingKey) throw new Error('at least one secret is needed');
  return {
    seal(value) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealingKey, iv);
      const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
      return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
    },
    open(sealed) {
      if (!sealed.startsWith(PREFIX)) return undefined;
      const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
      const iv = raw.subarray(0, IV_BYTES);
      const tag = raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES);
      const body = raw.subarray(IV_BYTES + TAG_BYTES);
      for (const key of keys) {
        try {
          const decipher = createDecipheriv('aes-256-gcm', key, iv);
          decipher.setAuthTag(tag);
          return JSON.parse(
            Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8'),
          ) as unknown;
        } catch {
          // not this key: try the next one
        }
      }
      return undefined;
    },
  };
}
