import { createHash } from 'node:crypto';

/**
 * What the sessions page shows about one signed-in session, written once at sign-in. Nothing more
 * is kept about a device than the page shows: browser and system names, never the User-Agent
 * itself nor an IP address.
 */
export interface SessionEntry {
  /** A random name for the session in the page's forms: the session id itself is never shown. */
  handle: string;
  iss: string;
  sub: string;
  /** The provider's session id (`sid` in the ID token), when it sends one: back-channel logout names it. */
  providerSid?: string;
  /** Epoch seconds. */
  signedInAt: number;
  device: { browser: string; os: string };
  /** How the person signed in, when the provider says (ID token `acr`, `amr`). */
  acr?: string;
  amr?: string[];
}

/** An entry as listed: with its session id (for ending it) and when it was last used. */
export interface IndexedSession extends SessionEntry {
  sid: string;
  /** Epoch seconds; moves at most once a minute per instance (with the store's idle expiry). */
  lastSeenAt: number;
}

/** Which index sets a session belongs to; ending it removes it from them. */
export interface IndexRef {
  iss: string;
  sub: string;
  providerSid?: string;
}

/**
 * The signed-in sessions of each person (iss + sub) and of each provider session (iss + sid), on
 * every instance. An entry lives exactly as long as its session: sign-in adds it, every way a
 * session ends deletes it, and the store's idle expiry takes both together. Lists skip (and
 * prune) members whose session has gone, so the index never shows a session that cannot be used.
 */
export interface SessionIndex {
  /**
   * Indexes a new session: its entry for `ttlMs` (the session's store lifetime, moved by each
   * touch); the sets it joins for at least `lifetimeMs` (the longest it can live: its absolute
   * lifetime), so a set never expires before a member.
   */
  add(sid: string, entry: SessionEntry, ttlMs: number, lifetimeMs: number): Promise<void>;
  /** The person's live sessions, newest sign-in first. */
  list(person: { iss: string; sub: string }): Promise<IndexedSession[]>;
  /** The live sessions signed in through one provider session. */
  byProviderSession(iss: string, providerSid: string): Promise<IndexedSession[]>;
}

/** Index keys hash what they name: short, fixed-length, and free of characters a key must not hold. */
export function personKey(iss: string, sub: string): string {
  return digest(`${iss}\n${sub}`);
}

export function providerSessionKey(iss: string, providerSid: string): string {
  return digest(`${iss}\n${providerSid}`);
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/**
 * Newest sign-in first. Times are whole seconds; within one second the later-indexed comes first
 * where the store keeps an order (in process), and in the store's order otherwise (a Redis set).
 */
export function newestFirst(sessions: IndexedSession[]): IndexedSession[] {
  return sessions.reverse().sort((a, b) => b.signedInAt - a.signedInAt);
}
