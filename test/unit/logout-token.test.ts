import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWTVerifyGetKey,
} from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BACKCHANNEL_LOGOUT_EVENT,
  LogoutTokenError,
  verifyLogoutToken,
} from '../../src/auth/logout-token.js';

const now = 1_700_000_000;
const issuer = 'https://op.example';
const clientId = 'codeflow';
const kid = 'key-1';

let signingKey: CryptoKey;
let otherKey: CryptoKey;
let keys: JWTVerifyGetKey;

beforeAll(async () => {
  const pair = await generateKeyPair('RS256', { extractable: true });
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('RS256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'RS256', use: 'sig' };
  keys = createLocalJWKSet({ keys: [jwk] });
});

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

interface Options {
  /** Claims merged over a valid set; `undefined` removes one. */
  claims?: Record<string, unknown>;
  alg?: 'RS256' | 'HS256' | 'none';
  /** Signs with a key the JWKS does not publish, under the published kid. */
  otherKey?: boolean;
  /** `null` omits the header. */
  typ?: string | null;
}

async function logoutToken(options: Options = {}): Promise<string> {
  const claims: Record<string, unknown> = {
    iss: issuer,
    aud: clientId,
    iat: now,
    jti: 'jti-1',
    sub: 'alice',
    sid: 'op-session-1',
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    ...options.claims,
  };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  const alg = options.alg ?? 'RS256';
  const header: Record<string, string> = { alg };
  if (alg === 'RS256') header.kid = kid;
  if (options.typ !== null) header.typ = options.typ ?? 'logout+jwt';
  if (alg === 'none') return `${b64url(header)}.${b64url(claims)}.`;
  const jwt = new SignJWT(claims).setProtectedHeader(header as { alg: string });
  if (alg === 'HS256')
    return jwt.sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long'));
  return jwt.sign(options.otherKey ? otherKey : signingKey);
}

const verify = (token: string) =>
  verifyLogoutToken(token, {
    issuer,
    clientId,
    algorithm: 'RS256',
    keys,
    now,
    maxAgeSeconds: 300,
  });

async function reasonFor(options: Options): Promise<string> {
  const err: unknown = await verify(await logoutToken(options)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LogoutTokenError);
  return (err as LogoutTokenError).reason;
}

describe('verifyLogoutToken', () => {
  it('accepts a valid logout token and returns the claims the handler acts on', async () => {
    await expect(verify(await logoutToken())).resolves.toEqual({
      iss: issuer,
      sub: 'alice',
      sid: 'op-session-1',
      jti: 'jti-1',
      iat: now,
    });
  });

  it.each<[string, Options]>([
    ['only a sid', { claims: { sub: undefined } }],
    ['only a sub', { claims: { sid: undefined } }],
    ['no typ header', { typ: null }],
    ['typ logout+jwt', { typ: 'logout+jwt' }],
    ['typ application/logout+jwt in another case', { typ: 'Application/Logout+JWT' }],
    ['an aud array that includes the client', { claims: { aud: ['other', clientId] } }],
    ['an iat 300 s old', { claims: { iat: now - 300 } }],
    ['an iat 30 s ahead (clock skew)', { claims: { iat: now + 30 } }],
    ['an exp in the future', { claims: { exp: now + 120 } }],
  ])('accepts a token with %s', async (_name, options) => {
    await expect(verify(await logoutToken(options))).resolves.toMatchObject({ jti: 'jti-1' });
  });

  it.each<[string, Options, string]>([
    ['is signed by another key under the published kid', { otherKey: true }, 'signature'],
    ['is unsigned (alg none)', { alg: 'none' }, 'alg'],
    ['is signed with HS256 and a shared secret', { alg: 'HS256' }, 'alg'],
    ['comes from another issuer', { claims: { iss: 'https://evil.example' } }, 'iss'],
    ['is for another client', { claims: { aud: 'other-client' } }, 'aud'],
    ['was issued an hour ago', { claims: { iat: now - 3600 } }, 'iat'],
    ['was issued 301 s ago', { claims: { iat: now - 301 } }, 'iat'],
    ['is issued in the future beyond the skew', { claims: { iat: now + 31 } }, 'iat'],
    ['has no iat', { claims: { iat: undefined } }, 'iat'],
    ['has expired', { claims: { exp: now - 60 } }, 'exp'],
    ['has no jti', { claims: { jti: undefined } }, 'jti'],
    ['has an empty jti', { claims: { jti: '' } }, 'jti'],
    ['carries a nonce', { claims: { nonce: 'n-1' } }, 'nonce'],
    ['has no events', { claims: { events: undefined } }, 'events'],
    [
      'has events without the back-channel logout member',
      { claims: { events: { 'urn:x': {} } } },
      'events',
    ],
    [
      'has the back-channel logout event as a string',
      { claims: { events: { [BACKCHANNEL_LOGOUT_EVENT]: 'x' } } },
      'events',
    ],
    ['has events as an array', { claims: { events: [BACKCHANNEL_LOGOUT_EVENT] } }, 'events'],
    ['has neither sid nor sub', { claims: { sid: undefined, sub: undefined } }, 'sid_or_sub'],
    ['has a sid that is not a string', { claims: { sid: 42, sub: undefined } }, 'sid_or_sub'],
    ['is typed as a JWT but not a logout token (at+jwt)', { typ: 'at+jwt' }, 'typ'],
    ['is typed as an ID token (JWT)', { typ: 'JWT' }, 'typ'],
  ])('rejects a token that %s', async (_name, options, reason) => {
    expect(await reasonFor(options)).toBe(reason);
  });

  it.each([
    ['not a JWT at all', 'not-a-token'],
    ['a JWE-shaped string', 'a.b.c.d.e'],
    ['an empty string', ''],
  ])('rejects %s as malformed', async (_name, token) => {
    const err: unknown = await verify(token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LogoutTokenError);
    expect((err as LogoutTokenError).reason).toBe('malformed');
  });

  it('passes on an unreachable JWKS as it is: the token is not at fault', async () => {
    const down = new Error('connect ECONNREFUSED');
    const err: unknown = await verifyLogoutToken(await logoutToken(), {
      issuer,
      clientId,
      algorithm: 'RS256',
      keys: () => Promise.reject(down),
      now,
      maxAgeSeconds: 300,
    }).catch((e: unknown) => e);
    expect(err).toBe(down);
  });

  it('never accepts "none" as the pinned algorithm', async () => {
    await expect(
      verifyLogoutToken(await logoutToken({ alg: 'none' }), {
        issuer,
        clientId,
        algorithm: 'none',
        keys,
        now,
        maxAgeSeconds: 300,
      }),
    ).rejects.toThrow(TypeError);
  });
});
