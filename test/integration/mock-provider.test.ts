import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../helpers/mock-provider.js';

const REDIRECT_URI = 'https://app.example/callback';
const POST_LOGOUT_REDIRECT_URI = 'https://app.example/';

interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in?: number;
  refresh_token?: string;
  id_token?: string;
  scope?: string;
  error?: string;
  error_description?: string;
}

let mock: MockProvider;
beforeEach(async () => {
  mock = await startMockProvider({
    redirectUri: REDIRECT_URI,
    postLogoutRedirectUri: POST_LOGOUT_REDIRECT_URI,
  });
});
afterEach(async () => {
  await mock?.close();
});

const timeout = () => AbortSignal.timeout(5_000);

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function basic(id = mock.clientId, secret = mock.clientSecret): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

/** GET /authorize; returns where the mock sent the browser back to. */
async function authorize(params: Record<string, string>): Promise<URL> {
  const url = new URL('/authorize', mock.issuer);
  url.search = new URLSearchParams({
    client_id: mock.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: 'openid offline_access',
    code_challenge_method: 'S256',
    ...params,
  }).toString();
  const res = await fetch(url, { redirect: 'manual', signal: timeout() });
  expect(res.status).toBe(302);
  return new URL(res.headers.get('location')!);
}

function token(form: Record<string, string>, auth = basic(), signal = timeout()) {
  return fetch(`${mock.issuer}/token`, {
    method: 'POST',
    headers: { authorization: auth },
    body: new URLSearchParams(form),
    signal,
  });
}

const exchange = (code: string, verifier: string) =>
  token({
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    code_verifier: verifier,
  });

const refresh = (refreshToken: string) =>
  token({ grant_type: 'refresh_token', refresh_token: refreshToken });

/** A whole happy sign-in: authorize, then the code exchange. */
async function signIn(): Promise<TokenResponse> {
  const { verifier, challenge } = pkce();
  const back = await authorize({ state: 's', nonce: 'n', code_challenge: challenge });
  const res = await exchange(back.searchParams.get('code')!, verifier);
  expect(res.status).toBe(200);
  return (await res.json()) as TokenResponse;
}

const callApi = (accessToken: string) =>
  fetch(mock.apiUrl, { headers: { authorization: `Bearer ${accessToken}` }, signal: timeout() });

