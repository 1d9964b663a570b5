import Bowser from 'bowser';

export interface Device {
  /** e.g. "Chrome 142", or "Unknown browser". */
  browser: string;
  /** e.g. "macOS 14", "Windows 10", "Linux", or "Unknown system". */
  os: string;
}

/** Longer User-Agent headers are cut before parsing: no browser needs more, and parsing costs. */
const MAX_USER_AGENT = 512;
const MAX_NAME = 40;

/**
 * A readable device for the sessions page, from the User-Agent at sign-in (parsed by bowser).
 * Only these two short names are kept, never the header itself.
 */
export function describeDevice(userAgent: string | undefined): Device {
  const header = userAgent?.trim().slice(0, MAX_USER_AGENT);
  if (!header) return { browser: 'Unknown browser', os: 'Unknown system' };
  const parsed = Bowser.parse(header);
  const major = parsed.browser.version?.split('.')[0];
  // Every Mac's Safari and Chrome say "10_15_7" whatever the release (the number is frozen): a
  // version of macOS would be a guess, so none is shown.
  const osVersion =
    parsed.os.name === 'macOS'
      ? undefined
      : (parsed.os.versionName ?? parsed.os.version?.split('.').slice(0, 2).join('.'));
  return {
    browser: readable([parsed.browser.name, major], 'Unknown browser'),
    os: readable([parsed.os.name, osVersion], 'Unknown system'),
  };
}

function readable(parts: (string | undefined)[], fallback: string): string {
  const name = parts.filter(Boolean).join(' ').slice(0, MAX_NAME);
  return name || fallback;
}
