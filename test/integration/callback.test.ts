import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { authorizeAtProvider, followToApp, signIn, startLogin } from '../helpers/sign-in.js';

let h: Harness;
let clock = Math.floor(Date.now() / 1000);
beforeAll(async () => {
  h = await startHarness({}, { now: () => clock });
});
afterAll(async () => {
  await h?.close();
});

const tokenRequests = () => h.providerRequests.filter((r) => r.route === 'token').length;
const pathOf = (url: URL) => url.pathname + url.search;

async function expectSignedOut(app: ReturnType<Harness['app']>) {
  await app.get('/me').set('Accept', 'application/json').expect(401);
}

describe('the callback refuses what it did not start', () => {
  it('rejects a callback without state with a 400 page and sends no token request', async () => {
    const app = h.app();
    const authorizationUrl = await startLogin(app);
    const callback = await authorizeAtProvider(h, h.providerAgent(), authorizationUrl);
    callback.searchParams.delete('state');
    const before = tokenRequests();
    const res = await app.get(pathOf(callback)).expect(400);
    expect(res.text).toContain('no valid state');
    expect(tokenRequests()).toBe(before);
    await expectSignedOut(app);
  });

  it('rejects an altered state and leaves the real transaction unused', async () => {
    const app = h.app();
    const authorizationUrl = await startLogin(app);
    const callback = await authorizeAtProvider(h, h.providerAgent(), authorizationUrl);
    const real = callback.searchParams.get('state')!;
    callback.searchParams.set('state', `${real.slice(0, -2)}xx`);
    const before = tokenRequests();
    const res = await app.get(pathOf(callback)).expect(400);
    expect(res.text).toContain('This sign-in response does not match');
    expect(tokenRequests()).toBe(before);
    await expectSignedOut(app);
  });

  it.each([
    ['repeated state', (q: URLSearchParams) => q.append('state', q.get('state')!)],
    ['state as an object', (q: URLSearchParams) => q.set('state[x]', '1') ?? q.delete('state')],
  ])('answers 400 to a %s, never 500', async (_name, mutate) => {
    const app = h.app();
    const callback = await authorizeAtProvider(h, h.providerAgent(), await startLogin(app));
    mutate(callback.searchParams);
    const before = tokenRequests();
    await app.get(pathOf(callback)).expect(400);
    expect(tokenRequests()).toBe(before);
  });

  it("rejects another browser's callback (login CSRF): the victim is not signed in as the attacker", async () => {
    const attacker = h.app();
    const callback = await authorizeAtProvider(h, h.providerAgent(), await startLogin(attacker));
    const victim = h.app();
    await startLogin(victim); // the victim has a session with a transaction of its own
    const before = tokenRequests();
    const res = await victim.get(pathOf(callback)).expect(400);
    expect(res.text).toContain('does not belong to the sign-in this browser started');
    expect(tokenRequests()).toBe(before);
    await expectSignedOut(victim);
  });

  it('rejects a transaction older than ten minutes', async () => {
    const app = h.app();
    const callback = await authorizeAtProvider(h, h.providerAgent(), await startLogin(app));
    clock += 601;
    try {
      const before = tokenRequests();
      const res = await app.get(pathOf(callback)).expect(400);
      expect(res.text).toContain('This sign-in link has expired');
      expect(res.text).toContain('longer than 10 minutes');
      expect(tokenRequests()).toBe(before);
      await expectSignedOut(app);
    } finally {
      clock -= 601;
    }
  });

  it('uses a transaction once: a replayed callback sends no second token request', async () => {
    const app = h.app();
    const { callbackUrl } = await signIn(h, app);
    const before = tokenRequests();
    // The same browser, signed in, pressing Back: no error, straight to the dashboard.
    const again = await app.get(pathOf(callbackUrl)).expect(302);
    expect(again.headers.location).toBe('/dashboard');
    // Anyone else replaying it: a 400 page.
    const stranger = h.app();
    await stranger.get(pathOf(callbackUrl)).expect(400);
    expect(tokenRequests()).toBe(before);
    await expectSignedOut(stranger);
  });

  it('gives a new session id on sign-in (no fixation) and the old id is not signed in', async () => {
    const app = h.app();
    const login = await app.get('/login').expect(302);
    const preLogin = (login.headers['set-cookie'] as unknown as string[])[0]!.split(';')[0]!;
    const callback = await authorizeAtProvider(
      h,
      h.providerAgent(),
      new URL(login.headers.location as string),
    );
    const done = await app.get(pathOf(callback)).expect(302);
    const postLogin = (done.headers['set-cookie'] as unknown as string[])[0]!.split(';')[0]!;
    expect(postLogin).not.toBe(preLogin);
    await h.app().get('/me').set('Cookie', preLogin).set('Accept', 'application/json').expect(401);
    await h.app().get('/me').set('Cookie', postLogin).set('Accept', 'application/json').expect(200);
  });

  it('shows a plain "cancelled" page when the person denies access at the provider', async () => {
    const app = h.app();
    const provider = h.providerAgent();
    const authorizationUrl = await startLogin(app);
    const interaction = await provider.get(pathOf(authorizationUrl)).expect(303);
    const uid = /\/interaction\/([^/?]+)/.exec(interaction.headers.location as string)![1];
    const callback = await followToApp(h, provider, `/interaction/${uid}/abort`);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    const before = tokenRequests();
    const res = await app.get(pathOf(callback)).expect(403);
    expect(res.text).toContain('Sign-in was cancelled');
    expect(res.text).toContain('href="/login"');
    const correlationId = /id="correlation-id">([^<]+)</.exec(res.text)![1];
    expect(h.logs.text()).toContain(correlationId);
    expect(tokenRequests()).toBe(before);
  });

  it('ends a session 12 hours after sign-in however active it was, and asks to sign in again', async () => {
    const app = h.app();
    await signIn(h, app);
    clock += 11 * 3600;
    try {
      await app.get('/me').set('Accept', 'application/json').expect(200);
      clock += 3600;
      const page = await app.get('/dashboard').expect(302);
      expect(page.headers.location).toBe('/login?returnTo=%2Fdashboard');
      await app.get('/me').set('Accept', 'application/json').expect(401);
      expect(h.logs.text()).toContain('"reason":"max-age"');
    } finally {
      clock -= 12 * 3600;
    }
    await app.get('/me').set('Accept', 'application/json').expect(401); // destroyed, not just hidden
  });

  it('answers JSON errors to clients that ask for JSON', async () => {
    const res = await h
      .app()
      .get('/callback?state=nope&code=x')
      .set('Accept', 'application/json')
      .expect(400);
    expect(res.body).toMatchObject({
      error: 'transaction_not_found',
      correlationId: expect.any(String),
    });
  });
});

