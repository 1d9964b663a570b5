import supertest from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signInAtMock, startMockHarness, type MockHarness } from '../helpers/mock-harness.js';
import type { MockProvider } from '../helpers/mock-provider.js';

/**
 * POST /backchannel-logout (OpenID Connect Back-Channel Logout 1.0) against the misbehaving
 * provider: each bad logout token names a person who is signed in, is refused with a bare 400, and
 * that person stays signed in; a valid one signs them out. The mock's ID tokens carry no `sid`,
 * so these tokens name the person by `sub`.
 */
let h: MockHarness;
beforeAll(async () => {
  // Every case signs someone in: more sign-ins than the default per-minute limit allows.
  h = await startMockHarness({ RATE_LIMIT_PER_MINUTE: '1000' });
});
afterEach(() => h.mock.reset());
afterAll(async () => {
  await h?.close();
});

type Agent = ReturnType<MockHarness['app']>;
type LogoutTokenOptions = Parameters<MockProvider['logoutToken']>[1];

/** Every logout token sent, so the last test can search the logs for them. */
const sent: string[] = [];
let people = 0;

/** A new person (their own `sub`) signed in through the mock, with the dashboard working. */
async function signedInPerson(sub = `person-${++people}`): Promise<{ agent: Agent; sub: string }> {
  h.mock.behaviour.sub = sub;
  const agent = h.app();
  const callback = await signInAtMock(h, agent);
  expect(callback.status).toBe(302);
  await agent.get('/dashboard').expect(200);
  return { agent, sub };
}

async function logoutToken(
  claims: Record<string, unknown>,
  options?: LogoutTokenOptions,
): Promise<string> {
  const token = await h.mock.logoutToken(claims, options);
  sent.push(token);
  return token;
}

/** The provider's request: no cookie jar, as a server-to-server call. */
const post = (body: string | object, type = 'form') =>
  supertest(h.server).post('/backchannel-logout').type(type).send(body);

/** The reasons logged for rejected back-channel logouts since `from`. */
function rejectionsSince(from: number): unknown[] {
  return h.logs
    .parsed()
    .slice(from)
    .filter((line) => line.msg === 'back-channel logout rejected')
    .map((line) => line.reason);
}

async function expectStillSignedIn(agent: Agent): Promise<void> {
  await agent.get('/dashboard').expect(200);
}

async function expectSignedOut(agent: Agent): Promise<void> {
  const res = await agent.get('/dashboard').expect(302);
  expect(res.headers.location).toMatch(/^\/login/);
}

function expectBareRejection(res: supertest.Response): void {
  expect(res.status).toBe(400);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  // Nothing that would tell a forger which check failed.
  expect(res.body).toEqual({ error: 'invalid_request' });
}

describe('POST /backchannel-logout', () => {
  it.each<[string, (sub: string) => Promise<Record<string, unknown>>, string]>([
    [
      'is signed by a key the provider does not publish',
      async (sub) => ({ logout_token: await logoutToken({ sub }, { otherKey: true }) }),
      'signature',
    ],
    [
      'is unsigned (alg none)',
      async (sub) => ({ logout_token: await logoutToken({ sub }, { alg: 'none' }) }),
      'alg',
    ],
    [
      'comes from another issuer',
      async (sub) => ({ logout_token: await logoutToken({ sub, iss: 'https://evil.example' }) }),
      'iss',
    ],
    [
      'is for another client',
      async (sub) => ({ logout_token: await logoutToken({ sub, aud: 'other-client' }) }),
      'aud',
    ],
    [
      'was issued an hour ago',
      async (sub) => ({
        logout_token: await logoutToken({ sub, iat: Math.floor(Date.now() / 1000) - 3600 }),
      }),
      'iat',
    ],
    [
      'carries a nonce (an ID token passed off as a logout token)',
      async (sub) => ({ logout_token: await logoutToken({ sub, nonce: 'n-1' }) }),
      'nonce',
    ],
    [
      'has no events claim',
      async (sub) => ({ logout_token: await logoutToken({ sub, events: undefined }) }),
      'events',
    ],
    [
      'has neither sid nor sub',
      async () => ({ logout_token: await logoutToken({}) }),
      'sid_or_sub',
    ],
  ])('refuses a logout token that %s, and the session survives', async (_name, body, reason) => {
    const { agent, sub } = await signedInPerson();
    const from = h.logs.lines.length;

    expectBareRejection(await post(await body(sub)));

    expect(rejectionsSince(from)).toEqual([reason]);
    await expectStillSignedIn(agent);
  });

  it.each<[string, (token: string) => { body: string | object; type?: string }, string]>([
    [
      'is JSON, not form-encoded',
      (token) => ({ body: JSON.stringify({ logout_token: token }), type: 'json' }),
      'content_type',
    ],
    [
      'is 20 kB long',
      (token) => ({ body: `logout_token=${token}&padding=${'x'.repeat(20_000)}` }),
      'body',
    ],
    [
      'has two logout_token parameters',
      (token) => ({ body: `logout_token=${token}&logout_token=${token}` }),
      'logout_token',
    ],
  ])(
    'refuses a request whose body %s (the token in it valid), and the session survives',
    async (_name, request, reason) => {
      const { agent, sub } = await signedInPerson();
      const { body, type } = request(await logoutToken({ sub }));
      const from = h.logs.lines.length;

      expectBareRejection(await post(body, type));

      expect(rejectionsSince(from)).toEqual([reason]);
      await expectStillSignedIn(agent);
    },
  );

  it('signs the person out when the logout token is valid, and no one else', async () => {
    const { agent, sub } = await signedInPerson();
    const other = await signedInPerson();

    const res = await post({ logout_token: await logoutToken({ sub }) });

    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).toBe('');
    await expectSignedOut(agent);
    // Only the person the token names.
    await expectStillSignedIn(other.agent);
    const done = h.logs.parsed().find((line) => line.msg === 'back-channel logout');
    expect(done).toMatchObject({ ended: 1, by: 'sub' });
  });

  it('refuses a replayed logout token: the session signed in since survives', async () => {
    const first = await signedInPerson();
    const token = await logoutToken({ sub: first.sub });
    await post({ logout_token: token }).expect(200);
    await expectSignedOut(first.agent);

    const again = await signedInPerson(first.sub);
    const from = h.logs.lines.length;
    expectBareRejection(await post({ logout_token: token }));

    expect(rejectionsSince(from)).toEqual(['jti']);
    await expectStillSignedIn(again.agent);
  });

  it('never writes a logout token to the log', () => {
    expect(sent.length).toBeGreaterThan(10);
    const text = h.logs.text();
    for (const token of sent) {
      expect(text).not.toContain(token);
      // Not even its signature, nor its payload.
      for (const part of token.split('.').filter((p) => p.length > 20))
        expect(text).not.toContain(part);
    }
  });
});
