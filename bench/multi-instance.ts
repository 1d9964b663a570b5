/**
 * The rows that need Redis: two codeflow instances sharing one store behind one public URL, what a
 * session costs in Redis, and the refresh storm split across both instances.
 */
import { readStats, type TokenLengths } from './provider-stats.js';
import { keysAddedBy, REDIS_SERVER, sessionIdOf, startRedis, type StoredKeys } from './redis.js';
import { startCodeflow, type RunningProvider } from './services.js';
import { signInThroughApp } from './sign-in.js';
import { refreshStorm, STORM_ENV, type StormResult } from './storm.js';

export interface MultiInstanceResult {
  /** Set when the rows were skipped, with the reason. */
  skipped?: string;
  anonymousLogin?: StoredKeys;
  signedIn?: StoredKeys & { others: StoredKeys; tokenLengths: TokenLengths };
  storm?: StormResult;
}

export async function measureMultiInstance(
  provider: RunningProvider,
  publicPort: number,
): Promise<MultiInstanceResult> {
  const redis = await startRedis();
  if (!redis) return { skipped: `${REDIS_SERVER} is not installed (apt-get install redis-server)` };
  try {
    const publicUrl = `http://127.0.0.1:${publicPort}`;
    const shared = { provider, publicUrl, redisUrl: redis.url, env: STORM_ENV };
    // A owns the public URL; B is a second instance behind it (a load balancer would pick either).
    const [a, b] = await Promise.all([
      startCodeflow({ ...shared, port: publicPort }),
      startCodeflow(shared),
    ]);

    // A visitor who opens /login and goes no further: what their pending sign-in costs, how long.
    const anonymousLogin = await keysAddedBy(redis, async () => {
      const res = await fetch(`${a.url}/login`, {
        redirect: 'manual',
        signal: AbortSignal.timeout(5000),
      });
      await res.body?.cancel();
      if (res.status !== 302) throw new Error(`anonymous GET /login answered ${res.status}`);
    });

    // Its session's keys; the tombstone of the anonymous session it replaced is reported apart.
    const signedIn = await keysAddedBy(
      redis,
      () => signInThroughApp(a.url),
      (key, cookie) => key.endsWith(`:${sessionIdOf(cookie)}`),
    );
    // The code exchange of that sign-in was the provider's last token response.
    const { lastTokenLengths } = await readStats(provider.issuer);

    const storm = await refreshStorm(provider, a.url, [a.url, b.url]);
    return {
      anonymousLogin,
      signedIn: { ...signedIn, tokenLengths: lastTokenLengths },
      storm,
    };
  } finally {
    await redis.close();
  }
}
