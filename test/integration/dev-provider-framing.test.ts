import type supertest from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { signIn, startLogin } from '../helpers/sign-in.js';

/**
 * The embedded provider's pages refuse to be framed (clickjacking): its own sign-in and consent
 * pages, and the pages oidc-provider renders itself (sign-out confirmation, errors).
 */

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

function expectNoFraming(res: supertest.Response): void {
  expect(res.headers['content-security-policy']).toBe("frame-ancestors 'none'");
  expect(res.headers['x-frame-options']).toBe('DENY');
}

/** Follows the provider's redirects from `path` to the next page it shows (≤ 8 hops). */
async function pageAfter(provider: ReturnType<Harness['providerAgent']>, path: string) {
  let next = path;
  for (let hop = 0; hop < 8; hop++) {
    const res = await provider.get(next);
    if (res.status !== 302 && res.status !== 303) return { res, path: next };
    next = new URL(res.headers.location as string, h.runtime.devProvider!.issuer).pathname;
  }
  throw new Error('too many provider redirects');
}

describe("the embedded provider's pages", () => {
  it('send frame-ancestors none and X-Frame-Options DENY on the sign-in and consent pages', async () => {
    const provider = h.providerAgent();
    const authorizationUrl = await startLogin(h.app());

    const login = await pageAfter(provider, authorizationUrl.pathname + authorizationUrl.search);
    expect(login.res.status).toBe(200);
    expect(login.res.text).toContain('action="/interaction/');
    expect(login.res.text).toMatch(/name="password"/);
    expectNoFraming(login.res);

    const signedIn = await provider
      .post(`${login.path}/login`)
      .type('form')
      .send({ login: 'alice', password: 'alice-password' });
    expect([302, 303]).toContain(signedIn.status);
    const consent = await pageAfter(
      provider,
      new URL(signedIn.headers.location as string, h.runtime.devProvider!.issuer).pathname,
    );
    expect(consent.res.status).toBe(200);
    expect(consent.res.text).toContain(`action="${consent.path}/confirm"`);
    expectNoFraming(consent.res);

    // A refused password renders the sign-in page again, from another route.
    const wrong = await provider
      .post(`${consent.path}/login`)
      .type('form')
      .send({ login: 'alice', password: 'wrong' });
    expect(wrong.status).toBe(401);
    expectNoFraming(wrong);
  });

  it("send them on oidc-provider's own sign-out confirmation page", async () => {
    const provider = h.providerAgent();
    await signIn(h, h.app(), { provider });

    const res = await provider.get('/session/end').expect(200);
    expect(res.text).toContain('Sign out of the demo provider?');
    expect(res.text).toContain('id="op.logoutForm"');
    expectNoFraming(res);
  });

  it('leave the inline script of its self-submitting sign-out form alone: no script-src is added', async () => {
    // Without a provider session there is nothing to confirm: oidc-provider answers with a form
    // that an inline script submits. A fuller CSP than frame-ancestors would block that script.
    const res = await h.providerAgent().get('/session/end').expect(200);
    expect(res.text).toMatch(/<script>[\s\S]*document\.forms\[0\]\.submit\(\)/);
    expectNoFraming(res);
  });

  it("send them on oidc-provider's error page and on an expired sign-in page", async () => {
    const error = await h.providerAgent().get('/auth?client_id=unknown');
    expect(error.status).toBe(400);
    expect(error.text).toContain('invalid_client');
    expectNoFraming(error);

    const expired = await h.providerAgent().get('/interaction/no-such-interaction');
    expect(expired.status).toBe(400);
    expectNoFraming(expired);
  });
});
