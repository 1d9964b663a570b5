import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.js';
import { memoryBackend, type MemoryBackend } from '../../src/session/memory-backend.js';
import { redisBackend } from '../../src/session/redis-backend.js';
import type { StoredTokens } from '../../src/auth/tokens.js';
import { createSealer } from '../../src/tokens/seal.js';
import { createTokenStore, type TokenRecord } from '../../src/tokens/token-store.js';
import {
  sessionIdOf,
  startHarness,
  TEST_SESSION_SECRET,
  type Harness,
} from '../helpers/harness.js';
import { startMockHarness, type MockHarness } from '../helpers/mock-harness.js';
import { redisAvailable, startRedis, type TestRedis } from '../helpers/redis.js';
import { signIn } from '../helpers/sign-in.js';

type Agent = ReturnType<Harness['app']>;

const csrfTokenOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];

const refreshGrants = (h: Harness) =>
  h.providerRequests.filter((r) => r.route === 'token' && r.params.grant_type === 'refresh_token');

/** The session id of this browser's cookie. */
async function sessionIdOfAgent(app: Agent): Promise<string> {
  return sessionIdOf((await app.get('/healthz').expect(200)).request.cookies);
}

async function signedIn(h: Harness): Promise<Agent> {
  const app = h.app();
  const { response } = await signIn(h, app);
  expect(response.status).toBe(302);
  return app;
}

describe('sign-out while the provider cannot revoke', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ HTTP_TIMEOUT_MS: '300' }, { revocationRetryDelaysMs: [50, 50, 50] });
  });
  afterAll(async () => {
    await h?.close();
  });
  afterEach(() => {
    h.providerFault.revocation = 'none';
  });

  const revocations = (from: number) =>
    h.providerRequests.slice(from).filter((r) => r.route === 'revocation');
  const logLines = (msg: string) => h.logs.parsed().filter((l) => l.msg === msg);

  /** Signs in, and answers the refresh token the provider issued and the page's CSRF token. */
  async function signedInWithTokens() {
    const app = await signedIn(h);
    const issued = h.providerRequests.filter((r) => r.route === 'token').at(-1)!.body as {
      refresh_token?: string;
    };
    expect(issued.refresh_token).toMatch(/.{20,}/);
    const page = await app.get('/dashboard').expect(200);
    return { app, refreshToken: issued.refresh_token!, csrf: csrfTokenOf(page.text)! };
  }

  it('signs out at once when revocation fails, retries three times in the background, then gives up and says so without the token', async () => {
    const { app, refreshToken, csrf } = await signedInWithTokens();
    h.providerFault.revocation = 'error';
    const before = h.providerRequests.length;
    const gaveUpBefore = h.runtime.revoker.stats().gaveUp;

    const started = performance.now();
    await app.post('/logout').type('form').send({ _csrf: csrf }).expect(200);
    expect(performance.now() - started).toBeLessThan(1000);
    await app.get('/me').set('Accept', 'application/json').expect(401);

    await h.runtime.revoker.settle(5000);
    expect(h.runtime.revoker.stats().pending).toBe(0);
    expect(revocations(before).map((r) => r.status)).toEqual([500, 500, 500, 500]);
    expect(h.runtime.revoker.stats().gaveUp).toBe(gaveUpBefore + 1);
    const text = h.logs.text();
    expect(text).toContain('token revocation given up');
    expect(text).toContain('"tokenKind":"refresh_token"');
    expect(text).not.toContain(refreshToken);
  });

  it('signs out at once when the revocation endpoint hangs, and gives up after four timed-out attempts', async () => {
    const { app, refreshToken, csrf } = await signedInWithTokens();
    h.providerFault.revocation = 'hang';
    const stats = h.runtime.revoker.stats();
    const failedLogsBefore = logLines('token revocation failed').length;

    const started = performance.now();
    await app.post('/logout').type('form').send({ _csrf: csrf }).expect(200);
    expect(performance.now() - started).toBeLessThan(1000);
    await app.get('/me').set('Accept', 'application/json').expect(401);

    await h.runtime.revoker.settle(5000);
    // Four attempts, each abandoned at the client's 300 ms timeout, with 50 ms between them.
    expect(performance.now() - started).toBeGreaterThanOrEqual(4 * 300);
    const after = h.runtime.revoker.stats();
    expect(after.pending).toBe(0);
    expect(after.failedAttempts - stats.failedAttempts).toBe(4);
    expect(after.gaveUp - stats.gaveUp).toBe(1);
    expect(after.revoked).toBe(stats.revoked);
    const failed = logLines('token revocation failed').slice(failedLogsBefore);
    expect(failed.map((l) => l.attempt)).toEqual([1, 2, 3, 4]);

    // Nothing more is tried once it has given up.
    await sleep(500);
    expect(h.runtime.revoker.stats()).toEqual(after);
    expect(logLines('token revocation failed').length - failedLogsBefore).toBe(4);
    expect(h.logs.text()).not.toContain(refreshToken);
  });
});

