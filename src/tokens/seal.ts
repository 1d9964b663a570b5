import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Seals values at rest with AES-256-GCM, so a dump of the store shows no token.
 * Keys are derived from SESSION_SECRET with HKDF (one per secret, so rotation keeps old sessions
 * readable); the first secret seals, every secret may open. Sealed values are bytes, not text:
 * Redis stores them as they are, without base64's third more.
 */
export interface Sealer {
  seal(value: unknown): Buffer;
  /** The value, or undefined when no key opens it (tampered, or sealed with a retired secret). */
  open(sealed: Buffer): unknown;
}

/** Format version, so that a later format can be told apart from this one. */
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;

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
      return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), body]);
    },
    open(sealed) {
      if (sealed.length <= HEADER_BYTES || sealed[0] !== VERSION) return undefined;
      const iv = sealed.subarray(1, 1 + IV_BYTES);
      const tag = sealed.subarray(1 + IV_BYTES, HEADER_BYTES);
      const body = sealed.subarray(HEADER_BYTES);
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
