import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PASSWORD_ACR } from '../../src/dev-provider/acr.js';
import { sessionIdOf, startHarness, type Harness } from '../helpers/harness.js';
import {
  redisAvailable,
  startTwoInstances,
  type TestRedis,
  type TwoInstances,
} from '../helpers/redis.js';
import { signIn } from '../helpers/sign-in.js';

/**
 * "Your sessions": where a person is signed in, and ending one of those sessions from another,
 * over real HTTP against the embedded provider, on the in-process store and on two instances
 * sharing one Redis.
 */

const FIREFOX_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0';
const SAFARI_MACOS =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';
const CHROME_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const BOB = { login: 'bob', password: 'bob-password' };

type Agent = ReturnType<Harness['app']>;
type Page = Awaited<ReturnType<typeof sessionsPage>>;

/** The page, its rows (`handle`: the hidden `session` input; none on the current row), its CSRF token. */
async function sessionsPage(agent: Agent, path = '/sessions') {
  const html = (await agent.get(path).expect(200)).text;
  const rows = [...html.matchAll(/<li class="card session[^"]*">([\s\S]*?)<\/li>/g)].map(
    ([, row]) => ({
      device: /<h2>([^<]*)<\/h2>/.exec(row!)![1]!,
      current: row!.includes('This session'),
      handle: /name="session" value="([^"]+)"/.exec(row!)?.[1],
    }),
  );
  return { html, rows, csrf: /name="_csrf" value="([^"]+)"/.exec(html)![1]! };
}

/** A browser with this User-Agent, signed in through `via` (an agent of one instance); `h` runs the provider. */
async function browser(
  h: Harness,
  via: Harness,
  userAgent: string,
  account = { login: 'alice', password: 'alice-password' },
) {
  const agent = via.app().set('User-Agent', userAgent);
  const from = h.providerRequests.length;
  const { response } = await signIn(h, agent, { account });
  expect(response.status).toBe(302);
  const cookie = String(response.headers['set-cookie']).split(';')[0]!;
  const issued = h.providerRequests
    .slice(from)
    .filter((r) => r.route === 'token' && r.status === 200)
    .map((r) => r.body as Record<'access_token' | 'refresh_token' | 'id_token', string>);
  const { access_token, refresh_token, id_token } = issued.at(-1)!;
  return {
    agent,
    cookie,
    sid: sessionIdOf(cookie),
    tokens: { access_token, refresh_token, id_token },
  };
}

const epochSeconds = () => Math.floor(Date.now() / 1000);
const revocations = (h: Harness, from = 0) =>
  h.providerRequests.slice(from).filter((r) => r.route === 'revocation');

function post(agent: Agent, path: string, fields: Record<string, string>) {
  return agent.post(path).type('form').send(fields);
}

