import type { Request } from 'express';
import type { SessionData } from 'express-session';
import * as client from 'openid-client';
import { AppError } from '../errors.js';
import { destroySession, reloadSession, saveSession } from '../session/session.js';
import type { RefreshLock } from '../session/store.js';
import type { Provider } from './provider.js';
import { isFatalRefreshError, needsRefresh, toStoredTokens, type StoredTokens } from './tokens.js';

export interface AccessTokenDeps {
  provider: Provider;
  /** Epoch seconds. */
  now: () => number;
  refreshSkewSeconds: number;
  /** Serialises refreshes of one session across instances (Redis); a no-op in one process. */
  lock: RefreshLock;
  /** This instance's refreshes in progress, by session id (one map per app, see createApp). */
  inFlight: RefreshesInFlight;
}

export interface RefreshOptions {
  /** Refresh even if the token looks valid ("Refresh now", or the API said 401). */
  force?: boolean;
  /**
   * The access token the API just refused. If the session already holds another one, a sibling
   * request refreshed meanwhile: use that instead of spending the refresh token again.
   */
  rejectedAccessToken?: string;
}

interface Refreshed {
  tokens: StoredTokens;
  refresh: SessionData['refresh'] | undefined;
}

/** Refreshes in progress, by session id: concurrent requests of one session share one refresh. */
export type RefreshesInFlight = Map<string, Promise<Refreshed>>;

/**
 * The access token to call the API with, refreshed first when it is about to expire.
 * @throws {AppError} session_expired (the session is gone) or provider_unavailable (it is kept).
 */
export async function getFreshAccessToken(req: Request, deps: AccessTokenDeps): Promise<string> {
  const tokens = req.session.tokens;
  if (!tokens)
    throw new AppError('session_expired', 'Please sign in again.', { returnTo: req.originalUrl });
  if (!needsRefresh(tokens, deps.now(), deps.refreshSkewSeconds)) return tokens.accessToken;
  return (await refreshTokens(req, deps)).accessToken;
}

/**
 * The only place that calls the token endpoint after sign-in. One refresh per session at a time:
 * requests that arrive while it runs wait for it and take its tokens, so none of them spends the
 * (single-use, rotating) refresh token again, and none writes stale tokens back afterwards.
 */
export async function refreshTokens(
  req: Request,
  deps: AccessTokenDeps,
  options: RefreshOptions = {},
): Promise<StoredTokens> {
  const key = req.sessionID;
  let refresh = deps.inFlight.get(key);
  if (!refresh) {
    refresh = underLock(req, deps, () => runRefresh(req, deps, options)).finally(() =>
      deps.inFlight.delete(key),
    );
    deps.inFlight.set(key, refresh);
  }
  try {
    const { tokens, refresh: stats } = await refresh;
    // Take the shared result, so this request's copy of the session holds nothing stale.
    req.session.tokens = tokens;
    if (stats) req.session.refresh = stats;
    return tokens;
  } catch (err) {
    if (err instanceof AppError && err.kind === 'session_expired' && req.session)
      await destroySession(req);
    throw err;
  }
}

async function runRefresh(
  req: Request,
  deps: AccessTokenDeps,
  options: RefreshOptions,
): Promise<Refreshed> {
  const returnTo = req.method === 'GET' ? req.originalUrl : '/dashboard';
  const signInAgain = (message: string, cause?: unknown) =>
    new AppError('session_expired', message, { cause, returnTo });

  // Re-read: a request that finished just before this one may have refreshed already, or signed out.
  if (!(await reread(req))) throw signInAgain('Please sign in again.');
  const current = req.session.tokens;
  if (!current || !req.session.user) throw signInAgain('Please sign in again.');
  const siblingRefreshed =
    options.rejectedAccessToken !== undefined &&
    current.accessToken !== options.rejectedAccessToken;
  const stillFresh = !options.force && !needsRefresh(current, deps.now(), deps.refreshSkewSeconds);
  if (siblingRefreshed || stillFresh) return { tokens: current, refresh: req.session.refresh };
  if (!current.refreshToken)
    throw signInAgain('Your access has expired and cannot be renewed. Please sign in again.');

  const oidc = await deps.provider.getConfiguration();
  let response: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
  try {
    // Never retried: a rotated refresh token is single-use, and a blind retry would look like theft.
    response = await client.refreshTokenGrant(oidc, current.refreshToken);
  } catch (err) {
    if (!isFatalRefreshError(err)) {
      throw new AppError(
        'provider_unavailable',
        'The sign-in provider is unreachable. Try again in a minute.',
        {
          cause: err,
          retryAfterSeconds: 30,
        },
      );
    }
    // Another instance may have rotated the token a moment ago: if the store holds a newer one, use it.
    const latest = (await reread(req)) ? req.session.tokens : undefined;
    if (latest?.refreshToken && latest.refreshToken !== current.refreshToken) {
      return { tokens: latest, refresh: req.session.refresh };
    }
    throw signInAgain('Your sign-in has expired or was revoked. Please sign in again.', err);
  }

  // OIDC Core §12.2: a refreshed ID token must be about the same person (the library checks iss and aud).
  const claims = response.claims();
  if (claims && claims.sub !== req.session.user.sub) {
    throw signInAgain('The provider answered for a different account. Please sign in again.');
  }

  const tokens = toStoredTokens(response, deps.now(), current);
  req.session.tokens = tokens;
  req.session.refresh = { count: (req.session.refresh?.count ?? 0) + 1, lastAt: deps.now() };
  await saveSession(req);
  req.log.info(
    { expiresAt: tokens.expiresAt, refreshes: req.session.refresh.count },
    'tokens refreshed',
  );
  return { tokens, refresh: req.session.refresh };
}

/** Runs `refresh` holding this session's cross-instance lock; the re-read inside sees the winner's tokens. */
async function underLock<T>(
  req: Request,
  deps: AccessTokenDeps,
  refresh: () => Promise<T>,
): Promise<T> {
  let release: () => Promise<void>;
  try {
    release = await deps.lock.acquire(req.sessionID);
  } catch (err) {
    throw new AppError('store_unavailable', 'Please try again in a few seconds.', {
      cause: err,
      retryAfterSeconds: 5,
    });
  }
  try {
    return await refresh();
  } finally {
    await release();
  }
}

/** Reloads the session from the store; false when it is gone (signed out, expired, destroyed). */
async function reread(req: Request): Promise<boolean> {
  try {
    await reloadSession(req);
    return true;
  } catch (err) {
    req.log.debug({ err }, 'session vanished during refresh');
    return false;
  }
}
