import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  browserAvailable,
  launchChromium,
  outputDir,
  signInWithChromium as chromiumSignIn,
} from '../helpers/browser.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { signIn } from '../helpers/sign-in.js';

const FIREFOX_ON_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0';

describe.runIf(browserAvailable())('a person sees and ends their sessions in Chromium', () => {
  let h: Harness;
  let browser: Browser;
  let context: BrowserContext;
  const shots = outputDir('e2e');
  const violations: string[] = [];
  const requests: { method: string; url: string; body: string }[] = [];

  beforeAll(async () => {
    // Both on 127.0.0.1 (ports differ): one site, as in development, so the provider's SameSite=Lax
    // session cookie comes with codeflow's end-session POST and the provider asks to confirm.
    h = await startHarness();
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
    // A step that never happens fails naming what it waited for, before the test's own timeout.
    context.setDefaultTimeout(8000);
    // Every page of the context: CSP violations Chromium reports, and every request it makes.
    context.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
    });
    context.on('request', (r) =>
      requests.push({ method: r.method(), url: r.url(), body: r.postData() ?? '' }),
    );
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await h?.close();
  });

  /** Alice signs in with the provider's real pages; consent only when no grant is left. */
  const signInWithChromium = (page: Page) => chromiumSignIn(page, h.baseUrl);

  const providerOrigin = () => h.runtime.devProvider!.issuer.origin;
  const idTokensIssued = () =>
    h.providerRequests
      .filter((r) => r.route === 'token')
      .map((r) => (r.body as { id_token?: string }).id_token!);

  it('lists both sessions, ends the other one, is signed out by the provider, and signs out by POST', async () => {
    // 1. Alice in Chromium, and alice in a second "browser" that says it is Firefox on Windows.
    const page = await context.newPage();
    await signInWithChromium(page);
    const agent = h.app().set('User-Agent', FIREFOX_ON_WINDOWS);
    expect((await signIn(h, agent)).response.status).toBe(302);
    expect((await agent.get('/dashboard')).status).toBe(200);

    await page.getByRole('banner').getByRole('link', { name: 'Sessions' }).click();
    await page.waitForURL(`${h.baseUrl}/sessions`);
    const rows = page.locator('#sessions > li');
    expect(await rows.count()).toBe(2);
    const current = page.locator('#sessions > li.session-current');
    expect(await current.count()).toBe(1);
    expect(await current.locator('.tag-current').textContent()).toBe('This session');
    expect(await current.getByRole('heading', { level: 2 }).textContent()).toMatch(
      /Chrome.* on Linux/,
    );
    const other = rows.filter({ hasNot: page.locator('.tag-current') });
    expect(await other.getByRole('heading', { level: 2 }).textContent()).toBe(
      'Firefox 128 on Windows 10',
    );
    await page.screenshot({ path: `${shots}/7-sessions.png`, fullPage: true });

    const beforeEnd = h.providerRequests.length;
    await page.getByRole('button', { name: 'Sign out all other sessions' }).click();
    await page.waitForURL(`${h.baseUrl}/sessions?ended=1`);
    expect(await page.locator('#ended-notice').textContent()).toBe('Signed out 1 session.');
    expect(await rows.count()).toBe(1);
    expect(await page.locator('#sessions > li.session-current').count()).toBe(1);
    await page.screenshot({ path: `${shots}/8-sessions-after.png`, fullPage: true });

    const next = await agent.get('/dashboard');
    expect(next.status).toBe(302);
    expect(next.headers.location).toMatch(/^\/login(\?|$)/);
    await h.runtime.revoker.settle(10_000);
    const revocations = h.providerRequests.slice(beforeEnd).filter((r) => r.route === 'revocation');
    expect(revocations).toHaveLength(1);

    // 2. Back-channel logout: the dashboard open in another tab, alice signs out at the provider.
    const page2 = await context.newPage();
    await page2.goto(`${h.baseUrl}/dashboard`);
    expect(await page2.getByRole('heading', { level: 1 }).textContent()).toBe(
      'Hello, Alice Liddell',
    );
    await page.getByRole('link', { name: 'sign out at the provider' }).click();
    await page.waitForURL(`${providerOrigin()}/session/end`);
    const yes = page.getByRole('button', { name: 'Yes, sign me out' });
    await yes.waitFor();
    await page.screenshot({ path: `${shots}/9-provider-sign-out.png`, fullPage: true });
    await yes.click();
    await page.getByRole('heading', { name: 'You are signed out' }).waitFor();
    await expect
      .poll(() => h.logs.parsed().filter((l) => l.msg === 'back-channel logout'))
      .toMatchObject([{ ended: 1, by: 'sid' }]);

    await page2.reload();
    // Signed out here: the dashboard sends it to sign in again (the provider's login page).
    expect(new URL(page2.url()).pathname).toMatch(/^\/(interaction\/|login)/);
    await page2.close();

    // 3. Sign-out from codeflow: the ID token hint goes to the provider in a POST body.
    await signInWithChromium(page);
    const beforeSignOut = requests.length;
    const beforeSignOutAtProvider = h.providerRequests.length;
    await page.getByRole('banner').getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${providerOrigin()}/session/end`);
    expect(new URL(page.url()).search).toBe('');
    const confirm = page.getByRole('button', { name: 'Yes, sign me out' });
    await confirm.waitFor();
    await page.screenshot({ path: `${shots}/10-provider-confirm.png`, fullPage: true });
    await confirm.click();
    await page.waitForURL(`${h.baseUrl}/`);
    expect(await page.getByRole('main').getByRole('link', { name: 'Sign in' }).count()).toBe(1);
    expect(await page.getByRole('banner').getByRole('link', { name: 'Sessions' }).count()).toBe(0);

    const idTokens = idTokensIssued();
    expect(idTokens.length).toBeGreaterThanOrEqual(3);
    for (const { url } of requests) for (const t of idTokens) expect(url).not.toContain(t);
    const endSession = requests
      .slice(beforeSignOut)
      .filter((r) => r.url.startsWith(`${providerOrigin()}/session/end`))
      .filter((r) => new URL(r.url).pathname === '/session/end');
    expect(endSession.map((r) => r.method)).toEqual(['POST']);
    expect(new URLSearchParams(endSession[0]!.body).get('id_token_hint')).toBe(idTokens.at(-1));
    const received = h.providerRequests
      .slice(beforeSignOutAtProvider)
      .filter((r) => r.route === 'end_session');
    expect(received.map((r) => r.method)).toEqual(['POST']);

    // 4. Not one page broke the CSP.
    expect(violations).toEqual([]);
  });
});
