import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MockBehaviour } from '../helpers/mock-provider.js';
import {
  received,
  signInAtMock,
  startMockHarness,
  type MockHarness,
} from '../helpers/mock-harness.js';

/**
 * The relying-party checks of docs/security.md (most of its sections B and C), each played by the
 * misbehaving provider or an attacker. Every case asserts the status class, the page's message,
 * what reached the provider, that nobody is signed in, and that the process still answers; the
 * last test searches the logs for every secret issued on the way.
 */
let h: MockHarness;
beforeAll(async () => {
  h = await startMockHarness({ HTTP_TIMEOUT_MS: '800' });
});
afterEach(() => h.mock.reset());
afterAll(async () => {
  await h?.close();
});

const now = () => Math.floor(Date.now() / 1000);

interface Attack {
  /** What goes wrong, as docs/security.md cites it. */
  name: string;
  /** Switches on the provider's misbehaviour before the sign-in starts. */
  behaviour?: () => MockBehaviour;
  /** Changes the callback URL on its way to the app (the attacker's hand). */
  tamper?: (callback: URL) => void | Promise<void>;
  status: number;
  message: string;
  /** Token requests the provider must have seen: 0 when the app must refuse before the exchange. */
  tokenRequests: number;
}

const id = (idToken: MockBehaviour['idToken']) => () => ({ idToken });
const authorizeWith = (authorize: MockBehaviour['authorize']) => () => ({ authorize });
const VERIFY = 'could not be verified';

