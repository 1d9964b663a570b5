import type { Store as RateLimitStore } from 'express-rate-limit';
import type { SealedRecord, TokenVault } from '../tokens/token-store.js';
import type { IndexRef, SessionIndex } from './session-index.js';

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
  /** Moves an existing session's expiry (and its index entry's, noting `seenAt`, epoch s); never creates one. */
  touchSession(sid: string, ttlMs: number, seenAt: number): Promise<void>;
  tokens: TokenVault;
  /** Signed-in sessions by person and by provider session (the sessions page, back-channel logout). */
  index: SessionIndex;
  /** What happened in a session's sign-in and since (the "How you signed in" panel): its last events. */
  flow: FlowLog;
  /**
   * Ends the session for good, in one step: a tombstone for the id, the session, its tokens and its
   * index entry deleted (and, when `ref` names them, its place in the index sets; lists prune the
   * rest). Returns the tokens it held, so the caller can revoke exactly what was stored last.
   */
  end(sid: string, ref?: IndexRef): Promise<SealedRecord | undefined>;
  /** True the first time `key` is remembered, false while it still is (`ttlMs`): a replay cache. */
  remember(key: string, ttlMs: number): Promise<boolean>;
  /** Signed-in sessions held, where the store can tell cheaply (the in-process one). */
  sessionsActive?(): number;
  /** A counter store shared by every instance, for the rate limits (Redis only). */
  rateLimitStore?(prefix: string): RateLimitStore;
  lock: RefreshLock;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A session's protocol events, oldest first, at most {@link FLOW_MAX_EVENTS}: appended without a
 * version check (each is one more line), never for an ended session, deleted when it ends.
 */
export interface FlowLog {
  append(sid: string, events: readonly string[], ttlMs: number): Promise<void>;
  read(sid: string): Promise<string[]>;
}

export const FLOW_MAX_EVENTS = 50;

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
