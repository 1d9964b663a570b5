import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from '../helpers/harness.js';
import {
  redisAvailable,
  startTwoInstances,
  type TestRedis,
  type TwoInstances,
} from '../helpers/redis.js';
import { authorizeAtProvider, startLogin } from '../helpers/sign-in.js';

/**
 * Two app instances behind one URL share one Redis, with no sticky sessions: what one instance
 * starts, the other finishes.
 */
describe.runIf(redisAvailable())('several instances on one Redis', () => {
  let d: TwoInstances;
  let redis: TestRedis;
  let a: Harness;
  let b: Harness;

  beforeAll(async () => {
    // Instance B talks to A's embedded provider as an ordinary external issuer.
    ({ redis, a, b } = d = await startTwoInstances(
      { DEV_ACCESS_TOKEN_TTL: '2', REFRESH_SKEW_SECONDS: '0' },
      { REFRESH_SKEW_SECONDS: '0' },
    ));
  });
  afterAll(() => d?.close());

  const refreshGrants = () =>
    a.providerRequests.filter(
      (r) => r.route === 'token' && r.params.grant_type === 'refresh_token',
    );

  /** Starts on A, finishes the callback on B; returns the session cookie both instances accept. */
  async function signInAcrossInstances(): Promise<string> {
    const onA = a.app();
    const authorizationUrl = await startLogin(onA);
    const preLogin = (await onA.get('/healthz')).request.cookies;
    const callback = await authorizeAtProvider(a, a.providerAgent(), authorizationUrl);
    const done = await b
      .app()
      .get(callback.pathname + callback.search)
      .set('Cookie', preLogin)
      .expect(302);
    expect(done.headers.location).toBe('/dashboard');
    return String(done.headers['set-cookie']).split(';')[0]!;
  }

  it('signs in on one instance and serves the session from the other', async () => {
    const cookie = await signInAcrossInstances();
    await a.app().get('/me').set('Cookie', cookie).set('Accept', 'application/json').expect(200);
    const page = await b.app().get('/dashboard').set('Cookie', cookie).expect(200);
    expect(page.text).toContain('Alice Liddell');
  });

  it('stores only codeflow keys, and no token in them: tokens are sealed at rest', async () => {
    await signInAcrossInstances();
    const dump = await redis.dump();
    const keys = Object.keys(dump);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys)
      expect(key).toMatch(
        /^codeflow:(sess|tok|ended|refresh-lock|who|person|psid|flow|rate:[a-z-]+):/,
      );
    // The session holds who the person is; the tokens are in their own record, sealed.
    const sessions = keys.filter((k) => k.startsWith('codeflow:sess:'));
    const records = keys.filter((k) => k.startsWith('codeflow:tok:'));
    expect(records.length).toBeGreaterThan(0);
    for (const key of sessions) expect(dump[key]).not.toMatch(/"tokens"|(access|refresh|id)Token/);
    const issued = a.providerRequests
      .filter((r) => r.route === 'token')
      .flatMap((r) =>
        // The tokens, not the scope list (which the flow panel's record shows, as it should).
        Object.entries(r.body as Record<string, unknown>)
          .filter(([name, v]) => name !== 'scope' && typeof v === 'string' && v.length > 20)
          .map(([, v]) => v),
      );
    expect(issued.length).toBeGreaterThan(2);
    const everything = Object.values(dump).join('\n');
    for (const token of issued) expect(everything.includes(token as string)).toBe(false);
  });

  it('makes one refresh for a storm of 40 requests split across both instances', async () => {
    const cookie = await signInAcrossInstances();
    await a.app().get('/dashboard').set('Cookie', cookie).expect(200);
    await sleep(2200); // the access token expires
    const before = refreshGrants().length;
    // A slow token endpoint keeps the first refresh in flight while the other instance's requests arrive.
    a.providerDelay.tokenMs = 300;
    const pages = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).app().get('/dashboard').set('Cookie', cookie),
      ),
    ).finally(() => (a.providerDelay.tokenMs = 0));
    expect(pages.map((p) => p.status)).toEqual(Array(40).fill(200));
    expect(refreshGrants().length - before).toBe(1);
    expect(refreshGrants().at(-1)!.status).toBe(200);
    await b.app().get('/dashboard').set('Cookie', cookie).expect(200);
  });

  it('answers 503 fast while Redis is down or frozen, keeps /healthz up, and recovers without a restart', async () => {
    const cookie = await signInAcrossInstances();
    redis.freeze();
    try {
      const started = Date.now();
      const res = await a.app().get('/dashboard').set('Cookie', cookie).expect(503);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(res.text).toContain('Sessions are unavailable for a moment');
      await a.app().get('/healthz').expect(200);
      await a.app().get('/readyz').expect(503);
    } finally {
      redis.thaw();
    }
    await a.app().get('/dashboard').set('Cookie', cookie).expect(200);

    await redis.stop();
    const down = await b.app().get('/login').expect(503);
    expect(down.headers['retry-after']).toBe('5');
    await b.app().get('/').expect(200);
    await redis.start();
    // The new Redis is empty: the old session is gone, but signing in works again, no restart.
    for (let i = 0; i < 40 && (await b.app().get('/readyz')).status !== 200; i++) await sleep(100);
    await b.app().get('/me').set('Cookie', cookie).set('Accept', 'application/json').expect(401);
    await signInAcrossInstances();
  });
});
