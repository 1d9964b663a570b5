import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  SignJWT,
  calculateJwkThumbprint,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JWK,
} from 'jose';
import type { CustomFetch } from 'openid-client';
import type supertest from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_SERVICE_CLIENT } from '../../src/dev-provider/dev-provider.js';
import type { StoredTokens } from '../../src/auth/tokens.js';
import { createSealer } from '../../src/tokens/seal.js';
import {
  TEST_SESSION_SECRET,
  sessionIdOf,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { received, startMockHarness, type MockHarness } from '../helpers/mock-harness.js';
import { redisAvailable, startRedis, startTwoInstances, type TestRedis } from '../helpers/redis.js';
import {
  START_TIMEOUT_MS,
  freePort,
  logLines,
  spawnServer,
  within,
  type ServerProcess,
} from '../helpers/server-process.js';
import { signIn } from '../helpers/sign-in.js';

/**
 * DPoP (RFC 9449, OIDC_DPOP=on): each session signs in with a key pair of its own, and the
 * provider binds the session's access token to that key. Against the embedded oidc-provider (which
 * then requires proofs of codeflow's client) and its demo API, this file proves: the code
 * exchange, refresh, every API call and revocation carry a proof from the session's key; a stolen
 * access token is refused without the key; nonce challenges are answered with one retry, never a
 * loop; the key stays sealed at rest, goes with the session, and serves every instance on one
 * Redis; and a provider that cannot do DPoP is named at start.
 *
 * No assertion prints a token: tokens are compared as booleans, keys by their thumbprints.
 */

type Agent = ReturnType<typeof supertest.agent>;
interface Closable {
  close(): Promise<void>;
}

const open: Closable[] = [];
const processes: ServerProcess[] = [];
afterAll(async () => {
  for (const child of processes) await child.kill();
  for (const h of open.reverse()) await h.close();
});
function keep<T extends Closable>(h: T): T {
  open.push(h);
  return h;
}

const DPOP_ON = { OIDC_DPOP: 'on' };

/** What the dashboard shows about the session's key: its RFC 7638 thumbprint. */
function thumbprintOf(html: string): string {
  const thumbprint = /<code id="dpop-thumbprint">([^<]+)<\/code>/.exec(html)?.[1];
  if (!thumbprint) throw new Error('the dashboard shows no DPoP thumbprint');
  return thumbprint;
}

function unescapeHtml(value: string): string {
  return value
    .replace(/&#34;|&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** The API's answer as the dashboard shows it: its status, and its JSON. */
function apiAnswerOf(html: string): { status: number; body: Record<string, unknown> } {
  const status = /answered <span class="status [a-z]+">(\d+)<\/span>/.exec(html)?.[1];
  const json = /<pre class="json">([\s\S]*?)<\/pre>/.exec(html)?.[1];
  if (!status || json === undefined) throw new Error('the dashboard shows no API answer');
  return {
    status: Number(status),
    body: JSON.parse(unescapeHtml(json)) as Record<string, unknown>,
  };
}

const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)![1]!;

/** The session cookie this agent sends (`codeflow.sid=...`). */
async function cookieOf(app: Agent): Promise<string> {
  return (await app.get('/me').set('Accept', 'application/json').expect(200)).request
    .cookies as string;
}

/** The token endpoint's JSON answer, as the embedded provider recorded it. */
type TokenAnswer = { access_token?: string; token_type?: string; error?: string };
const answerOf = (r: Harness['providerRequests'][number]) => (r.body ?? {}) as TokenAnswer;

/** The `jkt` the provider's own store holds for an access token it issued. */
async function jktAtProvider(h: Harness, accessToken: string): Promise<string | undefined> {
  const token = await h.runtime.devProvider!.provider.AccessToken.find(accessToken);
  if (!token) throw new Error('the provider does not know that access token');
  return token.jkt;
}

/** A signed-in session and what its dashboard said. */
async function signedIn(h: Harness, account?: { login: string; password: string }) {
  const app = h.app();
  const before = h.providerRequests.length;
  const { response } = await signIn(h, app, account ? { account } : {});
  expect(response.status).toBe(302);
  expect(response.headers.location).toBe('/dashboard');
  const exchange = h.providerRequests
    .slice(before)
    .filter((r) => r.route === 'token' && r.params.grant_type === 'authorization_code');
  const page = await app.get('/dashboard').expect(200);
  return { app, exchange, page: page.text, thumbprint: thumbprintOf(page.text) };
}

/** An ES256 key pair that is not codeflow's (an attacker's, or a test client's). */
async function newKey(): Promise<{ privateKey: CryptoKey; jwk: JWK; thumbprint: string }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, thumbprint: await calculateJwkThumbprint(jwk) };
}

