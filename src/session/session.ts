import type { Request, RequestHandler } from 'express';
import session, { type SessionData } from 'express-session';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { TRANSACTION_TTL_SECONDS, type TransactionMap } from '../auth/transactions.js';
import type { SessionBackend } from './backend.js';
import { BackendStore } from './session-store.js';

/** The claims the pages use, taken from the validated ID token (and userinfo, when needed). */
export interface SessionUser {
  /** The user is (iss, sub), never the email (OIDC Core §5.7). */
  iss: string;
  sub: string;
  name?: string;
  email?: string;
  /** The provider's session id (`sid` in the ID token): back-channel logout names it. */
  providerSid?: string;
}

/**
 * What a session holds: who the person is and their pending sign-ins. Never tokens: those live in
 * their own record (src/tokens/), so that writing a session can never write tokens back.
 */
declare module 'express-session' {
  interface SessionData {
    /** Pending sign-ins keyed by state, so several tabs can sign in at once. */
    transactions: TransactionMap;
    user: SessionUser;
    /** Epoch seconds of the sign-in. */
    authenticatedAt: number;
    /** How the person signed in (the ID token's `acr`), for pages that ask for a level. */
    acr?: string;
    /** When the provider last authenticated them (`auth_time`, epoch seconds), for step-up. */
    authTime?: number;
  }
}

/** Without activity, a signed-in session ends after this (and never later than its absolute lifetime). */
export const SESSION_IDLE_MS = 8 * 60 * 60 * 1000;

/**
 * How long the store keeps a session, from what it holds: a signed-in one until its absolute
 * lifetime ends (at most 8 idle hours); one holding only pending sign-ins until the newest of them
 * expires (10 minutes); an empty one not at all. `now` is epoch seconds.
 */
export function storeLifetimeMs(
  session: Partial<SessionData>,
  now: number,
  maxAgeSeconds: number,
): number {
  if (session.user) {
    const remaining = (session.authenticatedAt ?? 0) + maxAgeSeconds - now;
    return Math.min(SESSION_IDLE_MS, remaining * 1000);
  }
  const created = Object.values(session.transactions ?? {}).map((tx) => tx.createdAt);
  if (created.length === 0) return 0;
  return (Math.max(...created) + TRANSACTION_TTL_SECONDS - now) * 1000;
}

/** express-session, configured for a BFF: the browser holds only a signed, opaque id. */
export function createSessionMiddleware(
  config: Config,
  backend: SessionBackend,
  now: () => number,
): RequestHandler {
  const cookie = {
    httpOnly: true,
    // Lax, not Strict: Strict withholds the cookie on the provider's redirect back to /callback,
    // and every sign-in would fail with "state mismatch".
    sameSite: 'lax' as const,
    secure: config.session.secureCookie,
    path: '/',
    // The browser may keep the cookie for the absolute lifetime; the store decides how long the
    // session really lives (storeLifetimeMs), so an idle or anonymous one ends sooner.
    originalMaxAge: config.session.maxAgeSeconds * 1000,
  };
  const lifetime = (s: SessionData) => storeLifetimeMs(s, now(), config.session.maxAgeSeconds);
  return session({
    name: config.session.cookieName,
    secret: [...config.session.secrets],
    store: new BackendStore(backend, cookie, lifetime, now),
    // Anonymous visitors get no session and no cookie; /login creates one.
    saveUninitialized: false,
    // Save only when the session changed: a signed-in page view writes nothing, and the idle
    // expiry moves with a cheap touch instead of a rewrite.
    resave: false,
    // The cookie is sent when the session changes, not on every response.
    rolling: false,
    // With TRUST_PROXY set, the Secure decision follows X-Forwarded-Proto from the trusted proxy.
    proxy: config.trustProxy ? true : undefined,
    cookie: { ...cookie, maxAge: cookie.originalMaxAge },
  });
}

/**
 * Leaves the request with no session: express-session then saves nothing for it and sends no
 * cookie. For a session that has ended (its id is tombstoned), so nothing hands that id back.
 */
export function forgetSession(req: Request): void {
  (req as { session?: unknown }).session = undefined;
}

/** A new, empty session for a request whose session has ended, made only by a route that needs one. */
export function ensureSession(req: Request): void {
  if (!req.session) req.sessionStore.generate(req);
}

/** `req.session.regenerate` as a promise: a new id and an empty session (no fixation). */
export function regenerateSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) =>
    req.session.regenerate((err) => (err ? reject(err) : resolve())),
  );
}

/**
 * `req.session.save` as a promise: call it before any redirect that depends on the session.
 * @throws {AppError} session_expired when the session ended while this request ran (signed out
 *   elsewhere): nothing was saved, and the request goes on with no session, so no cookie is sent.
 */
export function saveSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) =>
    req.session.save((err) => {
      if (!err) return resolve();
      if (err instanceof AppError && err.kind === 'session_expired') forgetSession(req);
      reject(err);
    }),
  );
}
