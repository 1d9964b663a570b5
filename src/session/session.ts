import type { Request, RequestHandler } from 'express';
import session, { type Store } from 'express-session';
import type { Config } from '../config.js';
import type { TransactionMap } from '../auth/transactions.js';
import type { StoredTokens } from '../auth/tokens.js';

/** The claims the pages use, taken from the validated ID token (and userinfo, when needed). */
export interface SessionUser {
  /** The user is (iss, sub), never the email (OIDC Core §5.7). */
  iss: string;
  sub: string;
  name?: string;
  email?: string;
}

declare module 'express-session' {
  interface SessionData {
    /** Pending sign-ins keyed by state, so several tabs can sign in at once. */
    transactions: TransactionMap;
    user: SessionUser;
    tokens: StoredTokens;
    /** Epoch seconds of the sign-in. */
    authenticatedAt: number;
    /** Refreshes in this session. `count` also versions `tokens`: a save never moves it backwards. */
    refresh: { count: number; lastAt?: number };
  }
}

/** Session lifetime without activity; each request moves it forward (rolling). */
export const SESSION_IDLE_MS = 8 * 60 * 60 * 1000;

/** express-session, configured for a BFF: the browser holds only a signed, opaque id. */
export function createSessionMiddleware(config: Config, store: Store | undefined): RequestHandler {
  return session({
    name: config.session.cookieName,
    secret: [...config.session.secrets],
    ...(store && { store }),
    // Anonymous visitors get no session and no cookie; /login creates one.
    saveUninitialized: false,
    // Save only when the session changed, so concurrent requests do not overwrite each other.
    resave: false,
    rolling: true,
    // With TRUST_PROXY set, the Secure decision follows X-Forwarded-Proto from the trusted proxy.
    proxy: config.trustProxy !== undefined ? true : undefined,
    cookie: {
      httpOnly: true,
      // Lax, not Strict: Strict withholds the cookie on the provider's redirect back to /callback,
      // and every sign-in would fail with "state mismatch".
      sameSite: 'lax',
      secure: config.session.secureCookie,
      path: '/',
      maxAge: SESSION_IDLE_MS,
    },
  });
}

/** `req.session.regenerate` as a promise: a new id and an empty session (no fixation). */
export function regenerateSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) =>
    req.session.regenerate((err) => (err ? reject(err) : resolve())),
  );
}

/** `req.session.save` as a promise: call it before any redirect that depends on the session. */
export function saveSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) =>
    req.session.save((err) => (err ? reject(err) : resolve())),
  );
}

/** `req.session.reload` as a promise: the session as the store has it now. */
export function reloadSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) =>
    req.session.reload((err) => (err ? reject(err) : resolve())),
  );
}

/** `req.session.destroy` as a promise: the server-side session is gone. */
export function destroySession(req: Request): Promise<void> {
  return new Promise((resolve, reject) =>
    req.session.destroy((err) => (err ? reject(err) : resolve())),
  );
}