/** A well-formed DPoP proof (RFC 9449 §4.2), for `accessToken` when given (`ath`). */
function proof(
  key: { privateKey: CryptoKey; jwk: JWK },
  method: string,
  url: URL,
  accessToken?: string,
): Promise<string> {
  return new SignJWT({
    htm: method,
    htu: url.origin + url.pathname,
    jti: randomUUID(),
    ...(accessToken && { ath: createHash('sha256').update(accessToken).digest('base64url') }),
  })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

/** The `error` of a WWW-Authenticate challenge. */
const challengeError = (header: string | null | undefined) =>
  /error="([^"]+)"/.exec(header ?? '')?.[1];

describe('DPoP against the embedded provider (OIDC_DPOP=on)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = keep(await startHarness(DPOP_ON));
  });

  it('binds the access token at sign-in to the key whose thumbprint the dashboard shows, and the API sees the same binding', async () => {
    const { exchange, page, thumbprint } = await signedIn(h);

    // One code exchange, with a proof, answered with a DPoP-bound token.
    expect(exchange).toHaveLength(1);
    const [tokenRequest] = exchange;
    expect(tokenRequest!.status).toBe(200);
    expect(tokenRequest!.dpop).toBeDefined();
    const header = decodeProtectedHeader(tokenRequest!.dpop!);
    expect(header.typ).toBe('dpop+jwt');
    expect(header.alg).toBe('ES256');
    expect(await calculateJwkThumbprint(header.jwk!)).toBe(thumbprint);
    const issued = answerOf(tokenRequest!);
    expect(issued.token_type).toBe('DPoP');

    // The provider's record of the token names the session's key.
    expect(await jktAtProvider(h, issued.access_token!)).toBe(thumbprint);
    expect(page).toMatch(/id="dpop-binding">yes: token type <code>DPoP<\/code>/);

    // The API accepted the session's proof, and says which key the token is bound to.
    const api = apiAnswerOf(page);
    expect(api.status).toBe(200);
    expect(api.body.sub).toBe('alice');
    expect(api.body.boundTo).toBe(thumbprint);
  });

  it('refuses the stolen access token as Bearer, as DPoP without a proof, and with a proof from another key; a proof built the same way for a token bound to its key is accepted', async () => {
    const { app, exchange, thumbprint } = await signedIn(h);
    const stolen = answerOf(exchange[0]!).access_token!;
    const apiUrl = h.runtime.devProvider!.apiUrl;
    const api = (headers: Record<string, string>) => fetch(apiUrl, { headers });

    // As a bearer token: what a thief who copied it from a log or a store would send.
    const asBearer = await api({ authorization: `Bearer ${stolen}` });
    expect(asBearer.status).toBe(401);
    expect(challengeError(asBearer.headers.get('www-authenticate'))).toBe('invalid_token');

    // With the DPoP scheme but no proof.
    const noProof = await api({ authorization: `DPoP ${stolen}` });
    expect(noProof.status).toBe(401);
    expect(challengeError(noProof.headers.get('www-authenticate'))).toBe('invalid_dpop_proof');

    // With a well-formed, fresh proof for this request and this token, signed by another key.
    const attacker = await newKey();
    expect(attacker.thumbprint).not.toBe(thumbprint);
    const forged = await api({
      authorization: `DPoP ${stolen}`,
      dpop: await proof(attacker, 'GET', apiUrl, stolen),
    });
    expect(forged.status).toBe(401);
    const forgedChallenge = forged.headers.get('www-authenticate');
    expect(challengeError(forgedChallenge)).toBe('invalid_dpop_proof');
    expect(forgedChallenge).toContain('signed with a key the token is not bound to');

    // Positive control: the same proof builder, for a token bound to the builder's own key (the
    // demo service client's client_credentials grant, with a proof at the token endpoint).
    const oidc = await h.runtime.provider.getConfiguration();
    const tokenEndpoint = new URL(oidc.serverMetadata().token_endpoint!);
    const basic = Buffer.from(
      `${encodeURIComponent(DEMO_SERVICE_CLIENT.clientId)}:${encodeURIComponent(DEMO_SERVICE_CLIENT.clientSecret)}`,
    ).toString('base64');
    const granted = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
        dpop: await proof(attacker, 'POST', tokenEndpoint),
      },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        scope: DEMO_SERVICE_CLIENT.scope,
      }),
    });
    expect(granted.status).toBe(200);
    const own = (await granted.json()) as TokenAnswer;
    expect(own.token_type).toBe('DPoP');
    const accepted = await api({
      authorization: `DPoP ${own.access_token!}`,
      dpop: await proof(attacker, 'GET', apiUrl, own.access_token),
    });
    expect(accepted.status).toBe(200);
    expect(((await accepted.json()) as { boundTo?: string }).boundTo).toBe(attacker.thumbprint);

    // The stolen token was valid all along: its session, with the key, still gets the API.
    const still = apiAnswerOf((await app.get('/dashboard').expect(200)).text);
    expect(still.status).toBe(200);
    expect(still.body.boundTo).toBe(thumbprint);
  });

  it('keeps the binding across a refresh: the refresh carries a proof from the same key, and the new token is bound to it', async () => {
    const { app, page, exchange, thumbprint } = await signedIn(h);
    const first = answerOf(exchange[0]!).access_token!;
    const before = h.providerRequests.length;

    await app
      .post('/refresh')
      .type('form')
      .send({ _csrf: csrfOf(page) })
      .expect(303);

    const refreshes = h.providerRequests
      .slice(before)
      .filter((r) => r.route === 'token' && r.params.grant_type === 'refresh_token');
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]!.status).toBe(200);
    expect(refreshes[0]!.dpop).toBeDefined();
    expect(await calculateJwkThumbprint(decodeProtectedHeader(refreshes[0]!.dpop!).jwk!)).toBe(
      thumbprint,
    );
    const renewed = answerOf(refreshes[0]!);
    expect(renewed.token_type).toBe('DPoP');
    expect(renewed.access_token === first).toBe(false);
    expect(await jktAtProvider(h, renewed.access_token!)).toBe(thumbprint);

    const after = (await app.get('/dashboard').expect(200)).text;
    expect(after).toMatch(/id="refresh-count">1/);
    expect(thumbprintOf(after)).toBe(thumbprint);
    expect(apiAnswerOf(after).body.boundTo).toBe(thumbprint);
  });

  it('gives every session a key of its own: two sessions of one person, and another person, have three thumbprints', async () => {
    const alice1 = await signedIn(h);
    const alice2 = await signedIn(h);
    const bob = await signedIn(h, { login: 'bob', password: 'bob-password' });
    expect(apiAnswerOf(bob.page).body.sub).toBe('bob');
    const thumbprints = [alice1, alice2, bob].map((s) => s.thumbprint);
    expect(new Set(thumbprints).size).toBe(3);
    // And the provider bound each session's token to that session's key.
    for (const s of [alice1, alice2, bob])
      expect(await jktAtProvider(h, answerOf(s.exchange[0]!).access_token!)).toBe(s.thumbprint);
  });

  it('revokes at sign-out with a proof from the session key (its public half only)', async () => {
    const { app, page, thumbprint } = await signedIn(h);
    const before = h.providerRequests.length;
    await app
      .post('/logout')
      .type('form')
      .send({ _csrf: csrfOf(page) })
      .expect(200);

    // Revocation runs in the background: wait for it, at most 10 s.
    const revocation = () => h.providerRequests.slice(before).find((r) => r.route === 'revocation');
    for (let i = 0; i < 200 && !revocation(); i++) await sleep(50);
    const request = revocation();
    expect(request, 'no revocation request within 10 s').toBeDefined();
    expect(request!.status).toBe(200);
    expect(request!.params.token_type_hint).toBe('refresh_token');
    expect(request!.dpop).toBeDefined();
    const header = decodeProtectedHeader(request!.dpop!);
    expect(header.typ).toBe('dpop+jwt');
    expect(header.alg).toBe('ES256');
    expect(header.jwk).not.toHaveProperty('d');
    expect(await calculateJwkThumbprint(header.jwk!)).toBe(thumbprint);
    const claims = decodeJwt(request!.dpop!);
    expect(claims.htm).toBe('POST');
    const oidc = await h.runtime.provider.getConfiguration();
    expect(claims.htu).toBe(oidc.serverMetadata().revocation_endpoint);
  });
});

