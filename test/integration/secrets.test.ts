import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_SESSION_SECRET, type Harness } from '../helpers/harness.js';
import { signIn } from '../helpers/sign-in.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('secrets stay secret', () => {
  it('writes no token, code, verifier, state, secret or cookie to any log line or page during a whole session', async () => {
    const app = h.app();
    const { callbackUrl, authorizationUrl, response } = await signIn(h, app);
    const pages = [response];
    pages.push(await app.get('/dashboard').expect(200));
    const page = pages[1]!;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1];
    const cookie = page.request.cookies;
    // Two "Refresh now": the token endpoint answers twice more, with new tokens each time.
    pages.push(await app.post('/refresh').type('form').send({ _csrf: csrf }).expect(303));
    pages.push(await app.post('/refresh').type('form').send({ _csrf: csrf }).expect(303));
    pages.push(await app.get('/dashboard').expect(200));
    pages.push(await app.get('/').expect(200));
    pages.push(await app.get('/me').set('Accept', 'application/json').expect(200));
    const signOut = await app.post('/logout').type('form').send({ _csrf: csrf }).expect(200);
    pages.push(signOut);
    pages.push(await app.get('/callback?code=abc&state=def').expect(400));
    // The revocation runs in the background after the sign-out; its log lines count too.
    await h.runtime.revoker.settle(10_000);
    expect(h.runtime.revoker.stats().revoked).toBeGreaterThanOrEqual(1);

    const tokenResponses = h.providerRequests.filter((r) => r.route === 'token');
    expect(tokenResponses.map((r) => r.params.grant_type)).toEqual([
      'authorization_code',
      'refresh_token',
      'refresh_token',
    ]);
    const secrets = new Map<string, string>([
      ['code', callbackUrl.searchParams.get('code')!],
      ['state', callbackUrl.searchParams.get('state')!],
      ['nonce', authorizationUrl.searchParams.get('nonce')!],
      ['client secret', h.runtime.config.oidc.clientSecret],
      ['session secret', TEST_SESSION_SECRET],
      ['session cookie', decodeURIComponent(cookie.split('=')[1]!.split(';')[0]!)],
      ['csrf token', csrf!],
    ]);
    for (const [i, r] of tokenResponses.entries()) {
      const body = r.body as Record<string, string>;
      secrets.set(`access token ${i}`, body.access_token!);
      secrets.set(`refresh token ${i}`, body.refresh_token!);
      if (body.id_token) secrets.set(`id token ${i}`, body.id_token);
      secrets.set(
        `code verifier or refresh token sent ${i}`,
        String(r.params.code_verifier ?? r.params.refresh_token),
      );
    }
    for (const [name, value] of secrets) expect(value.length, name).toBeGreaterThan(15);

    const logs = h.logs.text();
    expect(h.logs.lines.length).toBeGreaterThan(8);
    for (const [name, value] of secrets) {
      expect(logs.includes(value), `${name} in the logs`).toBe(false);
    }
    const shown = pages.map((p) => `${JSON.stringify(p.headers)}\n${p.text}`).join('\n');
    for (const [name, value] of secrets) {
      if (name === 'csrf token' || name === 'session cookie') continue; // these belong in the page and its headers
      if (name.startsWith('id token')) continue; // checked below: only in the sign-out form to the provider
      expect(shown.includes(value), `${name} in a page or header`).toBe(false);
    }
    // The ID token appears once: as the hint in the body of the sign-out form, which posts it to
    // the provider. Never in a header (no Location), and never on any other page.
    const idTokens = [...secrets].filter(([n]) => n.startsWith('id token')).map(([, v]) => v);
    for (const p of pages.filter((page) => page !== signOut))
      for (const t of idTokens) expect(p.text + JSON.stringify(p.headers)).not.toContain(t);
    expect(JSON.stringify(signOut.headers)).not.toContain(idTokens.at(-1));
    expect(signOut.text.split(idTokens.at(-1)!)).toHaveLength(2);
    expect(signOut.text).toContain(`name="id_token_hint" value="${idTokens.at(-1)}"`);
  });
});
