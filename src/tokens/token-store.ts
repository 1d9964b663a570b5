import type { StoredTokens } from '../auth/tokens.js';
import { storeUnavailable } from '../errors.js';
import type { Sealer } from './seal.js';

/**
 * A session's tokens, kept apart from the session: the session says who the person is; this record
 * holds what they may do. Only sign-in, refresh and sign-out write it, and each write names the
 * version it read, so an older refresh can never overwrite a newer one on any instance.
 */
export interface TokenRecord {
  /** 1 at sign-in, +1 per refresh; the version check is atomic with the write. */
  version: number;
  tokens: StoredTokens;
  refreshes: RefreshHistory;
}

export interface RefreshHistory {
  count: number;
  /** Epoch seconds of the last refresh. */
  lastAt?: number;
  /** Whether the last refresh brought a new refresh token (observed, not promised). */
  rotated?: boolean;
}

/**
 * written: the record is stored. conflict: the stored version is not the one expected (another
 * request or instance wrote first). ended: the session was signed out; nothing was stored.
 */
export type WriteOutcome = 'written' | 'conflict' | 'ended';

/** A token record as the backend keeps it: a version it can compare, and sealed bytes. */
export interface SealedRecord {
  version: number;
  sealed: Buffer;
}

/** What a session backend (memory or Redis) provides for tokens; see src/session/backend.ts. */
export interface TokenVault {
  read(sid: string): Promise<SealedRecord | undefined>;
  /** Writes `next` if the stored version is `expectedVersion` (0: none) and the session has not ended. */
  write(
    sid: string,
    next: SealedRecord,
    expectedVersion: number,
    ttlMs: number,
  ): Promise<WriteOutcome>;
}

export interface TokenStore {
  /** The record, or undefined when there is none or no key opens it (tampered, retired secret). */
  read(sid: string): Promise<TokenRecord | undefined>;
  /** Stores `record` if the stored version is `record.version - 1`; see {@link WriteOutcome}. */
  write(sid: string, record: TokenRecord, ttlMs: number): Promise<WriteOutcome>;
  /** Opens a record handed back by the backend when it ended a session, to revoke its tokens. */
  open(sealed: SealedRecord): TokenRecord | undefined;
}

/**
 * Tokens are sealed before they reach the backend and opened only when a request needs them.
 * A backend failure is a 503 (store_unavailable), never "no tokens": the person stays signed in.
 */
export function createTokenStore(vault: TokenVault, sealer: Sealer): TokenStore {
  function open(entry: SealedRecord): TokenRecord | undefined {
    const opened = sealer.open(entry.sealed) as Omit<TokenRecord, 'version'> | undefined;
    return opened && { version: entry.version, tokens: opened.tokens, refreshes: opened.refreshes };
  }
  return {
    async read(sid) {
      const entry = await vault.read(sid).catch((err: unknown) => {
        throw storeUnavailable(err);
      });
      return entry && open(entry);
    },
    async write(sid, { version, tokens, refreshes }, ttlMs) {
      const sealed = sealer.seal({ tokens, refreshes });
      return vault.write(sid, { version, sealed }, version - 1, ttlMs).catch((err: unknown) => {
        throw storeUnavailable(err);
      });
    },
    open,
  };
}
