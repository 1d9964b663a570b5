/**
 * The refresh storm: one session whose access token has expired, 50 dashboards at once. Refresh
 * tokens rotate on every use, so a second refresh grant would spend a token already spent (and a
 * real provider may then revoke the whole grant). Goal: one refresh grant, 50 answers of 200.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { readStats } from './provider-stats.js';
import type { RunningProvider } from './services.js';
import { signInThroughApp } from './sign-in.js';

export const STORM_REQUESTS = 50;
/** The storm provider's access-token lifetime: short, so the bench waits little for expiry. */
export const STORM_TOKEN_TTL_SECONDS = 2;
/**
 * codeflow refreshes this long before expiry (default 60 s). With a 2 s token the default would
 * make every request refresh; 0 makes "expired" mean expired, as with real lifetimes.
 */
export const STORM_ENV = { REFRESH_SKEW_SECONDS: '0' };

export interface StormResult {
  requests: number;
  ok: number;
  /** Answers by status (0: no answer). */
  statuses: Record<string, number>;
  refreshGrants: number;
}

/** Signs in through `signInVia`, waits for expiry, then spreads the storm over `instances`. */
export async function refreshStorm(
  provider: RunningProvider,
  signInVia: string,
  instances: string[],
): Promise<StormResult> {
  const cookie = await signInThroughApp(signInVia);
  // codeflow keeps expiry in whole seconds: a little over one more second makes it certain.
  await sleep((STORM_TOKEN_TTL_SECONDS + 1.2) * 1000);
  const before = (await readStats(provider.issuer)).refreshGrants;
  const statuses = await Promise.all(
    Array.from({ length: STORM_REQUESTS }, (_, i) =>
      fetch(`${instances[i % instances.length]}/dashboard`, {
        headers: { cookie },
        redirect: 'manual',
        signal: AbortSignal.timeout(15_000),
      }).then(
        async (res) => (await res.arrayBuffer(), res.status),
        () => 0,
      ),
    ),
  );
  const after = (await readStats(provider.issuer)).refreshGrants;
  const counts: Record<string, number> = {};
  for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
  return {
    requests: STORM_REQUESTS,
    ok: counts['200'] ?? 0,
    statuses: counts,
    refreshGrants: after - before,
  };
}
