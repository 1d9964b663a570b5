import type supertest from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_ACCOUNTS } from '../../src/dev-provider/accounts.js';
import type { SessionBackend } from '../../src/session/backend.js';
import { memoryBackend } from '../../src/session/memory-backend.js';
import { sessionIdOf, startHarness, type Harness } from '../helpers/harness.js';
import {
  received,
  signInAtMock,
  startMockHarness,
  type MockHarness,
} from '../helpers/mock-harness.js';
import { signIn } from '../helpers/sign-in.js';

type Agent = ReturnType<typeof supertest.agent>;

const TITLE = 'This account may not use this application';
const alice = DEMO_ACCOUNTS.find((a) => a.id === 'alice')!;
const aliceDomain = alice.email.slice(alice.email.lastIndexOf('@') + 1);

async function expectSignedOut(app: Agent) {
  await app.get('/me').set('Accept', 'application/json').expect(401);
}

/**
 * The in-process backend, noting every token record written and every session indexed. The notes
 * matter: a refused sign-in's session is emptied at the end of its request, and with it anything
 * written for it, so only the writes show whether tokens were kept, however briefly (unrevoked).
 */
function watchedBackend(): { backend: SessionBackend; written: string[]; indexed: string[] } {
  const backend = memoryBackend();
  const written: string[] = [];
  const indexed: string[] = [];
  const watched: SessionBackend = {
    ...backend,
    tokens: {
      ...backend.tokens,
      write: (sid, ...rest) => (written.push(sid), backend.tokens.write(sid, ...rest)),
    },
    index: {
      ...backend.index,
      add: (sid, ...rest) => (indexed.push(sid), backend.index.add(sid, ...rest)),
    },
  };
  return { backend: watched, written, indexed };
}

/** The refusals logged since `from`: the error handler's one line per refused sign-in. */
function refusals(h: Harness, from = 0) {
  return h.logs
    .parsed()
    .slice(from)
    .filter((line) => line.kind === 'not_allowed');
}

describe('ALLOWED_EMAIL_DOMAINS against the embedded provider', () => {
  let admits: Harness;
  let refuses: Harness;
  const store = watchedBackend();
  beforeAll(async () => {
    // The embedded provider sends email and email_verified: true in userinfo only (the ID token
    // of a code flow carries no profile claims), so this also proves userinfo is read.
    [admits, refuses] = await Promise.all([
      startHarness({ ALLOWED_EMAIL_DOMAINS: `other.example, ${aliceDomain.toUpperCase()}` }),
      // Look-alikes of alice's domain, and one of its subdomains: none is hers.
      startHarness(
        { ALLOWED_EMAIL_DOMAINS: `evil-${aliceDomain} ${aliceDomain}.evil.io eu.${aliceDomain}` },
        { sessions: store.backend },
      ),
    ]);
  });
  afterAll(async () => {
    await Promise.all([admits?.close(), refuses?.close()]);
  });

  it("admits alice when her email's domain is listed", async () => {
    const app = admits.app();
    const { response } = await signIn(admits, app);
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('/dashboard');
    const me = await app.get('/me').set('Accept', 'application/json').expect(200);
    expect(me.text).toContain(alice.email);
  });

  it('refuses her with a 403 that says why, and keeps no session and no tokens', async () => {
    const app = refuses.app();
    const logged = refuses.logs.lines.length;
    const { response } = await signIn(refuses, app);

    expect(response.status).toBe(403);
    expect(response.text).toContain(TITLE);
    expect(response.text).toContain('Your email&#39;s domain is not one this application admits.');
    // The provider did issue tokens: the refusal came after the code exchange.
    const token = refuses.providerRequests.filter((r) => r.route === 'token').at(-1);
    expect(token?.status).toBe(200);
    // ...and they are revoked: issued to someone who may not use this application.
    await refuses.runtime.revoker.settle(10_000);
    const issued = token?.body as { refresh_token?: string };
    const revoked = refuses.providerRequests.filter((r) => r.route === 'revocation');
    expect(revoked.map((r) => [r.params.token, r.status])).toEqual([[issued.refresh_token, 200]]);
    expect(store.written).toEqual([]);
    expect(store.indexed).toEqual([]);
    const sid = sessionIdOf((await app.get('/healthz').expect(200)).request.cookies);
    // The browser's session, if it is still stored, holds no one.
    expect((await refuses.runtime.sessions.getSession(sid)) ?? '{}').not.toMatch(/"user"/);
    await expectSignedOut(app);

    const [line, ...more] = refusals(refuses, logged);
    expect(more).toHaveLength(0);
    expect(line).toMatchObject({
      level: 40,
      msg: TITLE,
      reason: 'domain',
      emailDomain: aliceDomain,
      emailVerified: true,
      groupsCount: 0,
    });
    expect(JSON.stringify(line)).not.toContain(alice.email);
  });
});

