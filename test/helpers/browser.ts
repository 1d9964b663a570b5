import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

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
