import { setTimeout as sleep } from 'node:timers/promises';
import type supertest from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, startSecondInstance, type Harness } from '../helpers/harness.js';
import {
  redisAvailable,
  startTwoInstances,
  type TestRedis,
  type TwoInstances,
} from '../helpers/redis.js';

/**
 * The per-address limit on starting sign-ins (RATE_LIMIT_PER_MINUTE, here 6): counted per
 * instance in process, and across every instance with Redis. Every request comes from 127.0.0.1.
 */
const LIMIT = '6';

/** A browser with no cookie starting a sign-in. */
const login = (h: Harness): Promise<supertest.Response> =>
  h.app().get('/login').set('Accept', 'application/json');

/** Asserts the answer is the rate limit's: 429, with a Retry-After of at most a minute. */
function expectLimited(res: supertest.Response): void {
  expect(res.status).toBe(429);
  expect(res.body.error).toBe('rate_limited');
  const retryAfter = Number(res.headers['retry-after']);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  // No transaction was started: no session cookie, no redirect to the provider.
  expect(res.headers.location).toBeUndefined();
  expect(res.headers['set-cookie']).toBeUndefined();
}

async function expectAllowed(h: Harness, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const res = await login(h);
    expect(res.status, `sign-in ${i + 1} of ${times}`).toBe(302);
    expect(res.headers.location).toMatch(/\/auth\?/);
  }
}

describe('the sign-in rate limit, in process', () => {
  let one: Harness;
  let other: Harness;
  beforeAll(async () => {
    one = await startHarness({ RATE_LIMIT_PER_MINUTE: LIMIT });
    // A second instance of the same app on the in-process store: its counts are its own.
    other = await startSecondInstance(one, { RATE_LIMIT_PER_MINUTE: LIMIT });
  });
  afterAll(async () => {
    await other?.close();
    await one?.close();
  });

  it('lets 6 sign-ins start in a minute from one address and answers the 7th with 429 and Retry-After', async () => {
    await expectAllowed(one, 6);
    expectLimited(await login(one));
    // Still limited: a refused request does not open the door again.
    expectLimited(await login(one));
  });

  it('counts each instance on its own when the counts are in process: each allows its own 6', async () => {
    expect(other.runtime.sessions.kind).toBe('memory');
    // `one` is used up by the test above; `other` has not counted any of those.
    expectLimited(await login(one));
    await expectAllowed(other, 6);
    expectLimited(await login(other));
  });
});

describe.runIf(redisAvailable())('the sign-in rate limit, two instances on one Redis', () => {
  let d: TwoInstances;
  let redis: TestRedis;
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    ({ redis, a, b } = d = await startTwoInstances(
      { RATE_LIMIT_PER_MINUTE: LIMIT },
      { RATE_LIMIT_PER_MINUTE: LIMIT },
    ));
  });
  afterAll(() => d?.close());

  it('holds across instances: 3 on A and 3 on B pass, the next on either is 429', async () => {
    expect(a.runtime.sessions.kind).toBe('redis');
    expect(b.runtime.sessions.kind).toBe('redis');
    await expectAllowed(a, 3);
    await expectAllowed(b, 3);
    expectLimited(await login(a));
    expectLimited(await login(b));
    // The count is in Redis, under codeflow's prefix.
    const counters = Object.entries(await redis.dump()).filter(([k]) =>
      k.startsWith('codeflow:rate:login:'),
    );
    expect(counters).toHaveLength(1);
    expect(Number(counters[0]![1])).toBeGreaterThanOrEqual(7);
  });

  it('lets sign-ins through to the session store while Redis is down (503, never 429 or 500), and counts again once it is back', async () => {
    // The limit is used up (previous test): were the limiter failing closed, these would be 429s.
    expectLimited(await login(a));
    await redis.stop();
    try {
      for (const h of [a, b, a, b, a, b, a, b]) {
        const res = await login(h);
        // The limiter cannot count and lets the request through; the session store then cannot
        // save the transaction and says so.
        expect(res.status).toBe(503);
        expect(res.body.error).toBe('store_unavailable');
        expect(res.headers['retry-after']).toBe('5');
      }
    } finally {
      await redis.start();
    }
    // The new Redis is empty: once both instances have reconnected (bounded poll), a fresh count
    // of 6 starts and holds across them again.
    for (const h of [a, b]) {
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        status = (await h.app().get('/readyz')).status;
        if (status !== 200) await sleep(100);
      }
      expect(status, 'instance ready again after Redis restarted').toBe(200);
    }
    await expectAllowed(b, 3);
    await expectAllowed(a, 3);
    expectLimited(await login(b));
    expectLimited(await login(a));
  });
});
