import type supertest from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { startOAuth2MockServer, type OAuth2MockServer } from '../helpers/oauth2-mock-server.js';

/**
 * codeflow against a provider nobody here wrote or configured: oauth2-mock-server (axa-group).
 * It signs in whoever asks, checks PKCE and copies the nonce; it reads the client id from the Basic
 * header and never checks the secret. A person signs in, refreshes and signs out over real HTTP.
 */
type Agent = ReturnType<typeof supertest.agent>;

const PERSON = { sub: 'ada', name: 'Ada Lovelace', email: 'ada@example.org' };
const CLIENT_ID = 'codeflow';
const CLIENT_SECRET = 'the-mock-never-checks-this';

let mock: OAuth2MockServer;
let h: Harness;
/** Seconds added to codeflow's clock (never the mock's), to let the access token expire. */
let clockOffset = 0;
beforeAll(async () => {
  mock = await startOAuth2MockServer();
  h = await startHarness(
    {
      OIDC_ISSUER: mock.issuer,
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: CLIENT_SECRET,
      API_URL: `${mock.issuer}/userinfo`,
    },
    { now: () => Math.floor(Date.now() / 1000) + clockOffset },
  );
});
beforeEach(() => {
  mock.idTokenClaims = { ...PERSON };
  mock.userinfo = { ...PERSON };
});
afterEach(() => {
  clockOffset = 0;
});
afterAll(async () => {
  await h?.close();
  await mock?.close();
});

const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
const since = (from: number, path: string) =>
  mock.requests.slice(from).filter((r) => r.path === path);
