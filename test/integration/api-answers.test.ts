import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  received,
  signInAtMock,
  startMockHarness,
  type MockHarness,
} from '../helpers/mock-harness.js';

/** Every kind of answer the API and the token endpoint can give, each with what the person sees. */
let h: MockHarness;
beforeAll(async () => {
  h = await startMockHarness({
    HTTP_TIMEOUT_MS: '800',
    API_RETRY_BUDGET_MS: '3000',
    REFRESH_SKEW_SECONDS: '0',
  });
});
afterEach(() => {
  h.mock.reset();
});
afterAll(async () => {
  await h?.close();
});

async function signedIn() {
  const app = h.app();
  const res = await signInAtMock(h, app);
  expect(res.status).toBe(302);
  return app;
}

const invalidToken = {
  status: 401,
  headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
};
const mark = () => h.mock.requests.length;

describe('the API answers', () => {
  it('401 once, then OK: one refresh, one retry, and the page shows the answer', async () => {
    const app = await signedIn();
    const from = mark();
    h.mock.behaviour.api = [invalidToken];
    const page = await app.get('/dashboard').expect(200);
    expect(page.text).toMatch(/answered <span class="status ok">200<\/span>/);
    expect(received(h, '/api/resource', from)).toHaveLength(2);
    expect(received(h, '/token', from).map((r) => r.body.grant_type)).toEqual(['refresh_token']);
    // The retry carried the new access token, not the refused one.
    const [first, second] = received(h, '/api/resource', from);
    expect(second!.authorization).not.toBe(first!.authorization);
    expect(second!.authorization).toBe(`Bearer ${h.mock.issued.accessTokens.at(-1)}`);
  });

  it('401 always: one refresh, one retry, then a clear page, no loop', async () => {
    const app = await signedIn();
    const from = mark();
    h.mock.behaviour.apiAlways = invalidToken;
    const page = await app.get('/dashboard').expect(502);
    expect(page.text).toContain('The API did not accept your access');
    expect(page.text).toContain('even a freshly renewed one');
    expect(received(h, '/api/resource', from)).toHaveLength(2);
    expect(received(h, '/token', from)).toHaveLength(1);
  });

  it('403 insufficient_scope: a page naming the scopes granted and the scope asked for', async () => {
    const app = await signedIn();
    h.mock.behaviour.api = [
      {
        status: 403,
        headers: {
          'WWW-Authenticate': 'Bearer error="insufficient_scope", scope="projects:write admin"',
        },
      },
    ];
    const from = mark();
    const page = await app.get('/dashboard').expect(403);
    expect(page.text).toContain('lacks a permission');
    expect(page.text).toMatch(
      /Scopes granted<\/dt><dd><code>openid profile email offline_access<\/code>/,
    );
    expect(page.text).toMatch(
      /Scopes the API asked for<\/dt><dd><code>projects:write admin<\/code>/,
    );
    expect(received(h, '/token', from)).toHaveLength(0); // a refresh would not add a scope
    const json = await app.get('/dashboard').set('Accept', 'application/json');
    expect(json.status).toBe(200); // the queue is empty again: the next call succeeds
  });

  it('429 with Retry-After: 1 waits about a second and succeeds', async () => {
    const app = await signedIn();
    h.mock.behaviour.api = [{ status: 429, headers: { 'Retry-After': '1' } }];
    const from = mark();
    const started = Date.now();
    const page = await app.get('/dashboard').expect(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(page.text).toMatch(/answered <span class="status ok">200<\/span>/);
    expect(received(h, '/api/resource', from)).toHaveLength(2);
  });

  it('429 beyond the budget: a 503 that says when to retry, at once', async () => {
    const app = await signedIn();
    h.mock.behaviour.api = [{ status: 429, headers: { 'Retry-After': '120' } }];
    const from = mark();
    const page = await app.get('/dashboard').expect(503);
    expect(page.headers['retry-after']).toBe('120');
    expect(page.text).toContain('Try again in 120 seconds');
    expect(received(h, '/api/resource', from)).toHaveLength(1);
    await app.get('/me').set('Accept', 'application/json').expect(200); // the session is kept
  });

  it('5xx: a limited number of retries, then a 502 page', async () => {
    const app = await signedIn();
    h.mock.behaviour.apiAlways = { status: 500, body: 'boom' };
    const from = mark();
    const page = await app.get('/dashboard').expect(502);
    expect(page.text).toContain('The API had a problem');
    expect(received(h, '/api/resource', from)).toHaveLength(3);
    expect(page.text).not.toContain('boom');
  });

  it('a hanging API: a 503 within the configured timeout, and the session survives', async () => {
    const app = await signedIn();
    h.mock.behaviour.api = [{ status: 200, delayMs: 5000 }];
    const started = Date.now();
    const page = await app.get('/dashboard').expect(503);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(page.text).toContain('did not answer in time');
    await app.get('/me').set('Accept', 'application/json').expect(200);
  });

  it('reuses connections to the provider and the API (keep-alive)', async () => {
    const app = await signedIn();
    await app.get('/dashboard').expect(200);
    const before = h.mock.connections;
    for (let i = 0; i < 10; i++) await app.get('/dashboard').expect(200);
    expect(h.mock.connections - before).toBeLessThanOrEqual(1);
  });
});

describe('the token endpoint answers a refresh', () => {
  async function expired() {
    h.mock.behaviour.accessTokenTtl = 0; // issued already expired: the next page refreshes
    const app = await signedIn();
    h.mock.behaviour.accessTokenTtl = 300;
    return app;
  }

  it('invalid_grant: the session ends and the person is asked to sign in again, back to where they were', async () => {
    const app = await expired();
    h.mock.behaviour.refreshToken = 'invalid_grant';
    const page = await app.get('/dashboard').expect(401);
    expect(page.text).toContain('Your session has ended');
    expect(page.text).toContain('href="/login?returnTo=%2Fdashboard"');
    await app.get('/me').set('Accept', 'application/json').expect(401);
  });

  it.each([
    ['a 500 HTML page', 'server_error_html' as const, 502, 'answered with an error'],
    ['temporarily_unavailable', 'temporarily_unavailable' as const, 503, 'is unreachable'],
    ['no answer (timeout)', 'hang' as const, 504, 'did not answer in time'],
  ])(
    '%s: a page that says so, and the session survives to refresh later',
    async (_name, outcome, status, says) => {
      const app = await expired();
      h.mock.behaviour.refreshToken = outcome;
      const from = mark();
      const page = await app.get('/dashboard').expect(status);
      expect(page.text).toContain(`The sign-in provider ${says}`);
      expect(received(h, '/token', from)).toHaveLength(1); // never retried blindly
      await app.get('/me').set('Accept', 'application/json').expect(200);
      h.mock.behaviour.refreshToken = 'ok';
      await app.get('/dashboard').expect(200);
    },
  );

  it('an ID token for another sub: the session ends and the API is not called with the new token', async () => {
    const app = await expired();
    h.mock.behaviour.refreshIdTokenSub = 'someone-else';
    const from = mark();
    await app.get('/dashboard').expect(401);
    expect(received(h, '/api/resource', from)).toHaveLength(0);
    await app.get('/me').set('Accept', 'application/json').expect(401);
  });

  it('no refresh_token, id_token or expires_in in the answer: the previous ones are kept and 401 drives the next refresh', async () => {
    const app = await expired();
    h.mock.behaviour.omitRefreshTokenOnRefresh = true;
    h.mock.behaviour.omitIdTokenOnRefresh = true;
    h.mock.behaviour.omitExpiresIn = true;
    const from = mark();
    const first = await app.get('/dashboard').expect(200);
    expect(first.text).toContain('not stated by the provider');
    expect(first.text).toContain('<dd id="refresh-held">yes</dd>');
    const sent = received(h, '/token', from)[0]!.body.refresh_token;
    // The token is now of unknown lifetime: only the API's 401 says it has expired.
    h.mock.behaviour.api = [invalidToken];
    await app.get('/dashboard').expect(200);
    expect(received(h, '/token', from).map((r) => r.body.refresh_token)).toEqual([sent, sent]);
  });
});

describe('API_AUTH_SCHEME', () => {
  let custom: MockHarness;
  beforeAll(async () => {
    custom = await startMockHarness({ API_AUTH_SCHEME: 'token' });
  });
  afterAll(async () => {
    await custom?.close();
  });

  it('sends the access token with the configured scheme, in the header only', async () => {
    const app = custom.app();
    await signInAtMock(custom, app);
    custom.mock.behaviour.api = [{ status: 200, body: { scheme: 'accepted' } }];
    const page = await app.get('/dashboard').expect(200);
    expect(page.text).toContain('accepted');
    const call = received(custom, '/api/resource').at(-1)!;
    expect(call.authorization).toBe(`token ${custom.mock.issued.accessTokens.at(-1)}`);
    expect(JSON.stringify(call.query)).not.toContain(custom.mock.issued.accessTokens.at(-1)!);
  });
});

describe('secrets during all of the above', () => {
  it('no issued token or code appears in a log line', () => {
    const logs = h.logs.text();
    const { accessTokens, refreshTokens, idTokens, codes } = h.mock.issued;
    const secrets = [...accessTokens, ...refreshTokens, ...idTokens, ...codes, h.mock.clientSecret];
    expect(secrets.length).toBeGreaterThan(20);
    for (const secret of secrets) expect(logs.includes(secret)).toBe(false);
  });
});
