import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { endSessionForm, signIn } from '../helpers/sign-in.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const csrfTokenOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];

async function signedIn() {
  const app = h.app();
  const provider = h.providerAgent();
  await signIn(h, app, { provider });
  const issued = h.providerRequests.filter((r) => r.route === 'token').at(-1)!.body as Record<
    string,
    string
  >;
  const page = await app.get('/dashboard').expect(200);
  return { app, provider, issued, csrf: csrfTokenOf(page.text)! };
}

describe('logout', () => {
  it('refuses a logout without the CSRF token and keeps the session', async () => {
    const { app } = await signedIn();
    const res = await app.post('/logout').type('form').send({}).expect(403);
    expect(res.text).toContain('This form has expired');
    await app.post('/logout').type('form').send({ _csrf: 'forged' }).expect(403);
    await app.get('/me').set('Accept', 'application/json').expect(200);
  });

  it('revokes the refresh token, ends the session, and posts the browser to the provider to end its session too', async () => {
    const { app, provider, issued, csrf } = await signedIn();
    const cookie = (await app.get('/me').set('Accept', 'application/json').expect(200)).request
      .cookies;
    expect(cookie).toMatch(/^codeflow\.sid=s%3A/);
    const before = h.providerRequests.length;

    const res = await app.post('/logout').type('form').send({ _csrf: csrf }).expect(200);
    expect(res.headers.location).toBeUndefined();
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['clear-site-data']).toBe('"cache"');
    expect(String(res.headers['set-cookie'])).toMatch(/^codeflow\.sid=;.*Expires=Thu, 01 Jan 1970/);

    // The provider was told, in the background: the refresh token was revoked with client
    // authentication...
    await h.runtime.revoker.settle(10_000);
    const revocation = h.providerRequests.slice(before).find((r) => r.route === 'revocation');
    expect(revocation?.status).toBe(200);
    expect(revocation?.params.token_type_hint).toBe('refresh_token');
    expect(revocation?.authorization).toMatch(/^Basic /);
    // ...so the whole grant is gone: the access token no longer opens the API.
    await provider.get('/api/me').set('Authorization', `Bearer ${issued.access_token}`).expect(401);

    // ...and the page posts the browser to its end_session endpoint with our ID token as the
    // hint, in the form's body: no URL holds it. A static script submits it; the CSP lets the
    // form go to that origin (and runs no inline script).
    const { action: endSession, fields } = endSessionForm(res.text);
    expect(endSession.href).toBe(`${h.runtime.devProvider!.issuer.origin}/session/end`);
    expect(fields).toEqual({
      id_token_hint: issued.id_token,
      client_id: h.runtime.config.oidc.clientId,
      post_logout_redirect_uri: `${h.baseUrl}/`,
    });
    expect(res.text).toContain('<script src="/static/sign-out.js"></script>');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain(`form-action 'self' ${endSession.origin}`);
    expect(csp).toContain("script-src 'self'");

    // The session is gone here, for this browser and for anyone replaying the old cookie.
    await app.get('/me').set('Accept', 'application/json').expect(401);
    await h.app().get('/me').set('Cookie', cookie).set('Accept', 'application/json').expect(401);

    // The provider takes the form by POST, and confirming there brings the browser home.
    const confirm = await provider.post(endSession.pathname).type('form').send(fields).expect(200);
    const received = h.providerRequests.slice(before).find((r) => r.route === 'end_session');
    expect(received?.method).toBe('POST');
    expect(received?.params.id_token_hint).toBe(issued.id_token);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.text)![1];
    const action = /<form[^>]+action="([^"]+)"/.exec(confirm.text)![1]!;
    const done = await provider
      .post(new URL(action, endSession).pathname)
      .type('form')
      .send({ xsrf, logout: 'yes' });
    expect(done.status).toBe(303);
    expect(done.headers.location).toBe(`${h.baseUrl}/`);
    expect(
      h.providerRequests
        .slice(before)
        .some((r) => r.route === 'end_session_confirm' && r.status === 303),
    ).toBe(true);
  });

  it('ignores a post_logout_redirect_uri sent by the browser', async () => {
    const { app, csrf } = await signedIn();
    const res = await app
      .post('/logout?post_logout_redirect_uri=https://evil.example')
      .type('form')
      .send({ _csrf: csrf, post_logout_redirect_uri: 'https://evil.example' })
      .expect(200);
    expect(res.text).not.toContain('evil');
    expect(endSessionForm(res.text).fields.post_logout_redirect_uri).toBe(`${h.baseUrl}/`);
  });
});