describe('DPoP nonces (the provider and the API demand them)', () => {
  /** What codeflow sent the demo API and how it answered (never the token). */
  interface ApiCall {
    status: number;
    withProof: boolean;
    challenge: string | undefined;
  }
  let h: Harness;
  const apiCalls: ApiCall[] = [];
  beforeAll(async () => {
    // The demo API is /api/me at the provider's origin (whose port is known only once it listens).
    const recording: CustomFetch = async (url, init) => {
      const response = await fetch(url, init);
      if (new URL(url).pathname === '/api/me') {
        apiCalls.push({
          status: response.status,
          withProof: new Headers(init.headers).has('dpop'),
          challenge: challengeError(response.headers.get('www-authenticate')),
        });
      }
      return response;
    };
    h = keep(await startHarness(DPOP_ON, { devProviderDpopNonce: true, providerFetch: recording }));
  });

  it('answers each nonce challenge with one retry, and remembers the API nonce for the next view', async () => {
    const app = h.app();
    const { response } = await signIn(h, app);
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('/dashboard');

    // The code exchange: refused once for want of a nonce, then accepted with it.
    const exchange = h.providerRequests.filter(
      (r) => r.route === 'token' && r.params.grant_type === 'authorization_code',
    );
    expect(exchange.map((r) => r.status)).toEqual([400, 200]);
    expect(answerOf(exchange[0]!).error).toBe('use_dpop_nonce');
    expect(decodeJwt(exchange[0]!.dpop!).nonce).toBeUndefined();
    expect(decodeJwt(exchange[1]!.dpop!).nonce).toEqual(expect.any(String));
    expect(answerOf(exchange[1]!).token_type).toBe('DPoP');

    // The first API call: one challenge, one retry, then the answer.
    const first = await app.get('/dashboard').expect(200);
    expect(apiAnswerOf(first.text).status).toBe(200);
    expect(apiAnswerOf(first.text).body.boundTo).toBe(thumbprintOf(first.text));
    expect(apiCalls).toEqual([
      { status: 401, withProof: true, challenge: 'use_dpop_nonce' },
      { status: 200, withProof: true, challenge: undefined },
    ]);

    // The next view sends the nonce it was given: one request.
    const second = await app.get('/dashboard').expect(200);
    expect(apiAnswerOf(second.text).status).toBe(200);
    expect(apiCalls.slice(2)).toEqual([{ status: 200, withProof: true, challenge: undefined }]);
  });
});