describe('returnTo', () => {
  it.each([
    ['/me', '/me'],
    ['//evil.example', '/dashboard'],
    ['/\\evil.example', '/dashboard'],
    ['https://evil.example/', '/dashboard'],
    ['javascript:alert(1)', '/dashboard'],
    ['%2F%2Fevil.example', '/dashboard'],
    ['/%09/evil.example', '/dashboard'],
    ['/.//evil.example', '/dashboard'],
    ['/x/..//evil.example', '/dashboard'],
  ])('after signing in with returnTo=%j, lands on %s', async (returnTo, expected) => {
    const app = h.app();
    const { response } = await signIn(h, app, {
      query: `?returnTo=${encodeURIComponent(returnTo)}`,
    });
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe(expected);
  });

  it('copies no request parameter into the authorization request', async () => {
    const url = await startLogin(
      h.app(),
      '?scope=admin&redirect_uri=https://evil.example&response_type=token&code_challenge_method=plain&prompt=none&client_id=x',
    );
    expect(url.searchParams.get('scope')).toBe('openid profile email offline_access');
    expect(url.searchParams.get('redirect_uri')).toBe(`${h.baseUrl}/callback`);
    expect(url.searchParams.get('response_type')).toBe('code');
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('prompt')).toBe('consent');
    expect(url.searchParams.get('client_id')).toBe('codeflow-dev');
    expect(url.href).not.toContain('evil');
  });
});
