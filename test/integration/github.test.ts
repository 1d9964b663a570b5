import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGitHubStandIn, type GitHubStandIn } from '../helpers/github-stand-in.js';
import { startHarness, type Harness } from '../helpers/harness.js';

/**
 * PROVIDER=github against a local stand-in for GitHub's endpoints (GitHub Enterprise Server's
 * layout, so GITHUB_URL and GITHUB_API_URL are both exercised): plain OAuth 2.0 with state and
 * PKCE, no ID token, the person from /user and the primary verified email from /user/emails.
 */

/** The public URL the app believes it has; supertest talks to its socket directly. */
const BASE_URL = 'http://127.0.0.1:3998';
const json = { Accept: 'application/json' };

let gh: GitHubStandIn;
const harnesses: Harness[] = [];
beforeAll(async () => {
  gh = await startGitHubStandIn(`${BASE_URL}/callback`);
});
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  gh.emails = [{ email: 'octo@example.com', primary: true, verified: true }];
});
afterAll(async () => {
  await gh?.close();
});

async function harness(env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({
    APP_BASE_URL: BASE_URL,
    PROVIDER: 'github',
    GITHUB_URL: gh.url,
    GITHUB_API_URL: gh.apiUrl,
    OIDC_CLIENT_ID: gh.clientId,
    OIDC_CLIENT_SECRET: gh.clientSecret,
    ...env,
  });
  harnesses.push(h);
  return h;
}

/** /login, GitHub's authorize (it answers at once: the person has authorized the app), /callback. */
async function signInAtGitHub(app: ReturnType<Harness['app']>) {
  const login = await app.get('/login').expect(302);
  const authorize = new URL(login.headers.location as string);
  const back = await fetch(authorize, { redirect: 'manual' });
  const callback = new URL(back.headers.get('location')!);
  const response = await app.get(callback.pathname + callback.search).set(json);
  return { authorize, response };
}

describe('PROVIDER=github', () => {
  it('signs in with state and PKCE, reads the person and the verified primary email, calls /user with the token scheme', async () => {
    const h = await harness();
    const app = h.app();
    const { authorize, response } = await signInAtGitHub(app);
    expect(authorize.origin + authorize.pathname).toBe(`${gh.url}login/oauth/authorize`);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('state')).toMatch(/.{20,}/);
    expect(authorize.searchParams.get('scope')).toBe('read:user user:email');
    expect(authorize.searchParams.has('nonce')).toBe(false);
    expect(response.status).toBe(302);

    expect((await app.get('/me').set(json).expect(200)).body).toEqual({
      iss: gh.url,
      sub: '583231',
      name: 'The Octocat',
      email: 'octo@example.com',
    });
    const from = gh.requests.length;
    const page = await app.get('/dashboard').expect(200);
    expect(page.text).toContain('Hello, The Octocat');
    const apiCall = gh.requests.slice(from).find((r) => r.path === '/api/v3/user');
    expect(apiCall?.authorization).toMatch(/^token gho_/);
    // No token in the page; GitHub has no revocation endpoint, and the dashboard says so.
    for (const token of gh.issued) expect(page.text).not.toContain(token);
    expect(page.text).toContain('no revocation endpoint');
  });

  it('shows no email when the primary one is not verified, and admits by domain only a verified one', async () => {
    gh.emails = [{ email: 'octo@example.com', primary: true, verified: false }];
    const open = await harness();
    const app = open.app();
    expect((await signInAtGitHub(app)).response.status).toBe(302);
    expect((await app.get('/me').set(json).expect(200)).body.email).toBeUndefined();

    const strict = await harness({ ALLOWED_EMAIL_DOMAINS: 'example.com' });
    const refused = await signInAtGitHub(strict.app());
    expect(refused.response.status).toBe(403);
    expect(refused.response.body.error).toBe('not_allowed');
    expect(refused.response.body.message).toContain('not verified');
  });

  it('refuses a verified email outside ALLOWED_EMAIL_DOMAINS with 403 and no session', async () => {
    gh.emails = [
      { email: 'octo@elsewhere.org', primary: true, verified: true },
      { email: 'octo@example.com', primary: false, verified: true },
    ];
    const h = await harness({ ALLOWED_EMAIL_DOMAINS: 'example.com' });
    const app = h.app();
    const { response } = await signInAtGitHub(app);
    expect(response.status).toBe(403);
    expect(response.body.message).toContain('domain');
    await app.get('/me').set(json).expect(401);
  });

  it('reads GitHub’s 200-with-an-error answers as the errors they are: wrong client credentials', async () => {
    const h = await harness({ OIDC_CLIENT_SECRET: 'not-the-secret-github-has' });
    const { response } = await signInAtGitHub(h.app());
    expect(response.status).toBe(502);
    expect(response.body.error).toBe('provider_credentials_refused');
  });

  it('refuses what GitHub mode cannot do, at start, every problem at once', async () => {
    const refused = await harness({
      ALLOWED_GROUPS: 'admins',
      OIDC_ISSUER: 'https://example.com',
    }).catch((err: Error) => err.message);
    expect(refused).toContain('ALLOWED_GROUPS: not supported with PROVIDER=github');
    expect(refused).toContain('OIDC_ISSUER: not used with PROVIDER=github');
  });
});
