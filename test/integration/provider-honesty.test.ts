import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { NO_REVOCATION_ENDPOINT } from '../../src/tokens/revocation.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import {
  received,
  signInAtMock,
  startMockHarness,
  type MockHarness,
} from '../helpers/mock-harness.js';
import { signIn } from '../helpers/sign-in.js';

/**
 * What the dashboard and the log say about the provider is what the provider does: a provider
 * without a revocation endpoint cannot revoke at sign-out, and whether a refresh rotated the
 * refresh token is what was observed, never a promise.
 */

const NO_REVOCATION_SENTENCE =
  'This provider has no revocation endpoint: signing out ends your session here, but the refresh token stays valid at the provider until it expires.';

const csrfTokenOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];

const open: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const h of open) await h.close();
});

/**
 * codeflow against the misbehaving provider, whose discovery document leaves out
 * `revocation_endpoint` from the first request on (set before codeflow exists, so no discovery
 * can have seen the endpoint).
 */
async function withoutRevocation(): Promise<MockHarness> {
  // JSON leaves out a field whose value is undefined: the document has no such member.
  const mh = await startMockHarness({}, { metadata: { revocation_endpoint: undefined } });
  open.push(mh);
  return mh;
}

const saidNoRevocation = (h: Harness) =>
  h.logs.parsed().filter((line) => line.msg === NO_REVOCATION_ENDPOINT);

describe('a provider without a revocation endpoint', () => {
  it('is named on the dashboard next to the tokens', async () => {
    const h = await withoutRevocation();
    const discovery = (await (
      await fetch(`${h.mock.issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(discovery).not.toHaveProperty('revocation_endpoint');

    const app = h.app();
    await signInAtMock(h, app).then((res) => expect(res.status).toBe(302));
    const page = await app.get('/dashboard').expect(200);
    expect(page.text).toContain(NO_REVOCATION_SENTENCE);
    // In the Tokens card, after its facts.
    const tokensCard = /<section class="card" aria-labelledby="tokens-h">[\s\S]*?<\/section>/.exec(
      page.text,
    )?.[0];
    expect(tokensCard).toContain(NO_REVOCATION_SENTENCE);
  });

  it('is said once in the log however many sign-outs, counted as unsupported, and the refresh token still works at the provider', async () => {
    const h = await withoutRevocation();
    for (let i = 0; i < 2; i++) {
      const app = h.app();
      await signInAtMock(h, app).then((res) => expect(res.status).toBe(302));
      const page = await app.get('/dashboard').expect(200);
      await app
        .post('/logout')
        .type('form')
        .send({ _csrf: csrfTokenOf(page.text) })
        .expect(200);
      await app.get('/me').set('Accept', 'application/json').expect(401);
    }
    await h.runtime.revoker.settle(10_000);

    const said = saidNoRevocation(h);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 40 });
    expect(h.runtime.revoker.stats()).toMatchObject({
      revoked: 0,
      failedAttempts: 0,
      gaveUp: 0,
      unsupported: 2,
      pending: 0,
    });
    // Nothing was sent to the provider's revocation endpoint (the mock still serves one)...
    expect(received(h, '/revoke')).toHaveLength(0);
    // ...so a refresh token of a signed-out session is still honoured: what the sentence says.
    const first = h.mock.issued.refreshTokens[0]!;
    const redeemed = await fetch(`${h.mock.issuer}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${h.mock.clientId}:${h.mock.clientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: first }),
    });
    expect(redeemed.status).toBe(200);
  });
});

describe('a provider with a revocation endpoint (the embedded one)', () => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  it('is not said to lack one: no sentence on the dashboard, nothing in the log, the token revoked', async () => {
    h = await startHarness();
    const app = h.app();
    await signIn(h, app);
    const page = await app.get('/dashboard').expect(200);
    expect(page.text).not.toContain('no revocation endpoint');
    expect(page.text).not.toContain('id="no-revocation"');

    await app
      .post('/logout')
      .type('form')
      .send({ _csrf: csrfTokenOf(page.text) })
      .expect(200);
    await h.runtime.revoker.settle(10_000);
    expect(saidNoRevocation(h)).toHaveLength(0);
    expect(h.runtime.revoker.stats()).toMatchObject({ revoked: 1, unsupported: 0 });
  });
});

describe('the dashboard on refresh-token rotation', () => {
  it('says what the last refresh did, and promises nothing before one', async () => {
    const h = await withoutRevocation();
    // This provider does not rotate: a refresh answer without refresh_token keeps the old one.
    h.mock.behaviour.omitRefreshTokenOnRefresh = true;
    const app = h.app();
    await signInAtMock(h, app).then((res) => expect(res.status).toBe(302));

    const before = await app.get('/dashboard').expect(200);
    expect(before.text).not.toMatch(/rotates/i);
    expect(before.text).toContain(
      'Whether a refresh brings a new refresh token is up to the provider',
    );
    expect(before.text).not.toContain('the provider sent a new refresh token');

    await app
      .post('/refresh')
      .type('form')
      .send({ _csrf: csrfTokenOf(before.text) })
      .expect(303);
    const after = await app.get('/dashboard').expect(200);
    expect(/id="refresh-count">([^<]*)/.exec(after.text)?.[1]?.trim()).toBe('1');
    expect(after.text).toContain('the provider kept the same refresh token');
    expect(after.text).not.toContain('the provider sent a new refresh token');
    expect(after.text).not.toMatch(/rotates/i);
  });
});
