/**
 * `npm run bench`: codeflow measured against a bare baseline in the same run, as ratios (machines
 * differ and are noisy; a ratio taken side by side travels better than a figure).
 *
 * Processes, each on a free 127.0.0.1 port and stopped by PID at the end:
 *   provider        the embedded development provider on its own (bench/provider.ts), 1 h tokens
 *   codeflow        src/server.ts as deployed: development mode, default (info) logging to /dev/null
 *   bare app        Express + express-session and nothing else (bench/bare-app.ts)
 *   storm provider  a second provider with 2 s access tokens, and codeflow instances against it
 *   redis-server    when installed: two codeflow instances sharing it
 */
import { cpus } from 'node:os';
import { evaluateGoals } from './goals.js';
import { measureMemoryStore } from './memory-store.js';
import { measureMultiInstance } from './multi-instance.js';
import { ALL_CPUS, cleanUpNow, freePort, pinToCpus, stopAll } from './processes.js';
import { printReport, writeResults } from './report.js';
import type { Measurements } from './results.js';
import {
  bareCookie,
  CLIENT_ID,
  CLIENT_SECRET,
  startBareApp,
  startCodeflow,
  startProvider,
  type RunningApp,
} from './services.js';
import { measureSignIns } from './sign-in-time.js';
import { ownClient, signInAtProvider, signInThroughApp } from './sign-in.js';
import { refreshStorm, STORM_ENV, STORM_TOKEN_TTL_SECONDS } from './storm.js';
import { CONNECTIONS, interleavedRounds, type Target } from './throughput.js';

const SETTINGS = { connections: CONNECTIONS, rounds: 4, secondsPerRound: 5, warmupSeconds: 1 };
const SIGN_INS = 20;
/** Long enough that the throughput rounds never meet an expired token (the default is 300 s). */
const MAIN_TOKEN_TTL_SECONDS = 3600;
/** The whole run, however it goes: then everything is killed. */
const DEADLINE_MS = 5 * 60_000;

const progress = (line: string) => console.error(`bench: ${line}`);

async function measure(): Promise<Measurements> {
  const startedAt = new Date().toISOString();
  // Ports first: each provider registers its client's redirect URI, which names the app's port.
  const [mainPort, stormPort] = await Promise.all([freePort(), freePort()]);
  const mainUrl = `http://127.0.0.1:${mainPort}`;
  const stormUrl = `http://127.0.0.1:${stormPort}`;

  progress('starting the providers');
  const [provider, stormProvider] = await Promise.all([
    startProvider(mainUrl, MAIN_TOKEN_TTL_SECONDS),
    startProvider(stormUrl, STORM_TOKEN_TTL_SECONDS),
  ]);
  // The bench as the provider's client: timed sign-ins, and a real access token for the bare app.
  const own = await ownClient(provider.issuer, CLIENT_ID, CLIENT_SECRET, `${mainUrl}/callback`);
  const { access_token: accessToken } = await signInAtProvider(own);

  progress('starting codeflow and the bare app');
  const [codeflow, bare, stormApp] = await Promise.all([
    startCodeflow({ provider, port: mainPort }),
    startBareApp(provider, accessToken),
    // Behind the storm deployment's public URL; the Redis instances join it later.
    startCodeflow({ provider: stormProvider, publicUrl: stormUrl, env: STORM_ENV }),
  ]);
  const cookies = { codeflow: await signInThroughApp(codeflow.url), bare: await bareCookie(bare) };
  // For the throughput rounds only: the servers under test on CPU 1, the load and the provider on
  // CPU 0 (one server is loaded at a time). Everything gets every CPU back afterwards, so the
  // sign-in timing below does not favour one path.
  const pinnedPids = [codeflow.child.pid, bare.child.pid, process.pid, provider.child.pid];
  const pinned = [codeflow.child.pid, bare.child.pid].every((pid) => pinToCpus(pid, '1'));
  for (const pid of [process.pid, provider.child.pid]) pinToCpus(pid, '0');
  progress(
    pinned
      ? 'servers pinned to CPU 1, load to CPU 0'
      : 'not pinned (taskset or a second CPU missing)',
  );
  const target = (name: 'codeflow' | 'bare', app: RunningApp, path: string): Target => ({
    name: `${name} ${path}`,
    url: `${app.url}${path}`,
    cookie: cookies[name],
    server: app.child,
    // /dashboard calls the provider's demo API: its CPU is part of the picture.
    ...(path === '/dashboard' && { upstream: provider.child }),
  });

  progress(`throughput: ${SETTINGS.rounds} rounds × 4 × ${SETTINGS.secondsPerRound} s`);
  const summaries = await interleavedRounds(
    [
      target('bare', bare, '/me'),
      target('codeflow', codeflow, '/me'),
      target('bare', bare, '/dashboard'),
      target('codeflow', codeflow, '/dashboard'),
    ],
    SETTINGS,
    progress,
  );
  for (const pid of pinnedPids) pinToCpus(pid, ALL_CPUS);
  progress(`sign-in time: ${SIGN_INS} through codeflow, ${SIGN_INS} at the provider alone`);
  const signIn = await measureSignIns(codeflow.url, own, SIGN_INS);
  progress('refresh storm, one process');
  const storm = await refreshStorm(stormProvider, stormApp.url, [stormApp.url]);
  progress('Redis: bytes per session, refresh storm across two instances');
  const multiInstance = await measureMultiInstance(stormProvider, stormPort);
  progress('in-process store: bytes per session');
  const memoryStore = await measureMemoryStore(provider, mainUrl);

  const cpu = cpus();
  return {
    startedAt,
    machine: {
      cpu: cpu[0]?.model ?? 'unknown',
      cores: cpu.length,
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
    },
    settings: { ...SETTINGS, signIns: SIGN_INS, pinned },
    throughput: Object.fromEntries(summaries.map((s) => [s.name, s])),
    signIn,
    storm,
    multiInstance,
    memoryStore,
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  setTimeout(() => {
    console.error('bench: over 5 minutes; stopping everything');
    cleanUpNow();
    process.exit(1);
  }, DEADLINE_MS).unref();
  process.on('exit', cleanUpNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal}: stopping the child processes`);
      void stopAll().finally(() => process.exit(130));
    });
  }

  let measurements: Measurements;
  try {
    measurements = await measure();
  } finally {
    await stopAll();
  }
  const results = {
    ...measurements,
    secondsTaken: (performance.now() - started) / 1000,
    goals: evaluateGoals(measurements),
  };
  printReport(results, await writeResults(results));
}

try {
  await main();
} catch (err) {
  console.error(`\nbench failed: ${err instanceof Error ? (err.stack ?? err.message) : err}`);
  process.exitCode = 1;
}
// Keep-alive sockets and clients of the in-process app must not hold the run open.
process.exit();
