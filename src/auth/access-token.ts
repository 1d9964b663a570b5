import type { Request } from 'express';
import * as client from 'openid-client';
import { AppError } from '../errors.js';
import { saveSession } from '../session/session.js';
import { isFatalRefreshError } from './tokens.js';
import { needsRefresh, toStoredTokens, type StoredTokens } from './tokens.js';
import type { Provider } from './provider.js';

export interface AccessTokenDeps {
  provider: Provider;
  /** Epoch seconds. */
  now: () => number;
  refreshSkewSeconds?: number;
}

/** Refreshes in progress, by session id: concurrent requests of one session share one refresh. */
const inFlight = new Map<string, Promise<StoredTokens>>();

/**
 * The access token to call the API with, refreshed first when it is about to expire. The only
 * place that calls the token endpoint after sign-in.
 * @throws {AppError} session_expired when the grant is gone; provider_unavailable when the provider is down.
 */
export async function getFreshAccessToken(req: Request, deps: AccessTokenDeps): Promise<string> {
  const tokens = req.session.tokens;
  if (!tokens) throw new AppError('session_expired', 'Please sign in again.');
  if (!needsRefresh(tokens, deps.now(), deps.refreshSkewSeconds)) return tokens.accessToken;
  return (await refreshTokens(req, deps)).accessToken;
}

/**
 * Runs the refresh_token grant once per session at a time and stores the result. Requests that
 * joined another's refresh take its tokens too, so none of them writes stale tokens back.
 */
export async function refreshTokens(req: Request, deps: AccessTokenDeps): Promise<StoredTokens> {
  const key = req.sessionID;
  let refresh = inFlight.get(key);
  if (!refresh) {
    refresh = runRefresh(req, deps).finally(() => inFlight.delete(key));
    inFlight.set(key, refresh);
  }
  const tokens = await refresh;
  req.session.tokens = tokens;
  return tokens;
}

async function runRefresh(req: Request, deps: AccessTokenDeps): Promise<StoredTokens> {
  const previous = req.session.tokens;
  if (!previous?.refreshToken) {
    throw new AppError('session_expired', 'Your access has expired. Please sign in again.');
  }
  const oidc = await deps.provider.getConfiguration();
  let response: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
  try {
    response = await client.refreshTokenGrant(oidc, previous.refreshToken);
  } catch (err) {
    if (isFatalRefreshError(err)) {
      throw new AppError(
        'session_expired',
        'Your sign-in has expired or was revoked. Please sign in again.',
        {
          cause: err,
        },
      );
    }
    throw new AppError(
      'provider_unavailable',
      'The sign-in provider is unreachable. Try again in a minute.',
      {
        cause: err,
      },
    );
  }
  const tokens = toStoredTokens(response, deps.now(), previous);
  req.session.tokens = tokens;
  await saveSession(req);
  req.log.info({ expiresAt: tokens.expiresAt }, 'tokens refreshed');
  return tokens;
}
