import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { authorizeAtProvider, signIn, startLogin } from '../helpers/sign-in.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('sign-in against the embedded provider', () => {
  it('sends an authorization request with fresh state, nonce, an S256 challenge and the configured redirect_uri', async () => {
    const first = await startLogin(h.app());
    const second = await startLogin(h.app());
    const issuer = h.runtime.devProvider!.issuer;
    for (const url of [first, second]) {
      expect(url.origin).toBe(issuer.origin);
      expect(url.searchParams.get('response_type')).toBe('code');
      expect(url.searchParams.get('client_id')).toBe(h.runtime.config.oidc.clientId);
      expect(url.searchParams.get('redirect_uri')).toBe(`${h.baseUrl}/callback`);
      expect(url.searchParams.get('scope')).toBe('openid profile email offline_access');
      expect(url.searchParams.get('code_challenge_method')).toBe('S256');
      expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(url.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(url.searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(url.searchParams.get('prompt')).toBe('consent');
      expect([...url.searchParams.keys()].sort()).toEqual([
        'client_id',
        'code_challenge',
        'code_challenge_method',
        'nonce',
        'prompt',
        'redirect_uri',
        'response_type',
        'scope',
        'state',
      ]);
    }
    for (const param of ['state', 'nonce', 'code_challenge']) {
      expect(first.searchParams.get(param)).not.toBe(second.searchParams.get(param));
    }
  });

  it('signs alice in and shows her profile, token status and the API answer on the dashboard', async () => {
    const app = h.app();
    const before = h.providerRequests.length;
    const { response, authorizationUrl, callbackUrl } = await signIn(h, app);

    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('/dashboard');
    expect(callbackUrl.searchParams.get('iss')).toBe(h.runtime.devProvider!.issuer.origin);

    // What the provider received: the token request carried the verifier for the challenge it saw,
    // the same redirect_uri, and client_secret_basic authentication.
    const seen = h.providerRequests.slice(before);
    const token = seen.find((r) => r.route === 'token');
    expect(token?.status).toBe(200);
    expect(token?.params.grant_type).toBe('authorization_code');
    expect(token?.params.redirect_uri).toBe(`${h.baseUrl}/callback`);
    expect(token?.authorization).toMatch(/^Basic /);
    expect(token?.params.client_secret).toBeUndefined();
    const authorization = seen.find((r) => r.route === 'authorization');
    expect(authorization?.params.state).toBe(authorizationUrl.searchParams.get('state'));

    const dashboard = await app.get('/dashboard').expect(200);
    expect(dashboard.headers['cache-control']).toBe('no-store');
    expect(dashboard.text).toContain('Alice Liddell');
    expect(dashboard.text).toContain('alice@example.com');
    expect(dashboard.text).toContain('looking-glass'); // from the demo API
    expect(dashboard.text).toMatch(/answered <span class="status ok">200<\/span>/);
    expect(dashboard.text).toContain('<dd id="refresh-held">yes</dd>');
    expect(dashboard.text).toContain('offline_access');
    // The demo API saw the access token in the Authorization header.
    const me = await app.get('/me').set('Accept', 'application/json').expect(200);
    expect(me.body).toEqual({
      iss: h.runtime.devProvider!.issuer.origin,
      sub: 'alice',
      name: 'Alice Liddell',
      email: 'alice@example.com',
    });
  });

  it('answers /me with 401 JSON and /dashboard with a redirect to /login when nobody is signed in', async () => {
    const me = await h.app().get('/me').set('Accept', 'application/json').expect(401);
    expect(me.body.error).toBe('unauthenticated');
    const dashboard = await h.app().get('/dashboard').expect(302);
    expect(dashboard.headers.location).toBe('/login?returnTo=%2Fdashboard');
  });

  it('lets two tabs of one browser sign in at the same time', async () => {
    const app = h.app();
    const provider = h.providerAgent();
    const tabA = await startLogin(app, '?returnTo=/me');
    const tabB = await startLogin(app, '?returnTo=/dashboard');
    const callbackA = await authorizeAtProvider(h, provider, tabA);
    const callbackB = await authorizeAtProvider(h, provider, tabB);
    const doneB = await app.get(callbackB.pathname + callbackB.search).expect(302);
    expect(doneB.headers.location).toBe('/dashboard');
    const doneA = await app.get(callbackA.pathname + callbackA.search).expect(302);
    expect(doneA.headers.location).toBe('/me');
    await app.get('/me').set('Accept', 'application/json').expect(200);
  });
});
