import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, launchChromium, outputDir } from '../helpers/browser.js';
import { startHarness, type Harness } from '../helpers/harness.js';

describe.runIf(browserAvailable())('the "How you signed in" panel in Chromium', () => {
  let h: Harness;
  let browser: Browser;
  const shots = outputDir('e2e');

  beforeAll(async () => {
    h = await startHarness();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  it.each([
    ['desktop', 1200, 900],
    ['phone', 390, 844],
  ] as const)(
    'shows the steps on the dashboard at %s width, openable, with no CSP violation',
    async (name, width, height) => {
      const context = await browser.newContext({ viewport: { width, height } });
      const page = await context.newPage();
      const violations: string[] = [];
      page.on('console', (msg) => {
        if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
      });
      await page.goto(`${h.baseUrl}/login`);
      await page.getByLabel('User name').fill('alice');
      await page.getByLabel('Password').fill('alice-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL(`${h.baseUrl}/dashboard`);
      await page.reload(); // the first view's API call is on the record now

      const steps = page.locator('#flow .flow-step');
      expect(await steps.count()).toBeGreaterThanOrEqual(5);
      await page.getByText('ID token checked').click(); // opens its details
      await expect.poll(() => page.getByText("from the provider's JWKS").isVisible()).toBe(true);
      await page.locator('#flow-h').scrollIntoViewIfNeeded();
      await page.screenshot({ path: `${shots}/11-flow-${name}.png`, fullPage: true });
      expect(violations).toEqual([]);
      await context.close();
    },
  );
});