describe('"Your sessions" on the in-process store', () => {
  const started: Harness[] = [];
  /** A fresh app and provider, with its own clock (epoch seconds, moved by `clock.offset`). */
  async function fresh(env: Record<string, string> = {}) {
    const clock = { offset: 0 };
    const h = await startHarness(env, { now: () => epochSeconds() + clock.offset });
    started.push(h);
    return { h, clock };
  }
  afterAll(async () => {
    await Promise.all(started.map((h) => h.close()));
  });

  // Proves: the page lists both browsers, newest first, with bowser's names, marks the right one, and
  // shows no session id or token; "Sign out all other sessions" ends the other one for good (signed
  // out, tokens deleted, its refresh token revoked once at the provider) and keeps this one.
  it("lists both of alice's browsers and signs out the other one, revoking its refresh token", async () => {
    const { h, clock } = await fresh();
    const a = await browser(h, h, FIREFOX_WINDOWS);
    clock.offset = 60; // B signs in a minute later: newest first is then visible
    const b = await browser(h, h, SAFARI_MACOS);
    const pageA = await sessionsPage(a.agent);
    const pageB = await sessionsPage(b.agent);

    const firefox = 'Firefox 128 on Windows 10';
    const safari = 'Safari 17 on macOS'; // every Mac's Safari reports 10_15_7: no version shown
    expect(pageA.rows.map((r) => r.device)).toEqual([safari, firefox]);
    expect(pageB.rows.map((r) => r.device)).toEqual([safari, firefox]);
    expect(pageA.rows.filter((r) => r.current).map((r) => r.device)).toEqual([firefox]);
    expect(pageB.rows.filter((r) => r.current).map((r) => r.device)).toEqual([safari]);
    const secrets = [a.sid, b.sid, ...Object.values(a.tokens), ...Object.values(b.tokens)];
    expect(secrets.every((s) => s.length >= 32)).toBe(true);
    for (const page of [pageA, pageB]) {
      for (const secret of secrets) expect(page.html).not.toContain(secret);
    }

    const from = h.providerRequests.length;
    const ended = await post(a.agent, '/sessions/end-others', { _csrf: pageA.csrf }).expect(303);
    expect(ended.headers.location).toBe('/sessions?ended=1');
    const after = await sessionsPage(a.agent, ended.headers.location as string);
    expect(after.html).toContain('Signed out 1 session.');
    expect(after.rows.map((r) => r.device)).toEqual([firefox]);

    const next = await b.agent.get('/dashboard').expect(302);
    expect(next.headers.location).toMatch(/^\/login\?/);
    await h.runtime.revoker.settle(10_000);
    const revoked = revocations(h, from);
    expect(revoked).toHaveLength(1);
    expect(revoked[0]!.params.token).toBe(b.tokens.refresh_token);
    expect(await h.runtime.sessions.tokens.read(b.sid)).toBeUndefined();
    await a.agent.get('/dashboard').expect(200);
  });

  // Proves: a handle ends only the person's own other session; another person's handle, a made-up
  // one, or a POST without the CSRF token ends nothing; signed out, the page asks for a sign-in.
  it("ends a session by its handle, and nothing for bob's handle, a made-up one or no CSRF token", async () => {
    const { h } = await fresh();
    const a = await browser(h, h, FIREFOX_WINDOWS);
    const b = await browser(h, h, SAFARI_MACOS);
    const bob1 = await browser(h, h, CHROME_WINDOWS, BOB);
    const bob2 = await browser(h, h, CHROME_WINDOWS, BOB);
    const page = await sessionsPage(a.agent);
    const handleOfB = page.rows.find((r) => !r.current)!.handle!;
    const bobsHandle = (await sessionsPage(bob1.agent)).rows.find((r) => !r.current)!.handle!;
    expect(handleOfB).toMatch(/^[\w-]{16,}$/);
    expect(bobsHandle).toMatch(/^[\w-]{16,}$/);

    await post(a.agent, '/sessions/end', { session: handleOfB }).expect(403);
    await b.agent.get('/dashboard').expect(200);
    for (const handle of [bobsHandle, 'made-up-handle-0123456789abcdef']) {
      const res = await post(a.agent, '/sessions/end', { _csrf: page.csrf, session: handle });
      expect(res.status).toBe(303);
      expect(res.headers.location).toBe('/sessions?ended=0');
    }
    await bob2.agent.get('/dashboard').expect(200);
    await b.agent.get('/dashboard').expect(200);

    const res = await post(a.agent, '/sessions/end', { _csrf: page.csrf, session: handleOfB });
    expect(res.headers.location).toBe('/sessions?ended=1');
    expect((await b.agent.get('/dashboard').expect(302)).headers.location).toMatch(/^\/login\?/);
    await a.agent.get('/dashboard').expect(200);
    await bob1.agent.get('/dashboard').expect(200);
    await bob2.agent.get('/dashboard').expect(200);

    const anonymous = await h.app().get('/sessions').expect(302);
    expect(anonymous.headers.location).toBe('/login?returnTo=%2Fsessions');
    const signedOut = await b.agent.get('/sessions').expect(302);
    expect(signedOut.headers.location).toBe('/login?returnTo=%2Fsessions');
  });

  // Proves: the index is per person: neither alice nor bob sees the other's sessions.
  it("never shows bob's sessions on alice's page, nor alice's on bob's", async () => {
    const { h } = await fresh();
    await browser(h, h, FIREFOX_WINDOWS);
    const alice = await browser(h, h, SAFARI_MACOS);
    await browser(h, h, CHROME_WINDOWS, BOB);
    const bob = await browser(h, h, CHROME_WINDOWS, BOB);
    const alices = await sessionsPage(alice.agent);
    const bobs = await sessionsPage(bob.agent);
    expect(alices.rows.map((r) => r.device).sort()).toEqual([
      'Firefox 128 on Windows 10',
      'Safari 17 on macOS',
    ]);
    expect(bobs.rows.map((r) => r.device)).toEqual(Array(2).fill('Chrome 126 on Windows 10'));
    const handles = (p: Page) => p.rows.map((r) => r.handle).filter(Boolean) as string[];
    for (const handle of handles(bobs)) expect(alices.html).not.toContain(handle);
    for (const handle of handles(alices)) expect(bobs.html).not.toContain(handle);
  });

  // Proves: POST /logout removes the session from the index: the other browser's page stops listing it.
  it('stops listing a session once it signed out with POST /logout', async () => {
    const { h } = await fresh();
    const a = await browser(h, h, FIREFOX_WINDOWS);
    const b = await browser(h, h, SAFARI_MACOS);
    expect((await sessionsPage(a.agent)).rows).toHaveLength(2);
    const { csrf } = await sessionsPage(b.agent);
    await post(b.agent, '/logout', { _csrf: csrf }).expect(200);
    const page = await sessionsPage(a.agent);
    expect(page.rows.map((r) => r.device)).toEqual(['Firefox 128 on Windows 10']);
    expect(page.rows[0]!.current).toBe(true);
  });

  // Proves: the index entry expires with its session in the store. B's last request comes about
  // 3 s before its absolute lifetime ends (the app's clock is moved), so the store keeps it about
  // 3 s more; then neither the session nor its row is there, and A (signed in later) still is.
  it('stops listing a session whose store entry expired', async () => {
    const { h, clock } = await fresh({ SESSION_MAX_AGE_SECONDS: '60' });
    const before = epochSeconds();
    const b = await browser(h, h, SAFARI_MACOS);
    clock.offset = 40;
    const a = await browser(h, h, FIREFOX_WINDOWS);
    expect((await sessionsPage(a.agent)).rows).toHaveLength(2);
    clock.offset = before + 57 - epochSeconds(); // however long the sign-ins took
    expect((await sessionsPage(b.agent)).rows).toHaveLength(2); // still alive: this moved its expiry
    for (let i = 0; i < 100 && (await h.runtime.sessions.getSession(b.sid)); i++) await sleep(100);
    expect(await h.runtime.sessions.getSession(b.sid)).toBeUndefined();

    const page = await sessionsPage(a.agent);
    expect(page.rows.map((r) => r.device)).toEqual(['Firefox 128 on Windows 10']);
    expect(h.runtime.sessions.sessionsActive?.()).toBe(1);
    expect((await b.agent.get('/dashboard').expect(302)).headers.location).toMatch(/^\/login\?/);
  });

  // Proves: the embedded provider says how alice signed in (acr, amr "pwd" in the ID token), and
  // the page shows it.
  it('shows how each session signed in, as the provider said in the ID token', async () => {
    const { h } = await fresh();
    const a = await browser(h, h, FIREFOX_WINDOWS);
    const idToken = JSON.parse(
      Buffer.from(a.tokens.id_token.split('.')[1]!, 'base64url').toString(),
    ) as { acr?: string; amr?: string[] };
    expect(idToken).toMatchObject({ acr: PASSWORD_ACR, amr: ['pwd'] });
    const page = await sessionsPage(a.agent);
    expect(page.html).toContain(`level <code>${PASSWORD_ACR}</code>`);
    expect(page.html).toContain('<span class="tag">pwd</span>');
  });
});

