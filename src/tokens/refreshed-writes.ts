import { setTimeout as sleep } from 'node:timers/promises';
import { STORE_TIMEOUT_MS } from '../session/backend.js';
import type { Logger } from '../log.js';
import type { Revoker } from './revocation.js';
import type { TokenRecord, TokenStore, WriteOutcome } from './token-store.js';

/** How long a refreshed record that could not be stored is tried again, and how often. */
const KEEP_TRYING_MS = 8_000;
const RETRY_EVERY_MS = 250;

/**
 * Stores the tokens a refresh brought back. By then the provider has already rotated the refresh
 * token: if the store fails at this moment and the new record is lost, the next refresh spends the
 * old, used token and the provider's reuse detection ends the grant, signing the person out. So a
 * failed write is answered as a 503 at once, and tried again in the background for a few seconds;
 * once the store is back, the record lands and the session goes on.
 */
export interface RefreshedWrites {
  /** Writes `record`; on a store error, throws it (a 503) and keeps trying in the background. */
  write(sid: string, record: TokenRecord, ttlMs: number, log: Logger): Promise<WriteOutcome>;
  /** Resolves when no write for `sid` is pending, or after the store deadline. */
  settled(sid: string): Promise<void>;
  /** The pending write for `sid`, if any: the refresh lock is held until it settles. */
  pending(sid: string): Promise<void> | undefined;
}

export function createRefreshedWrites(tokens: TokenStore, revoker: Revoker): RefreshedWrites {
  const pending = new Map<string, Promise<void>>();

  async function keepTrying(sid: string, record: TokenRecord, ttlMs: number, log: Logger) {
    const deadline = Date.now() + KEEP_TRYING_MS;
    while (Date.now() < deadline) {
      await sleep(RETRY_EVERY_MS, undefined, { ref: false });
      const outcome = await tokens.write(sid, record, ttlMs).catch(() => undefined);
      if (outcome === undefined) continue;
      // Signed out meanwhile: what the provider sent must not outlive the session.
      if (outcome === 'ended') revoker.revokeLater(record.tokens, log);
      log.info({ outcome }, 'the store took the refreshed tokens after a failure');
      return;
    }
    log.error('refreshed tokens could not be stored: the next refresh may end this session');
  }

  return {
    async write(sid, record, ttlMs, log) {
      try {
        return await tokens.write(sid, record, ttlMs);
      } catch (err) {
        const retry = keepTrying(sid, record, ttlMs, log).finally(() => pending.delete(sid));
        pending.set(sid, retry);
        throw err;
      }
    },
    async settled(sid) {
      const write = pending.get(sid);
      if (write) await Promise.race([write, sleep(STORE_TIMEOUT_MS, undefined, { ref: false })]);
    },
    pending: (sid) => pending.get(sid),
  };
}