const attacks: Attack[] = [
  // C. The ID token is wrong (OpenID Foundation RP tests): refused after the exchange, 502.
  {
    name: 'ID token iss is another issuer',
    behaviour: id({ iss: 'https://evil.example' }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token aud is another client',
    behaviour: id({ aud: 'other-client' }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token has an extra untrusted audience and no azp',
    behaviour: id({ aud: ['mock-client', 'other'] }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token has several audiences and azp of another client',
    behaviour: id({ aud: ['mock-client', 'other'], azp: 'other' }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token without sub',
    behaviour: id({ removeClaims: ['sub'] }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token without iat',
    behaviour: id({ removeClaims: ['iat'] }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token without exp',
    behaviour: id({ removeClaims: ['exp'] }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token without iss',
    behaviour: id({ removeClaims: ['iss'] }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token expired an hour ago',
    behaviour: () => ({ idToken: { exp: now() - 3600 } }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token issued an hour in the future',
    behaviour: () => ({ idToken: { iat: now() + 3600 } }),
    status: 502,
    message: 'issue time lies in the future',
    tokenRequests: 1,
  },
  {
    name: 'ID token nonce changed',
    behaviour: id({ nonce: 'someone-elses-nonce' }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token nonce removed',
    behaviour: id({ nonce: null }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token alg none (unsigned)',
    behaviour: id({ alg: 'none' }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token HS256-signed with the client secret',
    behaviour: id({ alg: 'HS256' }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token signed by another key',
    behaviour: id({ signWithOtherKey: true }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'ID token with an unknown kid',
    behaviour: id({ kid: 'not-a-published-key' }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'no ID token in the token response',
    behaviour: id({ omit: true }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },
  {
    name: 'userinfo answers for another sub',
    behaviour: () => ({
      idToken: { removeClaims: ['name', 'email'] },
      userinfo: { sub: 'someone-else' },
    }),
    status: 502,
    message: VERIFY,
    tokenRequests: 1,
  },

  // B. The authorization response is wrong or forged: refused before any token request.
  {
    name: 'callback iss names another issuer (mix-up)',
    behaviour: authorizeWith({ iss: 'https://evil.example' }),
    status: 400,
    message: 'came from the wrong provider',
    tokenRequests: 0,
  },
  {
    name: 'callback iss missing though the provider advertises it',
    behaviour: authorizeWith({ iss: null }),
    status: 400,
    message: 'came from the wrong provider',
    tokenRequests: 0,
  },
  {
    name: 'state removed',
    tamper: (u) => u.searchParams.delete('state'),
    status: 400,
    message: 'no valid state',
    tokenRequests: 0,
  },
  {
    name: 'state altered',
    tamper: (u) => u.searchParams.set('state', 'A'.repeat(43)),
    status: 400,
    message: 'does not match',
    tokenRequests: 0,
  },
  {
    name: 'state repeated',
    tamper: (u) => u.searchParams.append('state', 'other'),
    status: 400,
    message: 'no valid state',
    tokenRequests: 0,
  },
  {
    name: 'code repeated',
    tamper: (u) => u.searchParams.append('code', 'other'),
    status: 400,
    message: 'malformed',
    tokenRequests: 0,
  },
  {
    name: 'code removed',
    tamper: (u) => u.searchParams.delete('code'),
    status: 400,
    message: 'malformed',
    tokenRequests: 0,
  },
  {
    name: 'tokens injected into the callback (implicit-style)',
    tamper: (u) => {
      u.searchParams.set('access_token', 'forged');
      u.searchParams.set('id_token', 'forged');
    },
    status: 400,
    message: 'malformed',
    tokenRequests: 0,
  },
  {
    name: 'provider says access_denied',
    behaviour: authorizeWith({ error: 'access_denied' }),
    status: 403,
    message: 'Sign-in was cancelled',
    tokenRequests: 0,
  },
  {
    name: 'provider says login_required',
    behaviour: authorizeWith({ error: 'login_required' }),
    status: 400,
    message: 'needs you to sign in again',
    tokenRequests: 0,
  },
  {
    name: 'provider says consent_required',
    behaviour: authorizeWith({ error: 'consent_required' }),
    status: 400,
    message: 'needs your consent',
    tokenRequests: 0,
  },
  {
    name: 'provider says temporarily_unavailable',
    behaviour: authorizeWith({ error: 'temporarily_unavailable' }),
    status: 503,
    message: 'The provider is busy',
    tokenRequests: 0,
  },
  {
    name: 'provider says server_error',
    behaviour: authorizeWith({ error: 'server_error' }),
    status: 502,
    message: 'The provider had a problem',
    tokenRequests: 0,
  },
  {
    name: 'provider says invalid_scope',
    behaviour: authorizeWith({ error: 'invalid_scope' }),
    status: 502,
    message: 'refused the sign-in request',
    tokenRequests: 0,
  },
  {
    name: 'error_description carries a script',
    behaviour: authorizeWith({ error: 'access_denied' }),
    tamper: (u) =>
      u.searchParams.set('error_description', '<script>alert(1)</script>\r\nFAKE-LOG-LINE'),
    status: 403,
    message: 'Sign-in was cancelled',
    tokenRequests: 0,
  },

  // The token endpoint misbehaves: fail closed, never retry the single-use code.
  {
    name: 'token endpoint answers 500 with an HTML page',
    behaviour: () => ({ token: 'server_error_html' }),
    status: 502,
    message: 'had a problem',
    tokenRequests: 1,
  },
  {
    name: 'token endpoint never answers',
    behaviour: () => ({ token: 'hang' }),
    status: 504,
    message: 'did not answer in time',
    tokenRequests: 1,
  },
  {
    name: 'token endpoint answers invalid_grant',
    behaviour: () => ({ token: 'invalid_grant' }),
    status: 400,
    message: 'already used or has expired',
    tokenRequests: 1,
  },
  {
    name: 'token endpoint answers 503 temporarily_unavailable',
    behaviour: () => ({ token: 'temporarily_unavailable' }),
    status: 503,
    message: 'The provider is busy',
    tokenRequests: 1,
  },
];

describe('every attack and fault is refused', () => {
  it.each(attacks)('$name → $status', async (attack) => {
    Object.assign(h.mock.behaviour, attack.behaviour?.() ?? {});
    const app = h.app();
    const login = await app.get('/login').expect(302);
    const from = h.mock.requests.length;
    const authorize = await fetch(login.headers.location as string, { redirect: 'manual' });
    const callback = new URL(authorize.headers.get('location')!);
    await attack.tamper?.(callback);

    const res = await app.get(callback.pathname + callback.search);

    expect(res.status).toBe(attack.status);
    expect(res.text).toContain(attack.message);
    expect(res.text).toMatch(/Reference: <code id="correlation-id">[0-9a-f-]{36}<\/code>/);
    expect(res.text).not.toMatch(/<script>alert|\bat .+:\d+:\d+|OAUTH_|ResponseBodyError/);
    expect(received(h, '/token', from)).toHaveLength(attack.tokenRequests);
    const { accessTokens, refreshTokens, idTokens, codes } = h.mock.issued;
    for (const secret of [...accessTokens, ...refreshTokens, ...idTokens, ...codes]) {
      expect(res.text.includes(secret) || JSON.stringify(res.headers).includes(secret)).toBe(false);
    }
    // Nothing was used before every check passed: no API or userinfo call with what came back
    // (the userinfo case itself calls it once, and must then refuse).
    expect(received(h, '/api/resource', from)).toHaveLength(0);
    await app.get('/me').set('Accept', 'application/json').expect(401);
    await h.app().get('/healthz').expect(200);
  });

  it.each([
    ['an uppercase token_type', { tokenType: 'BEARER' }],
    ['no expires_in', { omitExpiresIn: true }],
    ['a slow token endpoint within the timeout', { token: { delayMs: 300 } }],
  ] as Array<[string, MockBehaviour]>)(
    'accepts the legal variation of %s',
    async (_name, behaviour) => {
      Object.assign(h.mock.behaviour, behaviour);
      const app = h.app();
      expect((await signInAtMock(h, app)).status).toBe(302);
      await app.get('/me').set('Accept', 'application/json').expect(200);
    },
  );

  it('refuses a code injected into another sign-in (PKCE): the victim is not signed in as anyone', async () => {
    // The attacker gets a code for their own sign-in but does not redeem it...
    const attacker = h.app();
    const attackerLogin = await attacker.get('/login').expect(302);
    const attackerCallback = new URL(
      (await fetch(attackerLogin.headers.location as string, { redirect: 'manual' })).headers.get(
        'location',
      )!,
    );
    // ...and plants it in the victim's callback, with the victim's valid state.
    const victim = h.app();
    const victimLogin = await victim.get('/login').expect(302);
    const victimCallback = new URL(
      (await fetch(victimLogin.headers.location as string, { redirect: 'manual' })).headers.get(
        'location',
      )!,
    );
    victimCallback.searchParams.set('code', attackerCallback.searchParams.get('code')!);
    const from = h.mock.requests.length;
    const res = await victim.get(victimCallback.pathname + victimCallback.search).expect(400);
    expect(res.text).toContain('already used or has expired');
    expect(received(h, '/token', from)).toHaveLength(1); // the provider refused the verifier
    await victim.get('/me').set('Accept', 'application/json').expect(401);
  });

  it('refuses a code that was already redeemed', async () => {
    const first = h.app();
    const login = await first.get('/login').expect(302);
    const callback = new URL(
      (await fetch(login.headers.location as string, { redirect: 'manual' })).headers.get(
        'location',
      )!,
    );
    await first.get(callback.pathname + callback.search).expect(302);
    const second = h.app();
    const secondLogin = await second.get('/login').expect(302);
    const secondCallback = new URL(
      (await fetch(secondLogin.headers.location as string, { redirect: 'manual' })).headers.get(
        'location',
      )!,
    );
    secondCallback.searchParams.set('code', callback.searchParams.get('code')!);
    await second.get(secondCallback.pathname + secondCallback.search).expect(400);
    await second.get('/me').set('Accept', 'application/json').expect(401);
  });

  it('sends the configured redirect_uri to the token endpoint whatever Host and X-Forwarded-* say', async () => {
    const app = h.app();
    const login = await app
      .get('/login')
      .set('Host', 'evil.example')
      .set('X-Forwarded-Host', 'evil.example')
      .expect(302);
    expect(new URL(login.headers.location as string).searchParams.get('redirect_uri')).toBe(
      `${h.baseUrl}/callback`,
    );
    const callback = new URL(
      (await fetch(login.headers.location as string, { redirect: 'manual' })).headers.get(
        'location',
      )!,
    );
    const from = h.mock.requests.length;
    await app
      .get(callback.pathname + callback.search)
      .set('Host', 'evil.example')
      .set('X-Forwarded-Proto', 'http')
      .set('X-Forwarded-Host', 'evil.example')
      .expect(302);
    expect(received(h, '/token', from)[0]!.body.redirect_uri).toBe(`${h.baseUrl}/callback`);
  });

  it('wrote no issued token, code or secret to the logs during any of it', () => {
    const { accessTokens, refreshTokens, idTokens, codes } = h.mock.issued;
    const secrets = [...accessTokens, ...refreshTokens, ...idTokens, ...codes, h.mock.clientSecret];
    expect(secrets.length).toBeGreaterThan(40);
    const logs = h.logs.text();
    for (const secret of secrets) expect(logs.includes(secret)).toBe(false);
    expect(logs).not.toContain('FAKE-LOG-LINE\n');
  });
});

describe('signing-key rotation', () => {
  // Its own provider: the unknown-kid case above spends the at-most-every-10-s refetch.
  let fresh: MockHarness;
  beforeAll(async () => {
    fresh = await startMockHarness();
  });
  afterAll(async () => {
    await fresh?.close();
  });

  it('picks up a rotated signing key at once, without a restart', async () => {
    expect((await signInAtMock(fresh, fresh.app())).status).toBe(302);
    const jwksBefore = received(fresh, '/jwks').length;
    await fresh.mock.rotateSigningKey();
    expect((await signInAtMock(fresh, fresh.app())).status).toBe(302);
    expect(received(fresh, '/jwks').length).toBe(jwksBefore + 1);
    // And the cache is used again afterwards: no JWKS request per sign-in.
    expect((await signInAtMock(fresh, fresh.app())).status).toBe(302);
    expect(received(fresh, '/jwks').length).toBe(jwksBefore + 1);
  });
});

describe('a provider that cannot be discovered', () => {
  let down: MockHarness;
  beforeAll(async () => {
    down = await startMockHarness();
  });
  afterAll(async () => {
    await down?.close();
  });

  it('answers /login with 503 while discovery fails, and recovers without a restart', async () => {
    down.mock.behaviour.discovery = 'down';
    const res = await down.app().get('/login').expect(503);
    expect(res.text).toContain('The sign-in provider is unreachable');
    await down.app().get('/').expect(200);
    expect((await down.app().get('/readyz').expect(200)).body.provider).toBe('unreachable');
    down.mock.behaviour.discovery = 'ok';
    let status = 503;
    for (let i = 0; i < 30 && status !== 302; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await down.app().get('/login')).status;
    }
    expect(status).toBe(302);
    expect((await down.app().get('/readyz')).body.provider).toBe('ready');
  });

  it('never sends anyone to a provider whose metadata names another issuer', async () => {
    const mismatch = await startMockHarness();
    try {
      mismatch.mock.behaviour.metadata = { issuer: 'https://evil.example' };
      const res = await mismatch.app().get('/login').expect(502);
      expect(res.text).toContain('The sign-in provider is not the one configured');
      expect(res.headers.location).toBeUndefined();
      expect(mismatch.logs.text()).toContain('provider discovery failed');
    } finally {
      await mismatch.close();
    }
  });
});

describe('hostile browsers', () => {
  it.each(['/logout', '/refresh'])(
    'refuses POST %s without the CSRF token, from another origin, and keeps the session',
    async (path) => {
      const app = h.app();
      await signInAtMock(h, app);
      await app.post(path).set('Origin', 'https://evil.example').type('form').send({}).expect(403);
      await app.get('/me').set('Accept', 'application/json').expect(200);
    },
  );

  it('sends no CORS permission to another origin', async () => {
    for (const method of ['get', 'options'] as const) {
      const res = await h.app()[method]('/me').set('Origin', 'https://evil.example');
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    }
  });

  it.each([
    ['TRACE /', 'trace', '/'],
    ['GET /.git/config', 'get', '/.git/config'],
    ['GET /.env', 'get', '/.env'],
  ] as const)('answers %s with 404 and no framework fingerprint', async (_name, method, path) => {
    const res = await h.app()[method](path);
    expect(res.status).toBe(404);
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('does not adopt a forged or unsigned session cookie', async () => {
    for (const cookie of ['codeflow.sid=forged', 'codeflow.sid=s%3Aforged.badsignature']) {
      await h.app().get('/me').set('Cookie', cookie).set('Accept', 'application/json').expect(401);
    }
  });
});

describe('rate limits', () => {
  let limited: MockHarness;
  beforeAll(async () => {
    limited = await startMockHarness({ RATE_LIMIT_PER_MINUTE: '5' });
  });
  afterAll(async () => {
    await limited?.close();
  });

  it('answers the sixth /login in a minute from one address with a 429 page, and serves other pages', async () => {
    for (let i = 0; i < 5; i++) await limited.app().get('/login').expect(302);
    const res = await limited.app().get('/login').expect(429);
    expect(res.text).toContain('Too many sign-in attempts');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    await limited.app().get('/').expect(200);
    for (let i = 0; i < 5; i++) await limited.app().get('/callback?state=x&code=y').expect(400);
    await limited.app().get('/callback?state=x&code=y').expect(429);
  });

  it('warns once when forwarded headers arrive without TRUST_PROXY', async () => {
    await limited.app().get('/').set('X-Forwarded-For', '203.0.113.7');
    await limited.app().get('/').set('X-Forwarded-For', '203.0.113.8');
    const warnings = limited.logs.lines.filter((l) => l.includes('TRUST_PROXY is not set'));
    expect(warnings).toHaveLength(1);
  });
});
