import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, launchChromium, outputDir } from '../helpers/browser.js';
import { startHarness, type Harness } from '../helpers/harness.js';

describe.runIf(browserAvailable())('a person signs in with Chromium', () => {
  let h: Harness;
  let browser: Browser;
  const shots = outputDir('e2e');

  beforeAll(async () => {
    // The provider on "localhost", the app on "127.0.0.1": two sites, as in real life, so the
    // SameSite=Lax cookie must survive the cross-site redirect back to /callback.
    h = await startHarness({}, { devProviderHostname: 'localhost' });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  /** A fresh profile that records every CSP violation Chromium reports, and every request it makes. */
  async function newPage(): Promise<{
    page: Page;
    violations: string[];
    requests: { method: string; url: string; body: string }[];
  }> {
    const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
    const page = await context.newPage();
    const violations: string[] = [];
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
    });
    const requests: { method: string; url: string; body: string }[] = [];
    page.on('request', (r) =>
      requests.push({ method: r.method(), url: r.url(), body: r.postData() ?? '' }),
    );
    return { page, violations, requests };
  }

  it('signs in as alice, shows her dashboard and the API answer, then signs out with the ID token posted, never in a URL', async () => {
    const { page, violations, requests } = await newPage();
    await page.goto(h.baseUrl);
    await page.screenshot({ path: `${shots}/1-home.png`, fullPage: true });

    await page.getByRole('main').getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL(/\/interaction\//);
    expect(new URL(page.url()).hostname).toBe('localhost');
    await expect.poll(() => page.getByText('alice-password').count()).toBeGreaterThan(0);
    await page.screenshot({ path: `${shots}/2-provider-login.png`, fullPage: true });
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('alice-password');
    await page.getByRole('button', { name: 'Sign in' }).click();

    await page.waitForURL(/\/interaction\//);
    await page.screenshot({ path: `${shots}/3-provider-consent.png`, fullPage: true });
    await page.getByRole('button', { name: 'Allow' }).click();

    await page.waitForURL(`${h.baseUrl}/dashboard`);
    await expect
      .poll(() => page.getByRole('heading', { level: 1 }).textContent())
      .toBe('Hello, Alice Liddell');
    expect(await page.locator('pre.json').first().textContent()).toContain('looking-glass');
    expect(await page.locator('#refresh-held').textContent()).toBe('yes');
    await page.screenshot({ path: `${shots}/4-dashboard.png`, fullPage: true });

    // "Refresh now" runs the refresh_token grant and the page counts it.
    await page.getByRole('button', { name: 'Refresh now' }).click();
    await page.waitForURL(`${h.baseUrl}/dashboard`);
    expect(await page.locator('#refresh-count').textContent()).toMatch(/^1 \(last at \d{4}-/);
    await page.screenshot({ path: `${shots}/4b-dashboard-refreshed.png`, fullPage: true });

    // The session cookie is invisible to scripts on the page (HttpOnly).
    expect(await page.evaluate('document.cookie')).toBe('');

    // Sign out: codeflow ends its session, and its page posts the ID token hint to the provider
    // (its static script submits the form at once).
    const before = h.providerRequests.length;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${h.baseUrl}/`);
    expect(await page.getByRole('main').getByRole('link', { name: 'Sign in' }).count()).toBe(1);
    const idTokens = h.providerRequests
      .filter((r) => r.route === 'token')
      .map((r) => (r.body as { id_token?: string }).id_token!);
    expect(idTokens.length).toBeGreaterThanOrEqual(2);
    // No URL the browser asked for, by any method, holds an ID token...
    for (const { url } of requests) for (const t of idTokens) expect(url).not.toContain(t);
    // ...and the provider received the latest one in the body of a POST.
    const posted = requests.filter((r) => /\/session\/end$/.test(new URL(r.url).pathname));
    expect(posted.map((r) => r.method)).toEqual(['POST']);
    expect(new URLSearchParams(posted[0]!.body).get('id_token_hint')).toBe(idTokens.at(-1));
    const received = h.providerRequests.slice(before).find((r) => r.route === 'end_session');
    expect(received?.method).toBe('POST');
    // Two sites over plain http: the provider's SameSite=Lax session cookie does not come with a
    // cross-site POST, so the embedded provider finds no session to confirm and sends the browser
    // straight back. (Providers served over https send theirs as SameSite=None; in development
    // both sit on localhost, one site. sessions.browser.test.ts shows the provider's own sign-out.)

    // Back at the dashboard: signed out here, so off to the provider again.
    await page.goto(`${h.baseUrl}/dashboard`);
    await page.waitForURL(/localhost:\d+\//);

    expect(violations).toEqual([]);
  });

  it('shows a plain error page with a reference when the sign-in link is stale', async () => {
    const { page, violations } = await newPage();
    const res = await page.goto(`${h.baseUrl}/callback?code=stale&state=stale`);
    expect(res?.status()).toBe(400);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(
      'This sign-in link is no longer valid',
    );
    expect(await page.locator('#correlation-id').textContent()).toMatch(/^[0-9a-f-]{36}$/);
    await page.screenshot({ path: `${shots}/6-error.png`, fullPage: true });
    expect(violations).toEqual([]);
  });
});
