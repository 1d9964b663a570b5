import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import supertest from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { ONE_TIME_CODE_ACR, PASSWORD_ACR } from '../../src/dev-provider/acr.js';
import { sessionIdOf, startHarness, type Harness } from '../helpers/harness.js';
import {
  received,
  signInAtMock,
  startMockHarness,
  type MockHarness,
} from '../helpers/mock-harness.js';
import { authorizeAtProvider, signIn, startLogin, type Account } from '../helpers/sign-in.js';

/**
 * Step-up per page (/dashboard/sensitive) and per API answer (RFC 9470): a session whose sign-in
 * is weaker or older than asked for signs in again with acr_values and max_age in the request; the
 * ID token that comes back must show both, for the same person, or the answer is 403 and the
 * session stays exactly as it was.
 */

type Agent = ReturnType<typeof supertest.agent>;

const ALICE: Account = { login: 'alice', password: 'alice-password' };
const ALICE_WITH_CODE: Account = { ...ALICE, code: '271828' };
const BOB_WITH_CODE: Account = { login: 'bob', password: 'bob-password', code: '314159' };
const SENSITIVE = '/dashboard/sensitive';

const open: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const h of open) await h.close();
});
async function harness(
  env: Record<string, string> = {},
  options: Parameters<typeof startHarness>[1] = {},
): Promise<Harness> {
  const h = await startHarness(env, options);
  open.push(h);
  return h;
}

/** A port free on 127.0.0.1 a moment ago, so the embedded provider's URL is known before it starts. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Where a 302 from the app points, as a URL (relative locations against the app). */
function locationOf(res: supertest.Response): URL {
  expect(res.status, res.text.slice(0, 300)).toBe(302);
  return new URL(res.headers.location as string, 'http://app.invalid');
}

/**
 * Follows the provider's redirects from the authorization request to the page it shows (the sign-in
 * form, here), without filling anything in. At most 8 hops.
 */
async function providerPage(
  h: Harness,
  provider: Agent,
  authorizationUrl: URL,
): Promise<{ url: URL; html: string }> {
  let next = new URL(authorizationUrl.href);
  for (let hop = 0; hop < 8; hop++) {
    const res = await provider.get(next.pathname + next.search);
    if (res.status === 200) return { url: next, html: res.text };
    expect([302, 303], `provider answered ${res.status} at ${next.pathname}`).toContain(res.status);
    next = new URL(res.headers.location as string, h.runtime.devProvider!.issuer);
    expect(next.origin, 'the provider sent the browser back without showing a page').toBe(
      h.runtime.devProvider!.issuer.origin,
    );
  }
  throw new Error('too many provider redirects');
}

/** The session as the store holds it (pending sign-ins aside), and its sealed token record. */
async function stored(h: Harness, app: Agent) {
  const cookie = (await app.get('/healthz').expect(200)).request.cookies;
  const sid = sessionIdOf(cookie);
  const raw = await h.runtime.sessions.getSession(sid);
  expect(raw, 'no session in the store').toBeDefined();
  const {
    transactions: _pending,
    csrfToken,
    ...session
  } = JSON.parse(raw!) as Record<string, unknown>;
  const tokens = await h.runtime.sessions.tokens.read(sid);
  return { cookie, sid, session, csrfToken, tokens: tokens! };
}

/** The session that was `before` is still there, unchanged: same id, same data, same tokens. */
async function expectUnchanged(
  h: Harness,
  app: Agent,
  before: Awaited<ReturnType<typeof stored>>,
): Promise<void> {
  const after = await stored(h, app);
  expect(after.sid).toBe(before.sid);
  expect(after.session).toEqual(before.session);
  // Compared, never printed (a failure shows true/false, not the value).
  expect(after.csrfToken === before.csrfToken).toBe(true);
  expect(after.tokens.version).toBe(before.tokens.version);
  // The sealed bytes are the same record.
  expect(after.tokens.sealed.equals(before.tokens.sealed)).toBe(true);
  // The cookie the browser had still works on its own, and is still the same person.
  const me = await supertest(h.server)
    .get('/me')
    .set('Cookie', before.cookie)
    .set('Accept', 'application/json')
    .expect(200);
  expect(me.body.sub).toBe((before.session.user as { sub: string }).sub);
}