describe('the mock provider', () => {
  it('publishes a discovery document whose issuer and endpoints are its own origin', async () => {
    const res = await fetch(`${mock.issuer}/.well-known/openid-configuration`, {
      signal: timeout(),
    });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(mock.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(doc).toMatchObject({
      issuer: mock.issuer,
      authorization_endpoint: `${mock.issuer}/authorize`,
      token_endpoint: `${mock.issuer}/token`,
      jwks_uri: `${mock.issuer}/jwks`,
      userinfo_endpoint: `${mock.issuer}/userinfo`,
      revocation_endpoint: `${mock.issuer}/revoke`,
      end_session_endpoint: `${mock.issuer}/logout`,
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      authorization_response_iss_parameter_supported: true,
    });
  });

  it('merges metadata overrides into discovery and answers 503 when discovery is down', async () => {
    const url = `${mock.issuer}/.well-known/openid-configuration`;
    mock.behaviour.metadata = { issuer: 'http://other.example' };
    const doc = (await (await fetch(url, { signal: timeout() })).json()) as { issuer: string };
    expect(doc.issuer).toBe('http://other.example');
    mock.behaviour.discovery = 'down';
    expect((await fetch(url, { signal: timeout() })).status).toBe(503);
  });

  it('completes authorize and a PKCE code exchange with an ID token that verifies against its JWKS', async () => {
    const { verifier, challenge } = pkce();
    const back = await authorize({
      state: 'st/a+te=',
      nonce: 'nonce-1',
      code_challenge: challenge,
    });
    expect(back.origin + back.pathname).toBe(REDIRECT_URI);
    expect(back.searchParams.get('state')).toBe('st/a+te=');
    expect(back.searchParams.get('iss')).toBe(mock.issuer);
    const code = back.searchParams.get('code')!;
    expect(mock.issued.codes).toEqual([code]);

    const res = await exchange(code, verifier);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as TokenResponse;
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 300 });
    expect(body.scope).toBe('openid offline_access');
    expect(mock.issued.accessTokens).toEqual([body.access_token]);
    expect(mock.issued.refreshTokens).toEqual([body.refresh_token]);
    expect(mock.issued.idTokens).toEqual([body.id_token]);

    const jwks = createRemoteJWKSet(new URL(`${mock.issuer}/jwks`));
    const { payload, protectedHeader } = await jwtVerify(body.id_token!, jwks, {
      issuer: mock.issuer,
      audience: mock.clientId,
      algorithms: ['RS256'],
    });
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload).toMatchObject({ sub: 'user-1', nonce: 'nonce-1', email: 'user@example.com' });
    expect(payload.exp! - payload.iat!).toBe(3600);

    const userinfo = await fetch(`${mock.issuer}/userinfo`, {
      headers: { authorization: `Bearer ${body.access_token}` },
      signal: timeout(),
    });
    expect(await userinfo.json()).toMatchObject({ sub: 'user-1' });
    expect(mock.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /authorize',
      'POST /token',
      'GET /jwks',
      'GET /userinfo',
    ]);
    expect(mock.requests[1]).toMatchObject({
      authorization: basic(),
      body: { grant_type: 'authorization_code', code, code_verifier: verifier },
    });
  });

  it('rejects a code that was already exchanged with invalid_grant', async () => {
    const { verifier, challenge } = pkce();
    const code = (await authorize({ code_challenge: challenge })).searchParams.get('code')!;
    expect((await exchange(code, verifier)).status).toBe(200);
    const again = await exchange(code, verifier);
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({ error: 'invalid_grant' });
  });

  it('rejects a code verifier that does not hash to the code challenge', async () => {
    const code = (await authorize({ code_challenge: pkce().challenge })).searchParams.get('code')!;
    const res = await exchange(code, pkce().verifier);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses token requests without the right client credentials', async () => {
    const { verifier, challenge } = pkce();
    const code = (await authorize({ code_challenge: challenge })).searchParams.get('code')!;
    const form = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    };
    for (const auth of ['', basic(mock.clientId, 'wrong-secret'), `Bearer ${mock.clientSecret}`]) {
      const res = await token(form, auth);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_client' });
    }
    // The refusals consumed nothing: the code still works with the right credentials.
    expect((await token(form)).status).toBe(200);
  });

  it('rotates refresh tokens, and a replayed one revokes the whole grant including its newest tokens', async () => {
    const first = await signIn();
    const rotatedRes = await refresh(first.refresh_token!);
    expect(rotatedRes.status).toBe(200);
    const rotated = (await rotatedRes.json()) as TokenResponse;
    expect(rotated.refresh_token).toEqual(expect.any(String));
    expect(rotated.refresh_token).not.toBe(first.refresh_token);
    expect(rotated.access_token).not.toBe(first.access_token);
    expect((await callApi(rotated.access_token)).status).toBe(200);

    const replay = await refresh(first.refresh_token!);
    expect(replay.status).toBe(400);
    expect(await replay.json()).toEqual({
      error: 'invalid_grant',
      error_description: 'refresh token reuse detected',
    });
    expect(mock.revokedGrants).toBe(1);

    const newest = await refresh(rotated.refresh_token!);
    expect(newest.status).toBe(400);
    expect(await newest.json()).toMatchObject({ error: 'invalid_grant' });
    const api = await callApi(rotated.access_token);
    expect(api.status).toBe(401);
    expect(api.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(mock.revokedGrants).toBe(1);
  });

  it('serves scripted API answers in order, then falls back to checking the access token', async () => {
    const { access_token } = await signIn();
    mock.behaviour.api = [
      { status: 503, headers: { 'retry-after': '1' }, body: 'busy' },
      { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } },
      { status: 200, body: { scripted: true } },
    ];
    const first = await callApi(access_token);
    expect([first.status, first.headers.get('retry-after'), await first.text()]).toEqual([
      503,
      '1',
      'busy',
    ]);
    expect((await callApi(access_token)).status).toBe(401);
    expect(await (await callApi(access_token)).json()).toEqual({ scripted: true });
    expect(mock.behaviour.api).toEqual([]);

    const real = await callApi(access_token);
    expect(real.status).toBe(200);
    expect(await real.json()).toEqual({ ok: true, sub: 'user-1', served: 1 });
    expect((await callApi('not-a-token')).status).toBe(401);
  });

  it('signs with a new kid after key rotation and publishes only the new key', async () => {
    const before = decodeProtectedHeader((await signIn()).id_token!).kid;
    await mock.rotateSigningKey();
    const after = (await signIn()).id_token!;
    expect(decodeProtectedHeader(after).kid).not.toBe(before);
    const jwks = (await (await fetch(`${mock.issuer}/jwks`, { signal: timeout() })).json()) as {
      keys: Array<{ kid: string; alg: string; use: string }>;
    };
    expect(jwks.keys).toEqual([
      expect.objectContaining({ kid: decodeProtectedHeader(after).kid, alg: 'RS256', use: 'sig' }),
    ]);
    await jwtVerify(after, createRemoteJWKSet(new URL(`${mock.issuer}/jwks`)));
  });

  it('hands out tampered ID tokens that a strict verifier rejects', async () => {
    const jwks = createRemoteJWKSet(new URL(`${mock.issuer}/jwks`));
    mock.behaviour.idToken = { alg: 'none' };
    const unsigned = (await signIn()).id_token!;
    expect(unsigned.endsWith('.')).toBe(true);
    await expect(jwtVerify(unsigned, jwks)).rejects.toThrow();

    mock.behaviour.idToken = { signWithOtherKey: true, aud: 'someone-else', removeClaims: ['iat'] };
    const forged = (await signIn()).id_token!;
    await expect(jwtVerify(forged, jwks)).rejects.toThrow(/signature/);
    const claims = JSON.parse(Buffer.from(forged.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    expect(claims.aud).toBe('someone-else');
    expect(claims).not.toHaveProperty('iat');
  });

  it('reset() clears requests and behaviour but keeps issued tokens valid', async () => {
    const { access_token } = await signIn();
    mock.behaviour.apiAlways = { status: 500 };
    expect((await callApi(access_token)).status).toBe(500);
    mock.reset();
    expect(mock.requests).toEqual([]);
    expect(mock.behaviour).toEqual({});
    expect((await callApi(access_token)).status).toBe(200);
    expect(mock.issued.accessTokens).toContain(access_token);
  });

  it('a hanging token endpoint neither answers nor keeps close() waiting', async () => {
    const { refresh_token } = await signIn();
    mock.behaviour.token = 'hang';
    const form = { grant_type: 'refresh_token', refresh_token: refresh_token! };
    const timedOut = await token(form, basic(), AbortSignal.timeout(300)).then(
      () => 'answered',
      (error: Error) => error.name,
    );
    expect(timedOut).toBe('TimeoutError');

    // A second hanging request the client does not abort: close() must cut it off.
    const pending = token(form, basic(), AbortSignal.timeout(10_000)).then(
      () => 'answered',
      () => 'cut off',
    );
    for (let i = 0; i < 100 && mock.requests.filter((r) => r.path === '/token').length < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const started = Date.now();
    const closed = await Promise.race([
      mock.close().then(() => 'closed'),
      new Promise((resolve) => setTimeout(resolve, 2_000, 'still waiting')),
    ]);
    expect(closed).toBe('closed');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await pending).toBe('cut off');
  });
});
