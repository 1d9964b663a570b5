import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionIdOf, startHarness, type Harness } from '../helpers/harness.js';
import {
  redisAvailable,
  startTwoInstances,
  type TestRedis,
  type TwoInstances,
} from '../helpers/redis.js';
import { authorizeAtProvider, startLogin } from '../helpers/sign-in.js';

/**
 * Back-Channel Logout 1.0 end to end, against the embedded oidc-provider: the person signs out AT
 * THE PROVIDER (its own end-session page, no codeflow involved), the provider posts a logout token
 * to codeflow's backchannel_logout_uri, and every codeflow session of that provider session ends.
 * The refusals of bad logout tokens are in backchannel-logout.test.ts, against the mock provider.
 */

type Agent = ReturnType<Harness['app']>;

/**
 * Signs alice in through instance `via` with the given provider cookie jar; the dashboard works.
 * `home` is the instance whose public URL the provider redirects back to (A's, for B too).
 */
async function signedIn(
  via: Harness,
  provider: Agent,
  home: Harness = via,
): Promise<{ app: Agent; cookie: string }> {
  const app = via.app();
  const callback = await authorizeAtProvider(home, provider, await startLogin(app));
  const response = await app.get(callback.pathname + callback.search);
  expect(response.status).toBe(302);
  expect(response.headers.location).toBe('/dashboard');
  const page = await app.get('/dashboard').expect(200);
  expect(page.text).toContain('Alice Liddell');
  return { app, cookie: page.request.cookies };
}

/**
 * The person signs out at the provider: GET /session/end shows its confirmation form (with the
 * hidden `xsrf` field), and "Yes, sign me out" posts it. No id_token_hint, no client_id: this is
 * the provider's own sign-out, as from another app or the provider's account page.
 */
async function signOutAtProvider(h: Harness, provider: Agent): Promise<void> {
  const page = await provider.get('/session/end').expect(200);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.text)?.[1];
  const action = /<form[^>]+action="([^"]+)"/.exec(page.text)?.[1];
  expect(xsrf, 'the confirmation form has its xsrf field').toBeTruthy();
  expect(action, 'the confirmation form has an action').toBeTruthy();
  const done = await provider
    .post(new URL(action!, h.runtime.devProvider!.issuer).pathname)
    .type('form')
    .send({ xsrf, logout: 'yes' });
  expect(done.status).toBe(303);
  expect(
    h.providerRequests.some((r) => r.route === 'end_session_confirm' && r.status === 303),
  ).toBe(true);
}

/** `GET /dashboard` on `h` with `cookie`: 200 signed in, or 302 to /login signed out. */
async function dashboardStatus(h: Harness, cookie: string): Promise<number> {
  const res = await h.app().get('/dashboard').set('Cookie', cookie);
  if (res.status === 302) expect(res.headers.location).toMatch(/^\/login/);
  return res.status;
}

/** Polls (every 50 ms, at most 5 s) until the dashboard redirects to /login. */
async function expectSignedOutSoon(h: Harness, cookie: string): Promise<void> {
  let status = 0;
  for (let i = 0; i < 100; i++) {
    status = await dashboardStatus(h, cookie);
    if (status === 302) return;
    await sleep(50);
  }
  expect(status, 'the dashboard still answers 5 s after the provider session ended').toBe(302);
}

/** The app's 'back-channel logout' log lines (each says how many sessions it ended). */
const backchannelLogs = (h: Harness) =>
  h.logs.parsed().filter((line) => line.msg === 'back-channel logout');

