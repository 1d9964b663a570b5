/**
 * `npm run bench:dpop`: what DPoP costs a signed-in page, as a ratio measured in one run.
 *
 * Two providers (each registers one redirect URI, so each codeflow instance has its own), two
 * codeflow instances that differ only in OIDC_DPOP, and /dashboard (one API call per view, which
 * with DPoP signs one proof and the demo API verifies it) and /me (no token used: no difference
 * expected) loaded in interleaved rounds. Servers on CPU 1, load and providers on CPU 0.
 */
import { ALL_CPUS, cleanUpNow, freePort, pinToCpus, stopAll } from './processes.js';
import { startCodeflow, startProvider, type RunningApp, type RunningProvider } from './services.js';
import { signInThroughApp } from './sign-in.js';
import { CONNECTIONS, interleavedRounds, type Summary, type Target } from './throughput.js';

const SETTINGS = { connections: CONNECTIONS, rounds: 4, secondsPerRound: 5, warmupSeconds: 1 };
const progress = (line: string) => console.error(`bench:dpop: ${line}`);
process.on('exit', cleanUpNow);

async function instance(dpop: 'on' | 'off') {
  const port = await freePort();
  const provider = await startProvider(`http://127.0.0.1:${port}`, 3600);
  const app = await startCodeflow({ provider, port, env: { OIDC_DPOP: dpop } });
  return { provider, app, cookie: await signInThroughApp(app.url) };
}

function target(
  name: string,
  { app, provider, cookie }: { app: RunningApp; provider: RunningProvider; cookie: string },
  path: string,
): Target {
  return {
    name: `${name} ${path}`,
    url: `${app.url}${path}`,
    cookie,
    server: app.child,
    ...(path === '/dashboard' && { upstream: provider.child }),
  };
}

try {
  progress('starting two providers and two codeflow instances (OIDC_DPOP off, on)');
  const [off, on] = await Promise.all([instance('off'), instance('on')]);
  for (const { app } of [off, on]) pinToCpus(app.child.pid, '1');
  for (const pid of [process.pid, off.provider.child.pid, on.provider.child.pid])
    pinToCpus(pid, '0');
  const summaries = await interleavedRounds(
    [
      target('bearer', off, '/me'),
      target('dpop', on, '/me'),
      target('bearer', off, '/dashboard'),
      target('dpop', on, '/dashboard'),
    ],
    SETTINGS,
    progress,
  );
  for (const { app } of [off, on]) pinToCpus(app.child.pid, ALL_CPUS);
  const by = new Map(summaries.map((s) => [s.name, s]));
  const row = (path: string) => {
    const a = by.get(`bearer ${path}`)!;
    const b = by.get(`dpop ${path}`)!;
    const fmt = (s: Summary) =>
      `${s.reqPerSec.toFixed(0)} req/s, ${s.serverCpuUsPerRequest.toFixed(0)} µs CPU/req` +
      (s.upstreamCpuUsPerRequest === undefined
        ? ''
        : `, provider+API ${s.upstreamCpuUsPerRequest.toFixed(0)} µs/req`);
    console.log(`${path.padEnd(11)} bearer: ${fmt(a)}`);
    console.log(`${''.padEnd(11)} dpop:   ${fmt(b)}`);
    console.log(
      `${''.padEnd(11)} dpop/bearer: ${(b.reqPerSec / a.reqPerSec).toFixed(2)}× req/s, ` +
        `${(b.serverCpuUsPerRequest / a.serverCpuUsPerRequest).toFixed(2)}× CPU per request`,
    );
  };
  row('/me');
  row('/dashboard');
} finally {
  await stopAll();
}
process.exit();