/** The acr the sessions page shows for this session (from the index entry made at sign-in). */
async function levelOnSessionsPage(app: Agent): Promise<string | undefined> {
  const html = (await app.get('/sessions').expect(200)).text;
  return /level <code>([^<]+)<\/code>/.exec(html)?.[1];
}

/** The authorization requests the embedded provider received since `from`. */
function authorizationRequests(h: Harness, from: number) {
  return h.providerRequests.slice(from).filter((r) => r.route === 'authorization');
}

function tokenGrants(h: Harness, from: number): unknown[] {
  return h.providerRequests
    .slice(from)
    .filter((r) => r.route === 'token')
    .map((r) => r.params.grant_type);
}

/** A signed-in session at the password level (no step-up yet). */
async function signedInWithPassword(h: Harness): Promise<{ app: Agent; provider: Agent }> {
  const app = h.app();
  const provider = h.providerAgent();
  const { response } = await signIn(h, app, { provider, account: ALICE });
  expect(response.status).toBe(302);
  await app.get('/dashboard').expect(200);
  expect(await levelOnSessionsPage(app)).toBe(PASSWORD_ACR);
  return { app, provider };
}

/**
 * The step-up from a /login link (path and query): the provider's page, then the sign-in with
 * `account`, then /callback (its response). The callback is asked for JSON when `json`.
 */
async function stepUp(
  h: Harness,
  app: Agent,
  provider: Agent,
  loginLink: URL,
  account: Account,
  json = false,
) {
  const authorizationUrl = await startLogin(app, loginLink.search);
  const page = await providerPage(h, provider, authorizationUrl);
  const callbackUrl = await authorizeAtProvider(h, provider, page.url, account);
  const callback = app.get(callbackUrl.pathname + callbackUrl.search);
  const response = json ? await callback.set('Accept', 'application/json') : await callback;
  return { authorizationUrl, page, response };
}

