import * as client from 'openid-client';
import { describe, expect, it } from 'vitest';
import {
  isFatalRefreshError,
  needsRefresh,
  tokenStatus,
  toStoredTokens,
  type StoredTokens,
} from '../../src/auth/tokens.js';

const now = 1_700_000_000;

/** A token endpoint response as openid-client returns it: the JSON plus helper methods. */
function response(json: Record<string, unknown>) {
  return {
    token_type: 'bearer',
    ...json,
    expiresIn: () => (typeof json.expires_in === 'number' ? json.expires_in : undefined),
    claims: () => undefined,
  } as unknown as client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
}

function responseBodyError(error: string, status = 400) {
  const res = new Response(JSON.stringify({ error }), { status });
  return new client.ResponseBodyError('server responded with an error', {
    cause: { error },
    response: res,
  });
}

describe('needsRefresh', () => {
  // Issued an hour before `now` unless a case says otherwise: long-lived, so the skew applies whole.
  const tokens = (expiresAt?: number, issuedAt = now - 3600): StoredTokens => ({
    accessToken: 'a',
    tokenType: 'bearer',
    expiresAt,
    issuedAt,
  });
  it.each([
    ['expired an hour ago', now - 3600, 60, true],
    ['expires now', now, 60, true],
    ['expires within the skew', now + 59, 60, true],
    ['expires exactly at the skew', now + 60, 60, true],
    ['expires just after the skew', now + 61, 60, false],
    ['expires in an hour', now + 3600, 60, false],
    ['expires in 5 s with no skew', now + 5, 0, false],
    ['has no stated expiry (rely on the 401 path)', undefined, 60, false],
  ])('when the access token %s: %s', (_name, expiresAt, skew, expected) => {
    expect(needsRefresh(tokens(expiresAt), now, skew)).toBe(expected);
  });

  // A token that lives no longer than the skew would count as expired on arrival and be refreshed
  // on every request; the skew is capped at half its lifetime.
  it.each([
    ['a 10 s token, just issued', now, now + 10, false],
    ['a 10 s token, 4 s old', now - 4, now + 6, false],
    ['a 10 s token, 5 s old (half its life)', now - 5, now + 5, true],
    ['a 60 s token, 29 s old', now - 29, now + 31, false],
    ['a 60 s token, 30 s old', now - 30, now + 30, true],
    ['a 1 h token, 59 s before expiry', now - 3541, now + 59, true],
  ])('with a 60 s skew, %s → %s', (_name, issuedAt, expiresAt, expected) => {
    expect(needsRefresh(tokens(expiresAt, issuedAt), now, 60)).toBe(expected);
  });
});

describe('isFatalRefreshError', () => {
  it.each([
    [
      'invalid_grant (revoked, expired or reused refresh token)',
      responseBodyError('invalid_grant'),
      true,
    ],
    // The application's credentials or registration: an operator fixes them; nobody is signed out.
    ['invalid_client (credentials rotated)', responseBodyError('invalid_client', 401), false],
    ['unauthorized_client', responseBodyError('unauthorized_client'), false],
    ['temporarily_unavailable', responseBodyError('temporarily_unavailable', 503), false],
    ['server_error', responseBodyError('server_error', 500), false],
    ['a network failure', new TypeError('fetch failed'), false],
    [
      'a timeout',
      new client.ClientError('operation timed out', { code: 'OAUTH_TIMEOUT' } as never),
      false,
    ],
    [
      'an HTML 500 page',
      new client.ClientError('unexpected HTTP response status code', {
        code: 'OAUTH_RESPONSE_IS_NOT_CONFORM',
      } as never),
      false,
    ],
    ['anything else', new Error('boom'), false],
  ])('%s → fatal: %s', (_name, err, expected) => {
    expect(isFatalRefreshError(err)).toBe(expected);
  });
});

describe('toStoredTokens', () => {
  const previous: StoredTokens = {
    accessToken: 'old-at',
    tokenType: 'bearer',
    refreshToken: 'old-rt',
    idToken: 'old-id',
    scope: 'openid email',
    expiresAt: now - 10,
    issuedAt: now - 70,
  };
  it.each([
    [
      'a full response replaces everything and makes expiry absolute',
      { access_token: 'at', refresh_token: 'rt', id_token: 'id', scope: 'openid', expires_in: 300 },
      {
        accessToken: 'at',
        tokenType: 'bearer',
        refreshToken: 'rt',
        idToken: 'id',
        scope: 'openid',
        expiresAt: now + 300,
      },
    ],
    [
      'a refresh without refresh_token, id_token or scope keeps the previous ones',
      { access_token: 'at', expires_in: 60 },
      {
        accessToken: 'at',
        tokenType: 'bearer',
        refreshToken: 'old-rt',
        idToken: 'old-id',
        scope: 'openid email',
        expiresAt: now + 60,
      },
    ],
    [
      'a rotated refresh token replaces the old one',
      { access_token: 'at', refresh_token: 'new-rt', expires_in: 60 },
      {
        accessToken: 'at',
        tokenType: 'bearer',
        refreshToken: 'new-rt',
        idToken: 'old-id',
        scope: 'openid email',
        expiresAt: now + 60,
      },
    ],
    [
      'no expires_in leaves the expiry unknown',
      { access_token: 'at' },
      {
        accessToken: 'at',
        tokenType: 'bearer',
        refreshToken: 'old-rt',
        idToken: 'old-id',
        scope: 'openid email',
      },
    ],
  ])('%s', (_name, json, expected) => {
    expect(toStoredTokens(response(json), now, previous)).toEqual({ ...expected, issuedAt: now });
  });

  it('stores nothing it was not given on a first sign-in', () => {
    expect(toStoredTokens(response({ access_token: 'at', expires_in: 10 }), now)).toEqual({
      accessToken: 'at',
      tokenType: 'bearer',
      expiresAt: now + 10,
      issuedAt: now,
    });
  });
});

describe('tokenStatus', () => {
  it('says when the token expires and what was granted, never a token value', () => {
    const status = tokenStatus(
      {
        accessToken: 'SECRET-AT',
        refreshToken: 'SECRET-RT',
        tokenType: 'bearer',
        expiresAt: now + 90,
        issuedAt: now,
        scope: 'openid  email',
      },
      now,
    );
    expect(status).toEqual({
      expiresAt: now + 90,
      expiresInSeconds: 90,
      scopes: ['openid', 'email'],
      hasRefreshToken: true,
    });
    expect(JSON.stringify(status)).not.toContain('SECRET');
  });
});