describe('a token that lives 10 s against the default 60 s refresh skew', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ DEV_ACCESS_TOKEN_TTL: '10' });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is not refreshed on every request: 20 dashboard views over 2 s make at most one refresh', async () => {
    const app = await signedIn(h);
    const before = refreshGrants(h).length;
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      statuses.push((await app.get('/dashboard')).status);
      await sleep(100);
    }
    expect(statuses).toEqual(Array(20).fill(200));
    expect(refreshGrants(h).length - before).toBeLessThanOrEqual(1);
  });
});

describe('the absolute session lifetime', () => {
  let h: Harness;
  let clock = 0;
  beforeAll(async () => {
    clock = Math.floor(Date.now() / 1000);
    h = await startHarness({ SESSION_MAX_AGE_SECONDS: '3600' }, { now: () => clock });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('ends the session on the home page too, deletes it and its tokens, and revokes them', async () => {
    clock = Math.floor(Date.now() / 1000);
    const app = await signedIn(h);
    const sid = await sessionIdOfAgent(app);
    const home = await app.get('/').expect(200);
    expect(home.text).toContain('Signed in as');
    expect(await h.runtime.sessions.getSession(sid)).toBeDefined();
    expect(await h.runtime.sessions.tokens.read(sid)).toBeDefined();
    const before = h.providerRequests.length;

    clock += 3601;
    const after = await app.get('/').expect(200);
    expect(after.text).not.toContain('Signed in as');
    expect(after.text).toContain('<a class="button" href="/login">Sign in</a>');
    // The page view that ended it stores no new session and sends no cookie.
    expect(after.headers['set-cookie']).toBeUndefined();
    expect((h.runtime.sessions as MemoryBackend).bytesStored()).toBe(0);
    await app.get('/me').set('Accept', 'application/json').expect(401);
    expect(await h.runtime.sessions.getSession(sid)).toBeUndefined();
    expect(await h.runtime.sessions.tokens.read(sid)).toBeUndefined();
    // Signing in again from the same browser starts a new session.
    const login = await app.get('/login').expect(302);
    expect(String(login.headers['set-cookie'])).toMatch(/^codeflow\.sid=s%3A/);

    await h.runtime.revoker.settle(5000);
    const revocation = h.providerRequests.slice(before).find((r) => r.route === 'revocation');
    expect(revocation?.status).toBe(200);
    expect(revocation?.params.token_type_hint).toBe('refresh_token');
  });
});

describe('HEAD /login', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('stores nothing and sets no cookie, while GET /login does', async () => {
    const sessions = h.runtime.sessions as MemoryBackend;
    const bytes = sessions.bytesStored();
    const head = await h.app().head('/login').expect(405);
    expect(head.headers.allow).toBe('GET');
    expect(head.headers['set-cookie']).toBeUndefined();
    expect(sessions.bytesStored()).toBe(bytes);

    const get = await h.app().get('/login').expect(302);
    expect(String(get.headers['set-cookie'])).toMatch(/^codeflow\.sid=/);
    expect(sessions.bytesStored()).toBeGreaterThan(bytes);
  });
});

describe('a store error while re-reading the tokens under the refresh lock', () => {
  let h: Harness;
  /** The next `pass` token reads succeed, the `fail` after them reject; the next `failWrites` writes reject. */
  const fault = { pass: 0, fail: 0, failWrites: 0 };
  beforeAll(async () => {
    const inner = memoryBackend();
    const sessions: MemoryBackend = {
      ...inner,
      tokens: {
        async read(sid) {
          if (fault.pass > 0) fault.pass -= 1;
          else if (fault.fail > 0) {
            fault.fail -= 1;
            throw new Error('store down');
          }
          return inner.tokens.read(sid);
        },
        async write(...args) {
          if (fault.failWrites > 0) {
            fault.failWrites -= 1;
            throw new Error('store down');
          }
          return inner.tokens.write(...args);
        },
      },
    };
    h = await startHarness({ DEV_ACCESS_TOKEN_TTL: '2', REFRESH_SKEW_SECONDS: '0' }, { sessions });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answers 503 with Retry-After, makes no refresh, and keeps the person signed in', async () => {
    const app = await signedIn(h);
    await app.get('/dashboard').expect(200);
    await sleep(2200); // the access token expires
    const before = refreshGrants(h).length;

    // The dashboard's first read (is the token fresh?) succeeds; the re-read under the lock fails.
    fault.pass = 1;
    fault.fail = 1;
    const res = await app.get('/dashboard').expect(503);
    expect(fault).toEqual({ pass: 0, fail: 0, failWrites: 0 });
    expect(res.headers['retry-after']).toBe('5');
    expect(res.text).toContain('Sessions are unavailable for a moment');
    expect(refreshGrants(h).length).toBe(before);

    const again = await app.get('/dashboard').expect(200);
    expect(again.text).toContain('<dd id="refresh-count">1 <span class="muted">(last at');
    expect(refreshGrants(h).length).toBe(before + 1);
    await app.get('/me').set('Accept', 'application/json').expect(200);
  });

  it('keeps the tokens of a refresh whose write the store refused, once the store is back', async () => {
    const app = await signedIn(h);
    await app.get('/dashboard').expect(200);
    await sleep(2200); // the access token expires
    const before = refreshGrants(h).length;
    const tokenErrors = () =>
      h.providerRequests.filter((r) => r.route === 'token' && r.status !== 200).length;
    const errorsBefore = tokenErrors();

    // The provider rotates the refresh token; the store refuses the new record, and the first
    // retry in the background too.
    fault.failWrites = 2;
    const res = await app.get('/dashboard').expect(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(refreshGrants(h).length).toBe(before + 1);
    // Retries every 250 ms: polled (bounded), not slept, so a loaded machine does not fail it.
    await vi.waitFor(() => expect(fault.failWrites).toBe(0), { timeout: 5000, interval: 50 });

    // The record landed: the next page uses the new tokens, with no second refresh, and the old
    // (spent) refresh token was never offered again, so the provider revoked nothing.
    await app.get('/dashboard').expect(200);
    expect(refreshGrants(h).length).toBe(before + 1);
    expect(tokenErrors()).toBe(errorsBefore);
    expect(h.logs.text()).toContain(
      '"outcome":"written","msg":"the store took the refreshed tokens after a failure"',
    );
  });
});

describe.runIf(redisAvailable())('Redis faults', () => {
  let redis: TestRedis;
  let h: Harness;
  beforeAll(async () => {
    redis = await startRedis();
    h = await startHarness({
      REDIS_URL: redis.url,
      DEV_ACCESS_TOKEN_TTL: '2',
      REFRESH_SKEW_SECONDS: '0',
    });
  });
  afterAll(async () => {
    await h?.close();
    await redis?.stop();
  });

  it('keeps an anonymous sign-in attempt for the 10 minutes its transaction lives, no longer', async () => {
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      const sessionKeys = async () => new Set(await client.keys('codeflow:sess:*'));
      const before = await sessionKeys();
      await h.app().get('/login').expect(302);
      const added = [...(await sessionKeys())].filter((k) => !before.has(k));
      expect(added).toHaveLength(1);
      const ttl = await client.pTTL(added[0]!);
      expect(ttl).toBeLessThanOrEqual(600_000);
      expect(ttl).toBeGreaterThan(590_000);
    } finally {
      await client.close();
    }
  });

  it('answers 503 within the store deadline when Redis stalls during a refresh under the lock', async () => {
    const app = await signedIn(h);
    await sleep(2200); // the access token expires
    h.providerDelay.tokenMs = 300;
    try {
      const response = app.get('/dashboard').then((res) => ({ res, at: performance.now() }));
      // The refresh is now waiting on the provider, holding the lock; it writes about 50 ms after
      // the freeze, and that write must give up within the 2 s store deadline.
      await sleep(250);
      redis.freeze();
      const frozenAt = performance.now();
      const { res, at } = await response;
      expect(res.status).toBe(503);
      expect(res.text).toContain('Sessions are unavailable for a moment');
      expect(at - frozenAt).toBeLessThan(2500);
    } finally {
      redis.thaw();
      h.providerDelay.tokenMs = 0;
    }
  });

  describe('two instances refreshing one session', () => {
    const logger = createLogger('silent');
    const sealer = createSealer([TEST_SESSION_SECRET]);
    const backends: Array<ReturnType<typeof redisBackend>> = [];
    afterAll(async () => {
      await Promise.all(backends.map((b) => b.close()));
    });

    async function instance() {
      const backend = redisBackend(redis.url, logger);
      backends.push(backend);
      // The client connects in the background; commands fail until it is ready (≤ 5 s).
      for (let i = 0; i < 100; i++) {
        if (
          await backend.ping().then(
            () => true,
            () => false,
          )
        )
          break;
        await sleep(50);
      }
      await backend.ping();
      return createTokenStore(backend.tokens, sealer);
    }

    const tokens = (accessToken: string): StoredTokens => ({
      accessToken,
      tokenType: 'bearer',
      refreshToken: `refresh-${accessToken}`,
      issuedAt: 1_700_000_000,
      expiresAt: 1_700_000_060,
    });
    const next = (read: TokenRecord, accessToken: string): TokenRecord => ({
      version: read.version + 1,
      tokens: tokens(accessToken),
      refreshes: { count: read.refreshes.count + 1 },
    });

    it('keeps the newer tokens when the older refresh finishes last', async () => {
      const a = await instance();
      const b = await instance();
      const sid = 'two-instances-older-last';
      const first = { version: 1, tokens: tokens('at-1'), refreshes: { count: 0 } };
      expect(await a.write(sid, first, 60_000)).toBe('written');

      const readByA = (await a.read(sid))!;
      const readByB = (await b.read(sid))!;
      expect([readByA.version, readByB.version]).toEqual([1, 1]);
      expect(await b.write(sid, next(readByB, 'at-from-b'), 60_000)).toBe('written');
      expect(await a.write(sid, next(readByA, 'at-from-a'), 60_000)).toBe('conflict');
      const stored = await a.read(sid);
      expect(stored?.version).toBe(2);
      expect(stored?.tokens.accessToken).toBe('at-from-b');
      expect((await b.read(sid))?.tokens.accessToken).toBe('at-from-b');
    });

    it('lets exactly one of two concurrent writes win, round after round', async () => {
      const [a, b] = [await instance(), await instance()];
      const sid = 'two-instances-race';
      const rounds = 50;
      expect(
        await a.write(sid, { version: 1, tokens: tokens('at-0'), refreshes: { count: 0 } }, 60_000),
      ).toBe('written');
      const wins = { a: 0, b: 0 };
      let winner = '';
      for (let round = 1; round <= rounds; round++) {
        const [readByA, readByB] = await Promise.all([a.read(sid), b.read(sid)]);
        expect(readByA!.version).toBe(round);
        expect(readByB!.version).toBe(round);
        const outcomes = await Promise.all([
          a.write(sid, next(readByA!, `a-${round}`), 60_000),
          b.write(sid, next(readByB!, `b-${round}`), 60_000),
        ]);
        expect([...outcomes].sort()).toEqual(['conflict', 'written']);
        winner = outcomes[0] === 'written' ? `a-${round}` : `b-${round}`;
        wins[outcomes[0] === 'written' ? 'a' : 'b'] += 1;
      }
      const stored = await b.read(sid);
      expect(stored?.version).toBe(1 + rounds);
      expect(stored?.refreshes.count).toBe(rounds);
      expect(stored?.tokens.accessToken).toBe(winner);
      expect(wins.a + wins.b).toBe(rounds);
    });
  });
});

describe('production on the in-process store', () => {
  let prod: MockHarness;
  let dev: MockHarness;
  beforeAll(async () => {
    [prod, dev] = await Promise.all([
      startMockHarness({ NODE_ENV: 'production' }),
      startMockHarness(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([prod?.close(), dev?.close()]);
  });

  it('says at start and in /readyz that sessions live in one process only', async () => {
    const ready = await prod.app().get('/readyz').expect(200);
    expect(ready.body).toMatchObject({ sessionBackend: 'memory' });
    expect(ready.body.warning).toMatch(/this process only.*REDIS_URL/);
    expect(prod.logs.text()).toContain('sessions live in this process only');
    // Development on the same store: nothing to warn about.
    const devReady = await dev.app().get('/readyz').expect(200);
    expect(devReady.body.warning).toBeUndefined();
    expect(dev.logs.text()).not.toContain('sessions live in this process only');
  });
});