describe('DPoP against a provider that never accepts a nonce', () => {
  let h: MockHarness;
  beforeAll(async () => {
    h = keep(await startMockHarness(DPOP_ON, { dpopNonceAlways: true }));
  });

  it('fails the sign-in after exactly two token requests, with an error page, and keeps no session', async () => {
    const app = h.app();
    const login = await app.get('/login').expect(302);
    const authorize = await fetch(login.headers.location as string, { redirect: 'manual' });
    const callback = new URL(authorize.headers.get('location')!);
    const res = await app
      .get(callback.pathname + callback.search)
      .set('Accept', 'application/json');

    // One retry with the nonce it was sent, then an answer: never a loop.
    const tokenRequests = received(h, '/token');
    expect(tokenRequests).toHaveLength(2);
    expect(tokenRequests.every((r) => r.dpop !== undefined)).toBe(true);
    expect(decodeJwt(tokenRequests[0]!.dpop!).nonce).toBeUndefined();
    expect(decodeJwt(tokenRequests[1]!.dpop!).nonce).toEqual(expect.any(String));

    expect(res.status).toBe(502);
    expect(res.body.error).toBe('provider_error');
    expect(res.body.message).toBe('The provider refused to complete the sign-in.');
    // The operator's log line names the provider's own error.
    const logged = h.logs.parsed().filter((l) => l.kind === 'provider_error');
    expect(logged).toHaveLength(1);
    expect((logged[0]!.err as { error?: string }).error).toBe('use_dpop_nonce');

    // Not signed in, and no tokens kept for the browser's session.
    await app.get('/me').set('Accept', 'application/json').expect(401);
    const cookie = String(res.request.cookies);
    expect(await h.runtime.sessions.tokens.read(sessionIdOf(cookie))).toBeUndefined();
  });
});