const claimsOf = (jwt: unknown) =>
  JSON.parse(Buffer.from(String(jwt).split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;

/** GET /login, the mock's /authorize (it answers at once), then /callback as the browser would. */
async function signIn(app: Agent) {
  const login = await app.get('/login').expect(302);
  const authorize = new URL(login.headers.location as string);
  const back = await fetch(authorize, { redirect: 'manual' });
  expect(back.status).toBe(302);
  const callback = new URL(back.headers.get('location')!);
  const response = await app.get(callback.pathname + callback.search);
  return { authorize, callback, response };
}

describe('codeflow with oauth2-mock-server as its provider', () => {
  it('signs a person in with PKCE S256, state and nonce, and shows the ID token’s person', async () => {
    const app = h.app();
    const from = mock.requests.length;
    const { authorize, callback, response } = await signIn(app);

    expect(authorize.origin + authorize.pathname).toBe(`${mock.issuer}/authorize`);
    const q = authorize.searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe(CLIENT_ID);
    expect(q.get('redirect_uri')).toBe(`${h.baseUrl}/callback`);
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(q.get('state')).toBeTruthy();
    expect(q.get('nonce')).toBeTruthy();
    // The mock sends no RFC 9207 `iss` back, and its metadata does not promise one.
    expect(callback.searchParams.get('state')).toBe(q.get('state'));
    expect(callback.searchParams.has('iss')).toBe(false);
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('/dashboard');

    const [exchange, ...more] = since(from, '/token');
    expect(more).toHaveLength(0);
    expect(exchange?.form).toMatchObject({
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code'),
      redirect_uri: `${h.baseUrl}/callback`,
    });
    expect(exchange?.form.code_verifier).toMatch(/^[\w-]{43,128}$/);
    // client_secret_basic, form-encoded first (RFC 6749 §2.3.1): '-' travels as %2D.
    const basic = Buffer.from(exchange!.authorization!.replace(/^Basic /, ''), 'base64');
    expect(basic.toString('utf8')).toBe(`${CLIENT_ID}:${CLIENT_SECRET.replaceAll('-', '%2D')}`);
    // The mock copied our nonce and named us as the audience: the refusals below are ours.
    expect(claimsOf(exchange?.answer?.id_token)).toMatchObject({
      ...PERSON,
      iss: mock.issuer,
      aud: CLIENT_ID,
      nonce: q.get('nonce'),
    });

    const page = await app.get('/dashboard').expect(200);
    expect(page.text).toContain('Hello, Ada Lovelace');
    expect(page.text).toContain(`<code>${PERSON.sub}</code>`);
    expect(page.text).toContain(`<code>${mock.issuer}</code>`);
    // The dashboard's API call went to the mock's userinfo with the access token it issued.
    expect(since(from, '/userinfo').at(-1)?.authorization).toBe(
      `Bearer ${String(exchange?.answer?.access_token)}`,
    );
    expect((await app.get('/me').set('Accept', 'application/json').expect(200)).body).toEqual({
      iss: mock.issuer,
      ...PERSON,
    });
  });

  it('refreshes an expired access token, and again on "Refresh now", with the rotated token', async () => {
    const app = h.app();
    const from = mock.requests.length;
    await signIn(app);
    const issued = since(from, '/token')[0]?.answer;

    clockOffset = 3600; // the mock's access tokens live 3600 s
    const expired = await app.get('/dashboard').expect(200);
    const [first] = since(from, '/token').slice(1);
    expect(first?.form).toEqual({
      grant_type: 'refresh_token',
      refresh_token: issued?.refresh_token,
    });
    expect(expired.text).toMatch(/id="refresh-count">1 .*the provider sent a new refresh token/s);

    await app
      .post('/refresh')
      .type('form')
      .send({ _csrf: csrfOf(expired.text) })
      .expect(303)
      .expect('Location', '/dashboard');
    const [, , second] = since(from, '/token');
    expect(second?.form).toEqual({
      grant_type: 'refresh_token',
      refresh_token: first?.answer?.refresh_token,
    });
    const page = await app.get('/dashboard').expect(200);
    expect(page.text).toMatch(/id="refresh-count">2 /);
    expect(since(from, '/token')).toHaveLength(3);
  });

  it('signs out: posts the ID token hint to the end-session endpoint and revokes the refresh token', async () => {
    const app = h.app();
    const from = mock.requests.length;
    await signIn(app);
    const issued = since(from, '/token')[0]?.answer;
    const csrf = csrfOf((await app.get('/dashboard').expect(200)).text);

    // The mock advertises both endpoints, so a form page (not a 303 to /) and a revocation.
    const metadata = (await (
      await fetch(`${mock.issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(metadata.end_session_endpoint).toBe(`${mock.issuer}/endsession`);
    expect(metadata.revocation_endpoint).toBe(`${mock.issuer}/revoke`);

    const res = await app.post('/logout').type('form').send({ _csrf: csrf }).expect(200);
    const form = /<form method="post" action="([^"]+)" id="end-session">([\s\S]*?)<\/form>/.exec(
      res.text,
    );
    expect(form?.[1]).toBe(metadata.end_session_endpoint);
    const fields = Object.fromEntries(
      [...(form?.[2] ?? '').matchAll(/name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    expect(fields).toEqual({
      id_token_hint: issued?.id_token,
      client_id: CLIENT_ID,
      post_logout_redirect_uri: `${h.baseUrl}/`,
    });
    await app.get('/me').set('Accept', 'application/json').expect(401);

    await h.runtime.revoker.settle(10_000);
    const revocations = since(from, '/revoke');
    expect(revocations).toHaveLength(1);
    expect(revocations[0]?.form).toEqual({
      token: issued?.refresh_token,
      token_type_hint: 'refresh_token',
    });
    expect(revocations[0]?.authorization).toMatch(/^Basic /);
    expect(revocations[0]?.status).toBe(200);

    // The browser then submits the form. RP-Initiated Logout 1.0 §2 says the provider MUST take
    // GET and POST; this mock routes only GET, so the posted form lands on its 404.
    const endSession = new URL(form![1]!);
    const hint = new URLSearchParams(fields as Record<string, string>);
    const posted = await fetch(endSession, { method: 'POST', body: hint, redirect: 'manual' });
    expect(posted.status).toBe(404);
    endSession.search = hint.toString();
    const got = await fetch(endSession, { redirect: 'manual' });
    expect(got.headers.get('location')).toBe(`${h.baseUrl}/`);
  });

  it.each([
    ['signed for another audience', { aud: 'another-client' }],
    ['with someone else’s nonce', { nonce: 'someone-elses-nonce' }],
    ['from another issuer', { iss: 'http://127.0.0.1:1' }],
  ])('refuses the sign-in when the ID token is %s: 502, no session', async (_, claims) => {
    Object.assign(mock.idTokenClaims, claims);
    const app = h.app();
    const from = mock.requests.length;
    const logFrom = h.logs.lines.length;
    const { response } = await signIn(app);

    // Exchanged, and refused before userinfo was asked: the refusal is the ID token's own check.
    expect(since(from, '/token')).toHaveLength(1);
    expect(since(from, '/userinfo')).toHaveLength(0);
    expect(response.status).toBe(502);
    expect(response.text).toContain('failed verification');
    const logged = h.logs.lines.slice(logFrom).map((l) => JSON.parse(l) as { kind?: string });
    expect(logged.some((l) => l.kind === 'invalid_id_token')).toBe(true);
    await app.get('/me').set('Accept', 'application/json').expect(401);
  });

  it('ends the session, revoking both refresh tokens, when a refreshed ID token is about someone else', async () => {
    const app = h.app();
    const from = mock.requests.length;
    await signIn(app);
    mock.idTokenClaims.sub = 'mallory';
    clockOffset = 3600;
    const res = await app.get('/dashboard').expect(401);
    expect(res.text).toContain('answered for a different account');
    await app.get('/me').set('Accept', 'application/json').expect(401);

    await h.runtime.revoker.settle(10_000);
    const [signedIn, refreshed] = since(from, '/token').map((r) => r.answer?.refresh_token);
    const revoked = since(from, '/revoke').map((r) => r.form.token);
    expect(revoked.sort()).toEqual([signedIn, refreshed].sort());
  });
});