describe('step-up per page, against the embedded provider', () => {
  it('a password-only session is sent to sign in again with the code, and comes back to the page at the new level', async () => {
    const h = await harness();
    const { app, provider } = await signedInWithPassword(h);
    const meBefore = (await app.get('/me').set('Accept', 'application/json').expect(200)).body;

    // 1. The page refuses the password-only session: off to /login, asking for the code, recent.
    const link = locationOf(await app.get(SENSITIVE));
    expect(link.pathname).toBe('/login');
    expect(Object.fromEntries(link.searchParams)).toEqual({
      returnTo: SENSITIVE,
      acr_values: ONE_TIME_CODE_ACR,
      max_age: '600',
    });

    // 2. The authorization request the provider received carries both.
    const from = h.providerRequests.length;
    const { page, response } = await stepUp(h, app, provider, link, ALICE_WITH_CODE);
    const asked = authorizationRequests(h, from);
    expect(asked).toHaveLength(1);
    expect(asked[0]!.params.acr_values).toBe(ONE_TIME_CODE_ACR);
    expect(String(asked[0]!.params.max_age)).toBe('600');

    // 3. The provider asked for the code although its session for alice existed.
    expect(page.html).toContain('Sign in with a one-time code');
    expect(page.html).toMatch(/<input name="code"[^>]*required/);
    expect(page.html).toMatch(/<input name="login" value="alice"/);

    // 4. Back to the page, which now answers, showing the new level and the API's sensitive data.
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe(SENSITIVE);
    const sensitive = await app.get(SENSITIVE).expect(200);
    expect(sensitive.text).toContain(`<dd id="session-acr"><code>${ONE_TIME_CODE_ACR}</code></dd>`);
    expect(sensitive.text).toContain(h.runtime.devProvider!.sensitiveApiUrl.href);
    expect(sensitive.text).toMatch(/answered <span class="status ok">200<\/span>/);
    expect(sensitive.text).toContain('GB00 DEMO 0000 0000 0000 00');
    expect(sensitive.text).toContain(`&#34;signedInWith&#34;: &#34;${ONE_TIME_CODE_ACR}&#34;`);
    expect(await levelOnSessionsPage(app)).toBe(ONE_TIME_CODE_ACR);

    // 5. The same person.
    const meAfter = (await app.get('/me').set('Accept', 'application/json').expect(200)).body;
    expect(meAfter).toEqual(meBefore);
    expect(meAfter.sub).toBe('alice');
  });

  it('someone not signed in signs in once, with the code, and lands on the page', async () => {
    const h = await harness();
    const app = h.app();
    const provider = h.providerAgent();
    const from = h.providerRequests.length;

    const link = locationOf(await app.get(SENSITIVE));
    expect(link.pathname).toBe('/login');
    expect(link.searchParams.get('returnTo')).toBe(SENSITIVE);
    expect(link.searchParams.get('acr_values')).toBe(ONE_TIME_CODE_ACR);
    expect(link.searchParams.get('max_age')).toBe('600');

    const { page, response } = await stepUp(h, app, provider, link, ALICE_WITH_CODE);
    expect(page.html).toContain('Sign in with a one-time code');
    expect(response.headers.location).toBe(SENSITIVE);
    const sensitive = await app.get(SENSITIVE).expect(200);
    expect(sensitive.text).toContain(`<dd id="session-acr"><code>${ONE_TIME_CODE_ACR}</code></dd>`);

    // One sign-in, not two: one authorization request, one code exchange.
    expect(authorizationRequests(h, from)).toHaveLength(1);
    expect(tokenGrants(h, from)).toEqual(['authorization_code']);
  });

  it('an ID token without a listed acr: 403 naming the level, and the session stays as it was', async () => {
    // A level the embedded provider never issues.
    const h = await harness({ STEP_UP_ACR_VALUES: 'urn:example:gold' });
    const { app, provider } = await signedInWithPassword(h);
    const before = await stored(h, app);
    expect(before.session.acr).toBe(PASSWORD_ACR);

    const link = locationOf(await app.get(SENSITIVE));
    expect(link.searchParams.get('acr_values')).toBe('urn:example:gold');
    const from = h.providerRequests.length;
    // The provider does not know the level: it lets the session's password sign-in stand.
    const authorizationUrl = await startLogin(app, link.search);
    const callbackUrl = await authorizeAtProvider(h, provider, authorizationUrl, ALICE);
    expect(authorizationRequests(h, from)[0]!.params.acr_values).toBe('urn:example:gold');
    const failed = await app
      .get(callbackUrl.pathname + callbackUrl.search)
      .set('Accept', 'application/json');
    expect(failed.status).toBe(403);
    expect(failed.body).toMatchObject({
      error: 'step_up_failed',
      message: `The sign-in was at level ${PASSWORD_ACR}; this needs urn:example:gold.`,
      details: { 'Asked for': 'urn:example:gold', 'The provider answered': PASSWORD_ACR },
    });

    // Nothing changed: same session, same level, same tokens; still no sensitive page.
    await expectUnchanged(h, app, before);
    await app.get('/dashboard').expect(200);
    expect(await levelOnSessionsPage(app)).toBe(PASSWORD_ACR);
    expect(locationOf(await app.get(SENSITIVE)).searchParams.get('acr_values')).toBe(
      'urn:example:gold',
    );

    // The page a person sees says the same, and offers the same step-up again.
    const again = locationOf(await app.get(SENSITIVE));
    const url = await startLogin(app, again.search);
    const back = await authorizeAtProvider(h, provider, url, ALICE);
    const html = await app.get(back.pathname + back.search).expect(403);
    expect(html.text).toContain('That sign-in was not strong enough');
    expect(html.text).toContain('this needs urn:example:gold');
    expect(html.text).toContain(
      'href="/login?returnTo=%2Fdashboard%2Fsensitive&amp;acr_values=urn%3Aexample%3Agold&amp;max_age=600"',
    );
  });

  it('a sign-in older than max_age (codeflow’s clock an hour ahead): 403 for its age, no upgrade', async () => {
    const h = await harness({}, { now: () => Math.floor(Date.now() / 1000) + 3600 });
    const { app, provider } = await signedInWithPassword(h);
    const before = await stored(h, app);

    const link = locationOf(await app.get(SENSITIVE));
    const { page, response } = await stepUp(h, app, provider, link, ALICE_WITH_CODE, true);
    // The code was asked for and given: the level is right, only the time is not.
    expect(page.html).toContain('Sign in with a one-time code');
    expect(response.status).toBe(403);
    expect(response.body.error).toBe('step_up_failed');
    expect(response.body.message).toBe(
      'The sign-in happened 60 minutes ago; this needs one within the last 10 minutes.',
    );
    expect(response.body.details['The provider answered']).toBe(ONE_TIME_CODE_ACR);

    await expectUnchanged(h, app, before);
    expect(await levelOnSessionsPage(app)).toBe(PASSWORD_ACR);
    expect(locationOf(await app.get(SENSITIVE)).pathname).toBe('/login');
  });

  it('another account at the step-up (bob, with his code, for alice’s session): 403, alice’s session unchanged', async () => {
    const h = await harness();
    const { app } = await signedInWithPassword(h);
    const before = await stored(h, app);

    // The provider no longer holds alice's session in this browser (it ended, or another profile
    // is used there), so nothing at the provider stands between bob and the callback.
    const provider = h.providerAgent();
    const link = locationOf(await app.get(SENSITIVE));
    const from = h.providerRequests.length;
    const { page, response } = await stepUp(h, app, provider, link, BOB_WITH_CODE, true);
    expect(page.html).toContain('Sign in with a one-time code');
    // The provider did sign bob in, with his code: it is codeflow that refuses.
    const token = h.providerRequests.slice(from).find((r) => r.route === 'token');
    expect(token?.status).toBe(200);
    expect(response.status).toBe(403);
    expect(response.body).toMatchObject({
      error: 'step_up_failed',
      message: 'You signed in as a different account from the one this session belongs to.',
      details: { 'The provider answered': ONE_TIME_CODE_ACR },
    });

    await expectUnchanged(h, app, before);
    const me = await app.get('/me').set('Accept', 'application/json').expect(200);
    expect(me.body.sub).toBe('alice');
    expect(await levelOnSessionsPage(app)).toBe(PASSWORD_ACR);
    expect(locationOf(await app.get(SENSITIVE)).pathname).toBe('/login');
  });

  it('another account in the same browser: the provider refuses it on its step-up page, and alice stays signed in', async () => {
    const h = await harness();
    const { app, provider } = await signedInWithPassword(h);
    const before = await stored(h, app);
    const link = locationOf(await app.get(SENSITIVE));
    const authorizationUrl = await startLogin(app, link.search);
    const page = await providerPage(h, provider, authorizationUrl);
    expect(page.html).toMatch(/<input name="login" value="alice"/);

    // bob's credentials on alice's step-up page: refused there, naming whose sign-in it is.
    // (Accepted, oidc-provider would end alice's provider session on the way, and with it, by
    // back-channel logout, her session here.)
    const action = /<form method="post" action="([^"]+)"/.exec(page.html)![1]!;
    const refused = await provider.post(action).type('form').send(BOB_WITH_CODE);
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('This stronger sign-in is for alice');
    expect(refused.text).toMatch(/<input name="login" value="alice"/);

    expect(h.logs.parsed().filter((l) => l.msg === 'back-channel logout')).toEqual([]);
    await expectUnchanged(h, app, before);
    const me = await app.get('/me').set('Accept', 'application/json').expect(200);
    expect(me.body.sub).toBe('alice');

    // alice, with her code, on the same page: the step-up goes through.
    const accepted = await provider.post(action).type('form').send(ALICE_WITH_CODE);
    expect(accepted.status).toBe(303);
  });

  it('/login drops malformed step-up input: none of it reaches the provider', async () => {
    const h = await harness();
    const rejected = [
      'acr_values=%20%20%20',
      'acr_values=%01urn%3Aexample%3Agold',
      'acr_values=gold%0D%0ASet-Cookie:x=1',
      'acr_values=gold%09silver',
      'acr_values=%C3%A9',
      'acr_values=gold&acr_values=silver', // repeated: an array, not a string
      `acr_values=${'x'.repeat(201)}`,
      `acr_values=${'gold%20'.repeat(250)}`, // longer than five values could be
      'max_age=10abc',
      'max_age=-5',
      'max_age=1e3',
      'max_age=%20600',
      'max_age=600%0A',
      'max_age=1000000',
      'max_age=0x10',
      'max_age=60&max_age=60',
    ];
    for (const query of rejected) {
      const url = await startLogin(h.app(), `?returnTo=%2Fdashboard&${query}`);
      expect(url.searchParams.has('acr_values'), query).toBe(false);
      expect(url.searchParams.has('max_age'), query).toBe(false);
      expect(url.searchParams.get('state'), query).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(url.href, query).not.toMatch(/%0[0-9A-F]|%1[0-9A-F]|%7F|Set-Cookie/i);
    }

    // Half valid: the valid part only (at most five distinct values), through to the provider.
    const provider = h.providerAgent();
    const app = h.app();
    const from = h.providerRequests.length;
    const url = await startLogin(
      app,
      `?acr_values=${encodeURIComponent(`\x01bad ${ONE_TIME_CODE_ACR} a b ${ONE_TIME_CODE_ACR} c d e f`)}&max_age=soon`,
    );
    expect(url.searchParams.get('acr_values')).toBe(`${ONE_TIME_CODE_ACR} a b c d`);
    expect(url.searchParams.has('max_age')).toBe(false);
    await providerPage(h, provider, url);
    const [seen] = authorizationRequests(h, from);
    expect(seen!.params.acr_values).toBe(`${ONE_TIME_CODE_ACR} a b c d`);
    expect(seen!.params.max_age).toBeUndefined();

    // All of it dropped: an ordinary sign-in, which the callback does not hold to any level.
    const plain = await startLogin(app, '?returnTo=%2Fdashboard&acr_values=%00&max_age=x');
    const back = await authorizeAtProvider(h, h.providerAgent(), plain, ALICE);
    const done = await app.get(back.pathname + back.search);
    expect(done.status).toBe(302);
    expect(done.headers.location).toBe('/dashboard');
  });
});

