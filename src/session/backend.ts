import type { SealedRecord, TokenVault } from '../tokens/token-store.js';

/**
 * Where sessions, their tokens and their tombstones live: in this process (development) or in
 * Redis (several instances). The two implementations keep the same promises:
 * - a session that has ended stays ended: `end` leaves a tombstone, and a later save for that id
 *   (a request that loaded the session before the sign-out) is dropped, atomically with the check;
 * - a token write names the version it read, and the check is atomic with the write;
 * - every call answers or fails within {@link STORE_TIMEOUT_MS}: a 503 now beats a hang.
 */
export interface SessionBackend {
  readonly kind: 'memory' | 'redis';
  /** The encoded session, or undefined. */
  getSession(sid: string): Promise<string | undefined>;
  /** Stores the session unless it has ended; false when it had (the save was dropped). */
  setSession(sid: string, value: string, ttlMs: number): Promise<boolean>;
  /** Moves an existing session's expiry; never creates one. */
  touchSession(sid: string, ttlMs: number): Promise<void>;
  tokens: TokenVault;
  /**
   * Ends the session for good, in one step: a tombstone for the id, the session and its tokens
   * deleted. Returns the tokens it held, so the caller can revoke exactly what was stored last.
   */
  end(sid: string): Promise<SealedRecord | undefined>;
  lock: RefreshLock;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Serialises refreshes of one session across every instance that shares the backend. */
export interface RefreshLock {
  /** Waits (bounded) until this instance holds the lock for `sid`; returns its release. */
  acquire(sid: string): Promise<() => void>;
}

/** Every store call answers within this or counts as failed. */
export const STORE_TIMEOUT_MS = 2000;

/**
 * How long a tombstone outlives its session: far longer than any request can still be running when
 * the sign-out happens (the refresh lock is waited for at most 8 s, each outbound call times out
 * after HTTP_TIMEOUT_MS, API retries stop within API_RETRY_BUDGET_MS).
 */
export const TOMBSTONE_TTL_MS = 10 * 60_000;
