import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ONE_TIME_CODE_ACR, PASSWORD_ACR } from '../../src/dev-provider/acr.js';
import {
  browserAvailable,
  launchChromium,
  outputDir,
  signInWithChromium,
} from '../helpers/browser.js';
import { startHarness, type Harness } from '../helpers/harness.js';

/**
 * Step-up in a real browser: alice, signed in with her password, opens the sensitive page; the
 * provider's own page asks for her one-time code; she lands on the page, at the code's level.
 */
describe.runIf(browserAvailable())('a person steps up to the sensitive page in Chromium', () => {
  let h: Harness;
  let browser: Browser;
  let context: BrowserContext;
  const shots = outputDir('e2e');
  const violations: string[] = [];

  beforeAll(async () => {
    h = await startHarness();
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
    // A step that never happens fails naming what it waited for, before the test's own timeout.
    context.setDefaultTimeout(8000);
    context.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
    });
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await h?.close();
  });

  it('signs in with the password, follows the link, is asked for the code, and sees the page at the new level', async () => {
    const page = await context.newPage();

    // 1. An ordinary sign-in: the password only.
    await signInWithChromium(page, h.baseUrl, async () => {
      expect(await page.getByLabel('One-time code').count()).toBe(0);
    });

    // 2. The sensitive page asks for more: the provider's page asks for the one-time code.
    const from = h.providerRequests.length;
    await page.locator('#sensitive-link').click();
    await page.waitForURL(/\/interaction\//);
    await page.getByRole('heading', { name: 'Sign in with a one-time code' }).waitFor();
    expect(await page.locator('#step-up-notice').textContent()).toContain(
      'asked for a stronger sign-in',
    );
    // The account is the session's; only the password and the code are asked for.
    expect(await page.getByLabel('User name').inputValue()).toBe('alice');
    const asked = h.providerRequests.slice(from).find((r) => r.route === 'authorization');
    expect(asked?.params.acr_values).toBe(ONE_TIME_CODE_ACR);
    expect(String(asked?.params.max_age)).toBe('600');
    await page.getByLabel('Password').fill('alice-password');
    await page.getByLabel('One-time code').fill('271828');
    await page.screenshot({ path: `${shots}/12-step-up-code.png`, fullPage: true });
    await page.getByRole('button', { name: 'Sign in' }).click();
    // offline_access comes with prompt=consent: the provider asks again (OIDC Core §11).
    const allow = page.getByRole('button', { name: 'Allow' });
    const sensitive = page.getByRole('heading', { level: 1, name: 'Sensitive page' });
    await allow.or(sensitive).waitFor();
    if (await allow.isVisible()) await allow.click();

    // 3. Back on the sensitive page, at the one-time-code level, with the API's sensitive data.
    await page.waitForURL(`${h.baseUrl}/dashboard/sensitive`);
    await sensitive.waitFor();
    expect(await page.locator('#session-acr').textContent()).toBe(ONE_TIME_CODE_ACR);
    expect(await page.locator('#session-acr').textContent()).not.toBe(PASSWORD_ACR);
    expect(await page.locator('#required-acr').textContent()).toContain(ONE_TIME_CODE_ACR);
    expect(await page.locator('pre.json').textContent()).toContain('GB00 DEMO 0000 0000 0000 00');
    await page.screenshot({ path: `${shots}/13-sensitive.png`, fullPage: true });

    // Still alice, and still there on a reload: no second step-up.
    await page.reload();
    expect(new URL(page.url()).pathname).toBe('/dashboard/sensitive');
    expect(await page.locator('#session-acr').textContent()).toBe(ONE_TIME_CODE_ACR);
    const me = await page.request.get(`${h.baseUrl}/me`, {
      headers: { Accept: 'application/json' },
    });
    expect((await me.json()).sub).toBe('alice');

    expect(violations).toEqual([]);
  });
});
