import type { JWK } from 'jose';
import * as client from 'openid-client';

/** Tokens as the session keeps them: plain data, absolute times, never sent to the browser. */
export interface StoredTokens {
  accessToken: string;
  tokenType: string;
  refreshToken?: string;
  idToken?: string;
  /** Epoch seconds; undefined when the provider did not say (`expires_in` is optional). */
  expiresAt?: number;
  /** Epoch seconds at which the token endpoint answered: with expiresAt, the token's lifetime. */
  issuedAt: number;
  /** Space-separated scopes granted, when the provider said. */
  scope?: string;
  /**
   * With DPoP (OIDC_DPOP=on): this session's private key, which signs its proofs (src/auth/dpop.ts).
   * Kept with the tokens it binds, sealed with them, and deleted with them.
   */
  dpopKey?: JWK;
}

/** Seconds before expiry at which a token counts as expired, so it does not die in flight. */
export const DEFAULT_REFRESH_SKEW_SECONDS = 60;

type TokenResponse = client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;

/**
 * Converts a token endpoint response into stored tokens. A refresh response may omit
 * refresh_token, id_token or scope: keep the previous ones (RFC 6749 §6, OIDC Core §12.2).
 */
export function toStoredTokens(
  response: TokenResponse,
  now: number,
  previous?: StoredTokens,
): StoredTokens {
  const expiresIn = response.expiresIn();
  const tokens: StoredTokens = {
    accessToken: response.access_token,
    tokenType: response.token_type,
    issuedAt: now,
  };
  const refreshToken = response.refresh_token ?? previous?.refreshToken;
  const idToken = response.id_token ?? previous?.idToken;
  const scope = response.scope ?? previous?.scope;
  if (refreshToken !== undefined) tokens.refreshToken = refreshToken;
  if (idToken !== undefined) tokens.idToken = idToken;
  if (scope !== undefined) tokens.scope = scope;
  // A refresh keeps the session's key: the new access token is bound to it as the old one was.
  if (previous?.dpopKey !== undefined) tokens.dpopKey = previous.dpopKey;
  if (expiresIn !== undefined) tokens.expiresAt = now + expiresIn;
  return tokens;
}

/**
 * True when the access token is expired or will be within the skew. Unknown expiry: false.
 * The skew never exceeds half the token's lifetime: with a 60 s skew, a token that lives 60 s or
 * less would otherwise count as expired the moment it arrives and be refreshed on every request.
 */
export function needsRefresh(
  tokens: Pick<StoredTokens, 'expiresAt' | 'issuedAt'>,
  now: number,
  skewSeconds = DEFAULT_REFRESH_SKEW_SECONDS,
): boolean {
  if (tokens.expiresAt === undefined) return false;
  const lifetime = tokens.expiresAt - (tokens.issuedAt ?? tokens.expiresAt);
  const skew = Math.min(skewSeconds, Math.max(0, lifetime) / 2);
  return tokens.expiresAt - skew <= now;
}

/**
 * True when a refresh failure means the grant is gone and only a new sign-in helps: invalid_grant.
 * Network errors, timeouts and 5xx are transient: the session must survive them. So must
 * invalid_client and unauthorized_client: they are about this application's credentials or
 * registration, which an operator fixes; signing everyone out would not.
 */
export function isFatalRefreshError(err: unknown): boolean {
  return err instanceof client.ResponseBodyError && err.error === 'invalid_grant';
}

/** What the dashboard may show about the tokens: times and flags, never a token value. */
export interface TokenStatus {
  expiresAt: number | undefined;
  expiresInSeconds: number | undefined;
  scopes: string[];
  hasRefreshToken: boolean;
}

export function tokenStatus(tokens: StoredTokens, now: number): TokenStatus {
  return {
    expiresAt: tokens.expiresAt,
    expiresInSeconds: tokens.expiresAt === undefined ? undefined : tokens.expiresAt - now,
    scopes: tokens.scope?.split(' ').filter(Boolean) ?? [],
    hasRefreshToken: tokens.refreshToken !== undefined,
  };
}