describe('step-up asked for by the API (RFC 9470)', () => {
  it('the dashboard’s API wants the code: a 401 step-up page, no refresh, and the sign-in it offers brings the person back', async () => {
    // The embedded provider on a port chosen now, so API_URL can name its /api/sensitive.
    const port = await freePort();
    const h = await harness({
      DEV_PROVIDER_PORT: String(port),
      API_URL: `http://127.0.0.1:${port}/api/sensitive`,
    });
    expect(h.runtime.config.apiUrl?.href).toBe(h.runtime.devProvider!.sensitiveApiUrl.href);
    const { app, provider } = await signedInWithPasswordForApi(h);

    const from = h.providerRequests.length;
    const refused = await app.get('/dashboard');
    expect(refused.status).toBe(401);
    expect(refused.text).toContain('A stronger sign-in is needed');
    expect(refused.text).toContain(ONE_TIME_CODE_ACR);
    const href = /<a class="button" href="([^"]+)">Sign in again<\/a>/.exec(refused.text)?.[1];
    expect(href).toBeDefined();
    const link = new URL(href!.replace(/&amp;/g, '&'), 'http://app.invalid');
    expect(link.pathname).toBe('/login');
    expect(Object.fromEntries(link.searchParams)).toEqual({
      returnTo: '/dashboard',
      acr_values: ONE_TIME_CODE_ACR,
      max_age: '300',
    });
    // The same as JSON, for scripts.
    const json = await app.get('/dashboard').set('Accept', 'application/json').expect(401);
    expect(json.body.error).toBe('step_up_required');
    expect(json.body.details).toMatchObject({ 'Signed in within (max_age)': '300 seconds' });
    // The token was fine: nothing was refreshed.
    expect(tokenGrants(h, from)).toEqual([]);

    // Following the link: the provider asks for the code, and the person is back on the dashboard.
    const { page, response } = await stepUp(h, app, provider, link, ALICE_WITH_CODE);
    expect(page.html).toContain('Sign in with a one-time code');
    const [asked] = authorizationRequests(h, from);
    expect(asked!.params.acr_values).toBe(ONE_TIME_CODE_ACR);
    expect(String(asked!.params.max_age)).toBe('300');
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('/dashboard');
    const dashboard = await app.get('/dashboard').expect(200);
    expect(dashboard.text).toMatch(/answered <span class="status ok">200<\/span>/);
    expect(dashboard.text).toContain('GB00 DEMO 0000 0000 0000 00');
    expect(tokenGrants(h, from)).toEqual(['authorization_code']);
  });
});

