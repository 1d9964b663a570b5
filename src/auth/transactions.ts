import * as client from 'openid-client';
import type { AuthRequirement } from './step-up.js';

/** One sign-in attempt, kept server-side in the session under its `state`. */
export interface LoginTransaction {
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string;
  /** Epoch seconds. */
  createdAt: number;
  /** A step-up: what the returning ID token must show (acr, auth_time), asked for in the request. */
  stepUp?: AuthRequirement;
}

export type TransactionMap = Record<string, LoginTransaction>;

/** Pending sign-ins one session may hold: enough for several tabs, bounded against abuse. */
export const MAX_PENDING_TRANSACTIONS = 10;
/** A sign-in not finished within this many seconds must start again. */
export const TRANSACTION_TTL_SECONDS = 10 * 60;
export const DEFAULT_RETURN_TO = '/dashboard';
/**
 * Longest returnTo kept. It is stored with the pending sign-in, so its length is storage an
 * anonymous visitor controls (a 2,000-character one made a 2.6 KB session); deep links are shorter.
 */
export const MAX_RETURN_TO_LENGTH = 512;

/** Fresh, unguessable values for one attempt: all three MUST be new for every authorization request. */
export function newTransaction(
  returnTo: string,
  now: number,
  stepUp?: AuthRequirement,
): LoginTransaction {
  return {
    state: client.randomState(),
    nonce: client.randomNonce(),
    codeVerifier: client.randomPKCECodeVerifier(),
    returnTo,
    createdAt: now,
    ...(stepUp && { stepUp }),
  };
}

function isLive(tx: LoginTransaction, now: number): boolean {
  return now - tx.createdAt < TRANSACTION_TTL_SECONDS && tx.createdAt <= now + 60;
}

/** Adds `tx`, dropping expired ones and then the oldest beyond the cap. Returns the new map. */
export function addTransaction(
  map: TransactionMap | undefined,
  tx: LoginTransaction,
  now: number,
): TransactionMap {
  const live = Object.values(map ?? {})
    .filter((t) => isLive(t, now))
    .sort((a, b) => a.createdAt - b.createdAt);
  const kept = live.slice(Math.max(0, live.length - (MAX_PENDING_TRANSACTIONS - 1)));
  return Object.fromEntries([...kept, tx].map((t) => [t.state, t]));
}

/** Why no transaction was found: it is too old, or this session never had it (used, or another browser's). */
export type MissingReason = 'expired' | 'unknown';

/**
 * Removes the transaction for `state` and returns it if it is still live. Consumed exactly once:
 * a replayed or stale callback finds nothing.
 */
export function takeTransaction(
  map: TransactionMap | undefined,
  state: string,
  now: number,
): { tx: LoginTransaction | undefined; missing: MissingReason | undefined; rest: TransactionMap } {
  const rest: TransactionMap = {};
  let found: LoginTransaction | undefined;
  for (const t of Object.values(map ?? {})) {
    if (t.state === state) found = t;
    else if (isLive(t, now)) rest[t.state] = t;
  }
  if (!found) return { tx: undefined, missing: 'unknown', rest };
  return isLive(found, now)
    ? { tx: found, missing: undefined, rest }
    : { tx: undefined, missing: 'expired', rest };
}

const ORIGIN = 'http://codeflow.invalid';

/**
 * A same-origin path to go to after sign-in, or the dashboard. Only plain relative paths pass:
 * `//host`, `/\host`, absolute URLs, `javascript:`, control characters and whitespace all fall back,
 * in raw and percent-encoded form (the oauth2-proxy redirect validator's vectors).
 */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_RETURN_TO_LENGTH)
    return DEFAULT_RETURN_TO;
  let decoded: string;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    return DEFAULT_RETURN_TO;
  }
  for (const candidate of [value, decoded]) {
    // eslint-disable-next-line no-control-regex
    if (!candidate.startsWith('/') || /[\\\s\u0000-\u001f\u007f]/.test(candidate))
      return DEFAULT_RETURN_TO;
    if (candidate.startsWith('//')) return DEFAULT_RETURN_TO;
  }
  const url = new URL(value, ORIGIN);
  if (url.origin !== ORIGIN) return DEFAULT_RETURN_TO;
  // Normalising can make a protocol-relative URL of a harmless-looking path: "/.//evil" → "//evil".
  const path = `${url.pathname}${url.search}${url.hash}`;
  return path.startsWith('//') || path.includes('\\') ? DEFAULT_RETURN_TO : path;
}