/** A sample of the Prometheus text exposition, e.g. `codeflow_sign_outs_total{kind="back_channel"}`. */
async function sample(h: Harness, series: string): Promise<number | undefined> {
  const text = (await h.app().get('/metrics').expect(200)).text;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('back-channel logout from the embedded provider, one instance', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('signs the person out of the codeflow session of the provider session that ended, and only that one', async () => {
    const provider = h.providerAgent();
    const ended = await signedIn(h, provider);
    const endedTokens = h.providerRequests.filter((r) => r.route === 'token').at(-1)!
      .body as Record<string, string>;
    // The same person in another browser: another provider session, another `sid`.
    const other = await signedIn(h, h.providerAgent());
    expect(sessionIdOf(other.cookie)).not.toBe(sessionIdOf(ended.cookie));
    expect(await sample(h, 'codeflow_sign_outs_total{kind="back_channel"}')).toBe(0);

    await signOutAtProvider(h, provider);
    await expectSignedOutSoon(h, ended.cookie);

    // The provider really sent a logout token, and codeflow ended exactly one session with it.
    expect(h.logs.text()).toContain('dev provider: back-channel logout sent');
    expect(backchannelLogs(h)).toEqual([expect.objectContaining({ ended: 1, by: 'sid' })]);
    expect(await sample(h, 'codeflow_sign_outs_total{kind="back_channel"}')).toBe(1);
    expect(await sample(h, 'codeflow_backchannel_logouts_total{outcome="accepted"}')).toBe(1);
    // The signed-out browser's own agent is signed out as well (not just a replayed cookie).
    await ended.app.get('/dashboard').expect(302);
    // The ended session's refresh token was revoked, and no other.
    await h.runtime.revoker.settle(10_000);
    const revocations = h.providerRequests.filter((r) => r.route === 'revocation');
    expect(revocations.map((r) => [r.status, r.params.token])).toEqual([
      [200, endedTokens.refresh_token],
    ]);

    // The other provider session did not end, so neither did its codeflow session.
    await other.app.get('/dashboard').expect(200);
    await h
      .app()
      .get('/me')
      .set('Cookie', other.cookie)
      .set('Accept', 'application/json')
      .expect(200);
  });
});

/**
 * Two instances behind one URL, on one Redis. The provider posts the logout token to the public
 * URL, which here reaches instance A only; the codeflow session signed in through B ends too,
 * because the index and the tombstones are in Redis.
 */
describe.runIf(redisAvailable())(
  'back-channel logout from the embedded provider, two instances on one Redis',
  () => {
    let d: TwoInstances;
    let redis: TestRedis;
    let a: Harness;
    let b: Harness;

    beforeAll(async () => {
      ({ redis, a, b } = d = await startTwoInstances());
    });
    afterAll(() => d?.close());

    it('ends the codeflow sessions signed in through both instances in one provider session, as both instances see it', async () => {
      // One browser, one provider session: signs in through A, then again through B (the provider
      // remembers the person and asks only for consent).
      const provider = a.providerAgent();
      const viaA = await signedIn(a, provider);
      const viaB = await signedIn(b, provider, a);
      expect(sessionIdOf(viaB.cookie)).not.toBe(sessionIdOf(viaA.cookie));
      // Both were issued in the same provider session: the ID tokens carry the same `sid`.
      const sids = a.providerRequests
        .filter((r) => r.route === 'token')
        .map((r) => {
          const idToken = (r.body as { id_token: string }).id_token;
          return (
            JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString()) as {
              sid?: string;
            }
          ).sid;
        });
      expect(sids).toHaveLength(2);
      expect(sids[0]).toBeTruthy();
      expect(sids[1]).toBe(sids[0]);
      // Another browser of alice's, in a provider session of its own, signed in through B.
      const elsewhere = await signedIn(b, a.providerAgent(), a);
      for (const cookie of [viaA.cookie, viaB.cookie, elsewhere.cookie]) {
        expect(await dashboardStatus(a, cookie)).toBe(200);
        expect(await dashboardStatus(b, cookie)).toBe(200);
      }

      await signOutAtProvider(a, provider);

      for (const cookie of [viaA.cookie, viaB.cookie]) {
        await expectSignedOutSoon(a, cookie);
        await expectSignedOutSoon(b, cookie);
      }
      // One logout token, received by A, ended both sessions.
      expect(backchannelLogs(a)).toEqual([expect.objectContaining({ ended: 2, by: 'sid' })]);
      expect(backchannelLogs(b)).toEqual([]);
      expect(await sample(a, 'codeflow_sign_outs_total{kind="back_channel"}')).toBe(2);
      // The session of the other provider session is untouched, on both instances.
      expect(await dashboardStatus(a, elsewhere.cookie)).toBe(200);
      expect(await dashboardStatus(b, elsewhere.cookie)).toBe(200);
      // Nothing of the ended sessions is left in Redis but their tombstones.
      const keys = Object.keys(await redis.dump());
      for (const sid of [sessionIdOf(viaA.cookie), sessionIdOf(viaB.cookie)]) {
        expect(keys.filter((k) => k.endsWith(`:${sid}`))).toEqual([`codeflow:ended:${sid}`]);
      }
    });
  },
);