describe.runIf(redisAvailable())('"Your sessions" across two instances on one Redis', () => {
  let d: TwoInstances;
  let redis: TestRedis;
  let a: Harness;
  let b: Harness;
  /** A's clock (epoch seconds), moved by `offset`; B keeps the real one. */
  const clockA = { offset: 0 };
  beforeAll(async () => {
    const now = () => epochSeconds() + clockA.offset;
    ({ redis, a, b } = d = await startTwoInstances({}, {}, { now }));
  });
  afterAll(() => d?.close());
  beforeEach(async () => {
    const client = createClient({ url: redis.url });
    await client.connect();
    await client.flushAll();
    await client.close();
  });

  // Proves: both instances list the sessions made on either; "Sign out all other sessions" on B
  // ends A's session on both instances, deletes its index entry and set membership in Redis, and
  // the provider is told once.
  it("lists sessions of both instances and ends one instance's session from the other", async () => {
    const onA = await browser(a, a, FIREFOX_WINDOWS);
    const onB = await browser(a, b, SAFARI_MACOS);
    const devices = ['Firefox 128 on Windows 10', 'Safari 17 on macOS'];
    const pageA = await sessionsPage(onA.agent);
    const pageB = await sessionsPage(onB.agent);
    expect(pageA.rows.map((r) => r.device).sort()).toEqual(devices);
    expect(pageB.rows.map((r) => r.device).sort()).toEqual(devices);
    expect(pageA.rows.find((r) => r.current)!.device).toBe(devices[0]);
    expect(pageB.rows.find((r) => r.current)!.device).toBe(devices[1]);
    expect(Object.keys(await redis.dump())).toContain(`codeflow:who:${onA.sid}`);

    const from = a.providerRequests.length;
    const res = await post(onB.agent, '/sessions/end-others', { _csrf: pageB.csrf }).expect(303);
    expect(res.headers.location).toBe('/sessions?ended=1');
    for (const instance of [a, b]) {
      const next = await instance.app().get('/dashboard').set('Cookie', onA.cookie).expect(302);
      expect(next.headers.location).toMatch(/^\/login\?/);
    }
    // Read before any list could prune the set: the sign-out itself removed A's membership.
    const dump = await redis.dump();
    expect(dump).not.toHaveProperty(`codeflow:who:${onA.sid}`);
    expect(dump).not.toHaveProperty(`codeflow:tok:${onA.sid}`);
    const people = Object.keys(dump).filter((k) => k.startsWith('codeflow:person:'));
    expect(people).toHaveLength(1);
    expect(dump[people[0]!]!.split('\n')).toEqual([onB.sid]);
    const providerSessions = Object.entries(dump).filter(([k]) => k.startsWith('codeflow:psid:'));
    expect(providerSessions.map(([, members]) => members)).toEqual([onB.sid]);
    await onB.agent.get('/dashboard').expect(200);
    expect((await sessionsPage(onB.agent)).rows.map((r) => r.device)).toEqual([devices[1]]);

    await Promise.all([a, b].map((h) => h.runtime.revoker.settle(10_000)));
    const revoked = revocations(a, from);
    expect(revoked).toHaveLength(1);
    expect(revoked[0]!.params.token).toBe(onA.tokens.refresh_token);
  });

  // Proves: the index entry expires in Redis with its session. The last request of the session on
  // A comes 3 s before its absolute lifetime ends (A's clock is moved), so Redis keeps both keys
  // about 3 s more; then B no longer lists it, and the list drops it from the person's set.
  it('stops listing a session whose keys expired in Redis', async () => {
    const before = epochSeconds();
    const gone = await browser(a, a, FIREFOX_WINDOWS);
    const stays = await browser(a, b, SAFARI_MACOS);
    expect((await sessionsPage(stays.agent)).rows).toHaveLength(2);
    const keys = [`codeflow:sess:${gone.sid}`, `codeflow:who:${gone.sid}`];
    let dump = await redis.dump();
    expect(Object.keys(dump)).toEqual(expect.arrayContaining(keys));
    try {
      clockA.offset = before + a.runtime.config.session.maxAgeSeconds - 3 - epochSeconds();
      expect((await sessionsPage(gone.agent)).rows).toHaveLength(2); // alive; its expiry moved
      for (let i = 0; i < 100 && keys.some((k) => k in dump); i++) {
        await sleep(100);
        dump = await redis.dump();
      }
    } finally {
      clockA.offset = 0;
    }
    for (const key of keys) expect(Object.keys(dump)).not.toContain(key);

    const page = await sessionsPage(stays.agent);
    expect(page.rows.map((r) => r.device)).toEqual(['Safari 17 on macOS']);
    const person = async () =>
      Object.entries(await redis.dump()).find(([k]) => k.startsWith('codeflow:person:'))![1];
    for (let i = 0; i < 20 && (await person()).includes(gone.sid); i++) await sleep(50);
    expect((await person()).split('\n')).toEqual([stays.sid]);
  });
});
