import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_SESSION_SECRET, type Harness } from '../helpers/harness.js';
import { signInAtMock, startMockHarness, type MockHarness } from '../helpers/mock-harness.js';
import { startOAuth2MockServer, type OAuth2MockServer } from '../helpers/oauth2-mock-server.js';
import { signIn } from '../helpers/sign-in.js';

/**
 * The "How you signed in" panel (/dashboard and /dashboard/flow): each protocol step of a real
 * sign-in with its values, and nothing anyone could use: no token, code, verifier or secret.
 */

const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
/** The page's steps, in order, by their data-step attribute. */
const stepsOf = (html: string) => [...html.matchAll(/data-step="([^"]+)"/g)].map((m) => m[1]);
const unescape = (html: string) =>
  html.replace(/&#34;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

describe('after a real sign-in at the embedded provider', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('shows each step with the right values, and no secret', async () => {
    const app = h.app();
    const { authorizationUrl, callbackUrl } = await signIn(h, app);
    await app.get('/dashboard').expect(200);
    const page = unescape((await app.get('/dashboard/flow').expect(200)).text);

    expect(stepsOf(page)).toEqual(['authorize', 'callback', 'token', 'id_token', 'api']);
    const sent = authorizationUrl.searchParams;
    for (const name of ['response_type', 'client_id', 'scope', 'redirect_uri', 'code_challenge']) {
      expect(page).toContain(`<code>${name}</code></dt><dd><code>${sent.get(name)}</code>`);
    }
    expect(page).toContain('<code>code_challenge_method</code></dt><dd><code>S256</code>');
    const state = sent.get('state')!;
    const nonce = sent.get('nonce')!;
    expect(page).toContain(`${state.slice(0, 6)}… (${state.length} characters)`);
    const code = callbackUrl.searchParams.get('code')!;
    expect(page).toContain(`a code of ${code.length} characters`);
    expect(page).toContain(`${h.runtime.devProvider!.issuer.origin}, the provider’s issuer`);
    // The token response and the ID token's checks.
    const [exchange] = h.providerRequests.filter((r) => r.route === 'token');
    const issued = exchange!.body as Record<string, string>;
    expect(page).toContain(
      `access_token, id_token, refresh_token; expires in ${issued.expires_in} s`,
    );
    for (const check of ['signature', 'iss', 'aud', 'azp', 'exp', 'iat', 'nonce']) {
      expect(page).toContain(`<code>${check}</code>:`);
    }
    const kid = JSON.parse(
      Buffer.from(issued.id_token!.split('.')[0]!, 'base64url').toString(),
    ).kid;
    expect(page).toContain(`with key ${kid} from the provider's JWKS`);
    expect(page).toContain('The access token is opaque');
    expect(page).toContain('API called');
    // Each step links to the specification it follows.
    expect(page).toContain('https://www.rfc-editor.org/rfc/rfc7636#section-4.3');
    expect(page).toContain(
      'https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation',
    );

    const secrets: string[] = [
      issued.access_token!,
      issued.refresh_token!,
      issued.id_token!,
      code,
      state,
      nonce,
      String(exchange!.params.code_verifier),
      h.runtime.config.oidc.clientSecret,
      TEST_SESSION_SECRET,
    ];
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(15);
      expect(page).not.toContain(secret);
    }
  });

  it('keeps the dashboard to the sign-in and the latest five steps; the detail page has them all', async () => {
    const app = h.app();
    await signIn(h, app);
    for (let view = 0; view < 8; view++) await app.get('/dashboard').expect(200);
    const dashboard = (await app.get('/dashboard').expect(200)).text;
    // Nine views, nine API calls recorded (this view's own included): five shown, four left out.
    expect(stepsOf(dashboard)).toEqual([
      'authorize',
      'callback',
      'token',
      'id_token',
      'api',
      'api',
      'api',
      'api',
      'api',
    ]);
    expect(dashboard).toContain('4 earlier steps since the sign-in');
    const all = stepsOf((await app.get('/dashboard/flow').expect(200)).text);
    expect(all.filter((s) => s === 'api')).toHaveLength(9);
  });

  it('ends with the sign-out, shown on the sign-out page, and is gone with the session', async () => {
    const app = h.app();
    await signIn(h, app);
    const dashboard = await app.get('/dashboard').expect(200);
    const out = await app
      .post('/logout')
      .type('form')
      .send({ _csrf: csrfOf(dashboard.text) });
    expect(stepsOf(out.text).at(-1)).toBe('sign-out');
    expect(out.text).toContain('refresh token revoked in the background');
    await app.get('/dashboard/flow').expect(302);
  });
});

describe('refreshes, and an API that refuses a token once', () => {
  let h: MockHarness;
  beforeAll(async () => {
    h = await startMockHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('shows both refreshes with their reasons', async () => {
    const app = h.app();
    await signInAtMock(h, app);
    const dashboard = await app.get('/dashboard').expect(200);
    await app
      .post('/refresh')
      .type('form')
      .send({ _csrf: csrfOf(dashboard.text) })
      .expect(303);
    // The API refuses the current token once: codeflow refreshes, then calls again.
    h.mock.behaviour.api = [
      { status: 401, headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } },
    ];
    await app.get('/dashboard').expect(200);
    const page = (await app.get('/dashboard/flow').expect(200)).text;
    const steps = stepsOf(page);
    expect(steps.filter((s) => s === 'refresh')).toHaveLength(2);
    expect(page).toContain('Refresh now:');
    expect(page).toContain('after a 401:');
    // The 401, then the retry with the new token.
    const apiCalls = [...page.matchAll(/API called[\s\S]*?<span class="small">(\d{3}) in/g)].map(
      (m) => m[1],
    );
    expect(apiCalls.slice(-2)).toEqual(['401', '200']);
    expect(steps.slice(-3)).toEqual(['api', 'refresh', 'api']);
  });
});

describe('a JWT access token', () => {
  let mock: OAuth2MockServer;
  let h: Harness;
  beforeAll(async () => {
    mock = await startOAuth2MockServer();
    h = await startHarness({
      OIDC_ISSUER: mock.issuer,
      OIDC_CLIENT_ID: 'codeflow',
      OIDC_CLIENT_SECRET: 'codeflowsecret',
      API_URL: `${mock.issuer}/userinfo`,
    });
    mock.idTokenClaims = { sub: 'ada', name: 'Ada' };
    mock.userinfo = { sub: 'ada', name: 'Ada' };
  });
  afterAll(async () => {
    await h?.close();
    await mock?.close();
  });

  it('has its claims shown, labelled decoded and not verified', async () => {
    const app = h.app();
    const login = await app.get('/login').expect(302);
    const back = await fetch(login.headers.location as string, { redirect: 'manual' });
    const callback = new URL(back.headers.get('location')!);
    await app.get(callback.pathname + callback.search).expect(302);
    const page = unescape((await app.get('/dashboard/flow').expect(200)).text);
    expect(page).toContain('decoded, not verified: an access token is for the API, not for us');
    expect(page).toContain(`"iss": "${mock.issuer}"`);
    expect(page).not.toContain('The access token is opaque');
  });
});
