/**
 * Benchmarks, as ratios against a baseline measured in the same run (never absolute timings:
 * machines differ and are noisy). Run with `npm run bench`.
 *
 *   baseline          GET /healthz: Express, helmet and logging, nothing else
 *   home              GET /: + the session lookup and a rendered page
 *   dashboard         GET /dashboard signed in: + the API call to the embedded provider
 *   refresh storm     50 concurrent dashboards on an expired session: one refresh shared by all,
 *                     compared with 50 concurrent dashboards on a fresh session
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startHarness } from '../test/helpers/harness.js';
import { signIn } from '../test/helpers/sign-in.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1500);
const CONCURRENCY = 10;

async function throughput(url: string, cookie?: string): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < REQUESTS) {
      next += 1;
      const res = await fetch(url, { headers: cookie ? { cookie } : {}, redirect: 'manual' });
      if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return REQUESTS / ((performance.now() - started) / 1000);
}

async function burst(url: string, cookie: string, n = 50): Promise<number> {
  const started = performance.now();
  const answers = await Promise.all(
    Array.from({ length: n }, () => fetch(url, { headers: { cookie } })),
  );
  if (answers.some((r) => r.status !== 200)) throw new Error('a request of the burst failed');
  await Promise.all(answers.map((r) => r.arrayBuffer()));
  return performance.now() - started;
}

async function main() {
  const h = await startHarness({
    LOG_LEVEL: 'silent',
    DEV_ACCESS_TOKEN_TTL: '2',
    REFRESH_SKEW_SECONDS: '0',
  });
  try {
    const app = h.app();
    const { response } = await signIn(h, app);
    const cookie = String(response.headers['set-cookie']).split(';')[0]!;
    const base = h.baseUrl;

    await throughput(`${base}/healthz`); // warm-up
    const baseline = await throughput(`${base}/healthz`);
    const home = await throughput(`${base}/`, cookie);
    await sleep(2100);
    const dashboard = await throughput(`${base}/dashboard`, cookie);

    await burst(`${base}/dashboard`, cookie); // fresh token: no refresh
    const fresh = await burst(`${base}/dashboard`, cookie);
    await sleep(2100);
    const refreshes = h.providerRequests.filter(
      (r) => r.params.grant_type === 'refresh_token',
    ).length;
    const storm = await burst(`${base}/dashboard`, cookie);
    const stormRefreshes =
      h.providerRequests.filter((r) => r.params.grant_type === 'refresh_token').length - refreshes;

    const rows: Array<[string, string]> = [
      ['baseline GET /healthz', `${baseline.toFixed(0)} req/s = 1.00`],
      ['GET / (session + page)', `${(home / baseline).toFixed(2)} × baseline`],
      ['GET /dashboard (+ API call)', `${(dashboard / baseline).toFixed(2)} × baseline`],
      [
        '50-request storm, expired token',
        `${(storm / fresh).toFixed(2)} × the time of 50 on a fresh token`,
      ],
      ['refresh grants during the storm', `${stormRefreshes} (one shared refresh)`],
    ];
    for (const [name, value] of rows) console.log(`${name.padEnd(36)} ${value}`);
  } finally {
    await h.close();
  }
}

await main();