/** Like signedInWithPassword, for a harness whose dashboard cannot answer until the step-up. */
async function signedInWithPasswordForApi(h: Harness): Promise<{ app: Agent; provider: Agent }> {
  const app = h.app();
  const provider = h.providerAgent();
  const { response } = await signIn(h, app, { provider, account: ALICE });
  expect(response.status).toBe(302);
  expect(await levelOnSessionsPage(app)).toBe(PASSWORD_ACR);
  return { app, provider };
}

describe('step-up against a provider we did not configure (the misbehaving mock)', () => {
  const MFA = 'urn:mock:mfa';
  const now = () => Math.floor(Date.now() / 1000);
  let h: MockHarness;

  /** /dashboard/sensitive's step-up at the mock, which answers at once with behaviour's ID token. */
  async function stepUpAtMock(app: Agent): Promise<supertest.Response> {
    const link = locationOf(await app.get(SENSITIVE));
    expect(Object.fromEntries(link.searchParams)).toEqual({
      returnTo: SENSITIVE,
      acr_values: MFA,
      max_age: '600',
    });
    const from = h.mock.requests.length;
    const login = await app.get(link.pathname + link.search).expect(302);
    const authorize = await fetch(login.headers.location as string, { redirect: 'manual' });
    const [asked] = received(h, '/authorize', from);
    expect(asked!.query).toMatchObject({ acr_values: MFA, max_age: '600' });
    const callback = new URL(authorize.headers.get('location')!);
    return app.get(callback.pathname + callback.search).set('Accept', 'application/json');
  }

  it('the right acr with an auth_time an hour old: 403; none at all: 403; another sub: 403; a fresh one for the same sub: the page', async () => {
    h = await startMockHarness({ STEP_UP_ACR_VALUES: MFA });
    open.push(h);
    h.mock.behaviour.idToken = { extraClaims: { acr: 'urn:mock:pwd', auth_time: now() } };
    const app = h.app();
    expect((await signInAtMock(h, app)).status).toBe(302);
    await app.get('/dashboard').expect(200);
    const before = await stored(h, app);
    expect(before.session.acr).toBe('urn:mock:pwd');

    h.mock.behaviour.idToken = { extraClaims: { acr: MFA, auth_time: now() - 3600 } };
    const stale = await stepUpAtMock(app);
    expect(stale.status).toBe(403);
    expect(stale.body.error).toBe('step_up_failed');
    expect(stale.body.message).toBe(
      'The sign-in happened 60 minutes ago; this needs one within the last 10 minutes.',
    );
    await expectUnchanged(h, app, before);

    h.mock.behaviour.idToken = { extraClaims: { acr: MFA } };
    const unstated = await stepUpAtMock(app);
    expect(unstated.status).toBe(403);
    expect(unstated.body.message).toMatch(/did not say when the sign-in happened \(auth_time\)/);
    await expectUnchanged(h, app, before);

    // Strong and recent, but another person (sub) than the session's.
    h.mock.behaviour.sub = 'user-2';
    h.mock.behaviour.idToken = { extraClaims: { acr: MFA, auth_time: now() - 60 } };
    const other = await stepUpAtMock(app);
    expect(other.status).toBe(403);
    expect(other.body.message).toBe(
      'You signed in as a different account from the one this session belongs to.',
    );
    await expectUnchanged(h, app, before);
    delete h.mock.behaviour.sub;

    const fresh = await stepUpAtMock(app);
    expect(fresh.status).toBe(302);
    expect(fresh.headers.location).toBe(SENSITIVE);
    const page = await app.get(SENSITIVE).expect(200);
    expect(page.text).toContain(`<dd id="session-acr"><code>${MFA}</code></dd>`);
    const after = await stored(h, app);
    expect(after.sid).not.toBe(before.sid);
    expect(after.session.acr).toBe(MFA);
    expect((after.session.user as { sub: string }).sub).toBe('user-1');
  });
});
