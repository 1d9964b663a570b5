import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Whether the browser suite runs: when Debian's chromium is installed. With CI set it must be:
 * a missing browser fails the run instead of skipping it silently.
 */
export function browserAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI)
    throw new Error(`CI is set but ${CHROMIUM} is missing: apt-get install -y chromium`);
  return false;
}

/** Headless Chromium with the flags this sandbox needs (no downloads, no background traffic). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Where screenshots go; kept out of git. */
export function outputDir(name: string): string {
  const dir = `test-output/${name}`;
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Alice signs in with the provider's real pages, from the home page of `baseUrl`; consent is
 * asked only when no grant is left. `onProviderPage` runs on the provider's sign-in page first.
 */
export async function signInWithChromium(
  page: Page,
  baseUrl: string,
  onProviderPage: () => Promise<void> = async () => undefined,
): Promise<void> {
  await page.goto(baseUrl);
  await page.getByRole('main').getByRole('link', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Sign in', exact: true }).waitFor();
  await onProviderPage();
  await page.getByLabel('User name').fill('alice');
  await page.getByLabel('Password').fill('alice-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const allow = page.getByRole('button', { name: 'Allow' });
  const hello = page.getByRole('heading', { name: 'Hello, Alice Liddell' });
  await allow.or(hello).waitFor();
  if (await allow.isVisible()) await allow.click();
  await page.waitForURL(`${baseUrl}/dashboard`);
  await hello.waitFor();
}