describe('access rules against the misbehaving provider', () => {
  let domains: MockHarness;
  let groups: MockHarness;
  let both: MockHarness;
  beforeAll(async () => {
    [domains, groups, both] = await Promise.all([
      startMockHarness({ ALLOWED_EMAIL_DOMAINS: 'example.com' }),
      startMockHarness({
        ALLOWED_GROUPS: 'admins, release managers',
        ALLOWED_GROUPS_CLAIM: 'https://example.com/roles',
      }),
      startMockHarness({ ALLOWED_EMAIL_DOMAINS: 'example.com', ALLOWED_GROUPS: 'admins' }),
    ]);
  });
  beforeEach(() => {
    for (const h of [domains, groups, both]) h?.mock.reset();
  });
  afterAll(async () => {
    await Promise.all([domains?.close(), groups?.close(), both?.close()]);
  });

  /** Signs in at the mock with these extra ID-token claims; the callback's answer and the browser. */
  async function signInWith(h: MockHarness, extraClaims: Record<string, unknown>) {
    h.mock.behaviour.idToken = { extraClaims };
    const app = h.app();
    const response = await signInAtMock(h, app);
    return { app, response };
  }

  async function expectAdmitted(h: MockHarness, extraClaims: Record<string, unknown>) {
    const { app, response } = await signInWith(h, extraClaims);
    expect(response.status).toBe(302);
    await app.get('/me').set('Accept', 'application/json').expect(200);
  }

  async function expectRefused(
    h: MockHarness,
    extraClaims: Record<string, unknown>,
    reason: string,
    message: string,
  ) {
    const logged = h.logs.lines.length;
    const { app, response } = await signInWith(h, extraClaims);
    expect(response.status).toBe(403);
    expect(response.text).toContain(TITLE);
    expect(response.text).toContain(message);
    expect(refusals(h, logged)).toEqual([expect.objectContaining({ reason })]);
    await expectSignedOut(app);
  }

  it('admits a verified email at the listed domain', async () => {
    await expectAdmitted(domains, { email_verified: true });
  });

  it.each([
    ['false', false],
    ['the string "true"', 'true'],
  ])('refuses email_verified %s', async (_name, value) => {
    await expectRefused(
      domains,
      { email_verified: value },
      'unverified',
      'Your email address is not verified by the provider.',
    );
  });

  it.each(['user@evil-example.com', 'user@example.com.evil.io', 'user@mail.example.com'])(
    'refuses the verified address %s',
    async (email) => {
      await expectRefused(
        domains,
        { email, email_verified: true },
        'domain',
        'Your email&#39;s domain is not one this application admits.',
      );
    },
  );

  it('reads the email from userinfo when the ID token has none, with its own email_verified', async () => {
    // The ID token says verified; userinfo, which has the address, does not: refused.
    domains.mock.behaviour.idToken = { extraClaims: { email_verified: true } };
    domains.mock.behaviour.idToken.removeClaims = ['email', 'name'];
    const app = domains.app();
    const response = await signInAtMock(domains, app);
    expect(response.status).toBe(403);
    expect(response.text).toContain('Your email address is not verified by the provider.');
    expect(received(domains, '/userinfo').length).toBeGreaterThan(0);
    await expectSignedOut(app);
  });

  it.each([
    ['an array holding a listed group', ['staff', 'release managers']],
    ['a single string', 'admins'],
  ])('admits a person whose configured claim is %s', async (_name, roles) => {
    await expectAdmitted(groups, { 'https://example.com/roles': roles });
  });

  it.each([
    ['a listed group in another case', { 'https://example.com/roles': ['Admins'] }],
    ['no listed group', { 'https://example.com/roles': ['staff'] }],
    ['the group under the default claim, not the configured one', { groups: ['admins'] }],
    ['no groups claim at all (nor in userinfo)', {}],
  ])('refuses %s', async (_name, claims) => {
    await expectRefused(groups, claims, 'group', 'You are not in a group this application admits.');
  });

  it('with both rules, admits only a verified listed email in a listed group', async () => {
    await expectAdmitted(both, { email_verified: true, groups: ['admins'] });
    await expectRefused(
      both,
      { email_verified: true, groups: ['staff'] },
      'group',
      'not in a group',
    );
    await expectRefused(
      both,
      { email_verified: 'true', groups: ['admins'] },
      'unverified',
      'not verified',
    );
  });
});
