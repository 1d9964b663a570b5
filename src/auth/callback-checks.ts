import type { Request } from 'express';
import * as client from 'openid-client';
import { AppError } from '../errors.js';
import type { SessionUser } from '../session/session.js';
import { callbackError, isUnreachable } from './oauth-errors.js';
import type { MissingReason } from './transactions.js';

/** The checks of GET /callback that are codeflow's own, each named for what it refuses. */

/**
 * An authorization response names each parameter once and, in the code flow, never carries tokens
 * (RFC 9700 §2.1.2: no implicit or hybrid responses). openid-client refuses these too; refusing
 * them here first keeps a malformed request a 400, distinct from a failed ID-token check.
 */
export function checkResponseShape(query: Request['query']): void {
  const repeated = ['code', 'state', 'iss', 'error', 'error_description'].filter((name) =>
    Array.isArray(query[name]),
  );
  const implicit = ['access_token', 'id_token', 'token'].filter(
    (name) => query[name] !== undefined,
  );
  const noResult =
    query.error === undefined && (typeof query.code !== 'string' || query.code === '');
  if (repeated.length > 0 || implicit.length > 0 || noResult) {
    throw new AppError(
      'bad_request',
      'The sign-in response was malformed, so nothing was done with it. Start again.',
    );
  }
}

export function missingTransaction(reason: MissingReason | undefined, pending: number): AppError {
  if (reason === 'expired') {
    return new AppError(
      'transaction_expired',
      'Signing in took longer than 10 minutes. Start again.',
    );
  }
  if (pending > 0) {
    return new AppError(
      'state_mismatch',
      'It does not belong to the sign-in this browser started. Start again.',
    );
  }
  return new AppError(
    'transaction_not_found',
    'It may have been used already, be older than 10 minutes, or have been opened in another browser. Start again.',
  );
}

/** ID tokens are minted at the exchange; an `iat` from the future means a broken clock or a forgery. */
const MAX_IAT_SKEW_SECONDS = 60;

export function checkIssuedAt(iat: number | undefined, now: number): void {
  if (iat !== undefined && iat > now + MAX_IAT_SKEW_SECONDS) {
    throw new AppError(
      'invalid_id_token',
      'Its issue time lies in the future. Start again; if it keeps happening, tell us the reference below.',
    );
  }
}

/**
 * The person as the pages see them: (iss, sub) from the validated ID token, plus name and email.
 * When the ID token carries neither, they come from userinfo, whose `sub` must match (OIDC Core §5.3.4).
 */
export async function userFrom(
  oidc: client.Configuration,
  tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
  /** A DPoP-bound access token's proofs, for userinfo. */
  dpop?: client.DPoPOptions,
): Promise<SessionUser> {
  const claims = tokens.claims();
  if (!claims) throw new AppError('login_failed', 'The provider sent no ID token. Start again.');
  let profile: Record<string, unknown> = claims;
  if (
    claims.name === undefined &&
    claims.email === undefined &&
    oidc.serverMetadata().userinfo_endpoint
  ) {
    try {
      profile = {
        ...claims,
        ...(await client.fetchUserInfo(oidc, tokens.access_token, claims.sub, dpop)),
      };
    } catch (err) {
      // A different subject is an attack or a broken provider: no session. An outage only costs the name.
      if (!isUnreachable(err)) throw callbackError(err);
    }
  }
  const user: SessionUser = { iss: claims.iss, sub: claims.sub };
  if (typeof profile.name === 'string') user.name = profile.name;
  if (typeof profile.email === 'string') user.email = profile.email;
  return user;
}