describe('OIDC_DPOP=on against a provider that does not advertise DPoP', () => {
  let h: MockHarness;
  beforeAll(async () => {
    h = keep(
      await startMockHarness(DPOP_ON, {
        metadata: { dpop_signing_alg_values_supported: undefined },
      }),
    );
  });

  it('shows the failing provider check in /readyz, naming DPoP', async () => {
    await h.app().get('/login'); // discovers
    const ready = (await h.app().get('/readyz').expect(200)).body;
    expect(ready.providerCheck.verdict).toBe('fail');
    const gaps = (ready.providerCheck.gaps as string[]).filter((g) => g.startsWith('DPoP:'));
    expect(gaps).toHaveLength(1);
    expect(gaps[0]).toContain('does not advertise DPoP');
  });

  it('refuses to start the server (exit 1), in one line naming OIDC_DPOP', async () => {
    const app = spawnServer({
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      OIDC_ISSUER: h.mock.issuer,
      OIDC_CLIENT_ID: h.mock.clientId,
      OIDC_CLIENT_SECRET: h.mock.clientSecret,
      APP_BASE_URL: 'http://127.0.0.1:3999',
      OIDC_DPOP: 'on',
    });
    processes.push(app);
    const exit = await within(app.exited, START_TIMEOUT_MS, 'the refused start to exit');
    expect(exit.code).toBe(1);
    const fatal = logLines(app).filter((l) => l.level === 60);
    expect(fatal).toHaveLength(1);
    expect(String(fatal[0]!.msg)).toMatch(/^codeflow cannot start: OIDC_DPOP: .*DPoP/);
  });
});

describe.runIf(redisAvailable())('DPoP keys in Redis', () => {
  it('keeps the private key sealed at rest, and deletes it at sign-out', async () => {
    const redis: TestRedis = await startRedis();
    keep({ close: () => redis.stop() });
    const h = keep(await startHarness({ ...DPOP_ON, REDIS_URL: redis.url }));
    const { app, page, thumbprint } = await signedIn(h);
    const sid = sessionIdOf(await cookieOf(app));

    // The record, as it sits in Redis, opened with the session secret: it holds the private key.
    const stored = await h.runtime.sessions.tokens.read(sid);
    expect(stored).toBeDefined();
    const opened = createSealer([TEST_SESSION_SECRET]).open(stored!.sealed) as
      { tokens: StoredTokens } | undefined;
    const key = opened?.tokens.dpopKey;
    expect(key?.kty).toBe('EC');
    expect(key?.d).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const { kty, crv, x, y } = key!;
    expect(await calculateJwkThumbprint({ kty, crv, x, y })).toBe(thumbprint);

    // ...and no key of Redis shows it, or any JWK, in the clear.
    const dump = await redis.dump();
    expect(Object.keys(dump)).toContain(`codeflow:tok:${sid}`);
    for (const value of Object.values(dump)) {
      expect(value.includes(key!.d!)).toBe(false);
      expect(value.includes('"kty"')).toBe(false);
    }

    await app
      .post('/logout')
      .type('form')
      .send({ _csrf: csrfOf(page) })
      .expect(200);
    const after = await redis.dump();
    expect(Object.keys(after)).not.toContain(`codeflow:tok:${sid}`);
    expect(await h.runtime.sessions.tokens.read(sid)).toBeUndefined();
    for (const value of Object.values(after)) expect(value.includes(key!.d!)).toBe(false);
  });

  it('serves a session signed in on one instance from another: it signs proofs with the stored key', async () => {
    const { a, b, close } = await startTwoInstances(DPOP_ON, DPOP_ON);
    keep({ close });
    expect(b.runtime.config.oidc.dpop).toBe(true);
    const onA = a.app();
    const before = a.providerRequests.length;
    const { response } = await signIn(a, onA);
    expect(response.status).toBe(302);
    const issued = a.providerRequests
      .slice(before)
      .find((r) => r.route === 'token' && r.params.grant_type === 'authorization_code')!;
    const jkt = await jktAtProvider(a, answerOf(issued).access_token!);
    expect(jkt).toEqual(expect.any(String));

    // B has never seen this session: its API call works only with a proof from the stored key.
    const onB = (
      await b
        .app()
        .get('/dashboard')
        .set('Cookie', await cookieOf(onA))
        .expect(200)
    ).text;
    const api = apiAnswerOf(onB);
    expect(api.status).toBe(200);
    expect(api.body.boundTo).toBe(jkt);
    expect(thumbprintOf(onB)).toBe(jkt);
    expect(thumbprintOf((await onA.get('/dashboard').expect(200)).text)).toBe(jkt);
  });

  it('refreshes once for a storm split across both instances, three times over, and every page is served with the one key', async () => {
    const { a, b, close } = await startTwoInstances(
      // 8 s tokens are refreshed 4 s after they are issued (half their lifetime): time enough for
      // a whole storm to be served by one refresh, even on a loaded machine.
      { ...DPOP_ON, DEV_ACCESS_TOKEN_TTL: '8' },
      DPOP_ON,
    );
    keep({ close });
    const onA = a.app();
    const { response } = await signIn(a, onA);
    expect(response.status).toBe(302);
    const cookie = await cookieOf(onA);
    const thumbprint = thumbprintOf((await onA.get('/dashboard').expect(200)).text);
    const refreshes = () =>
      a.providerRequests.filter(
        (r) => r.route === 'token' && r.params.grant_type === 'refresh_token',
      );
    for (let round = 0; round < 3; round++) {
      await sleep(4200); // the access token is due for a refresh
      const before = refreshes().length;
      // A slow token endpoint keeps the first refresh in flight while the other requests arrive.
      a.providerDelay.tokenMs = 300;
      const pages = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          (i % 2 ? a : b).app().get('/dashboard').set('Cookie', cookie),
        ),
      ).finally(() => (a.providerDelay.tokenMs = 0));
      expect(pages.map((p) => p.status)).toEqual(Array(30).fill(200));
      const grants = refreshes().slice(before);
      expect(grants).toHaveLength(1);
      expect(grants[0]!.status).toBe(200);
      expect(grants[0]!.dpop).toEqual(expect.any(String));
      const { jwk } = decodeProtectedHeader(grants[0]!.dpop!);
      expect(await calculateJwkThumbprint(jwk as JWK)).toBe(thumbprint);
      const token = answerOf(grants[0]!).access_token!;
      expect(await jktAtProvider(a, token)).toBe(thumbprint);
      for (const page of pages) expect(apiAnswerOf(page.text).body.boundTo).toBe(thumbprint);
    }
  });
});
