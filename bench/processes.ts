/**
 * The bench's child processes: started on free 127.0.0.1 ports, tracked here, and all stopped by
 * PID at the end, whatever the end is (return, error, SIGINT, an unexpected exit).
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const children = new Set<ChildProcess>();

/** A port nothing listens on now. Another process could take it before ours does; on loopback, rare. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

export interface Child {
  pid: number;
  name: string;
  process: ChildProcess;
}

/** Starts `command` and tracks it, so stopAll() ends it. */
export function spawnTracked(
  name: string,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdio?: StdioOptions; cwd?: string } = {},
): Child {
  const child = spawn(command, args, {
    env: options.env,
    stdio: options.stdio ?? 'ignore',
    cwd: options.cwd,
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return { pid: child.pid, name, process: child };
}

/**
 * The children's working directory: an empty one. codeflow loads `.env` from its working
 * directory, and a developer's .env (REDIS_URL, LOG_LEVEL, NODE_ENV) must not change what is measured.
 */
const WORK_DIR = mkdtempSync(join(tmpdir(), 'codeflow-bench-'));
const TSX_LOADER = import.meta.resolve('tsx');

/**
 * A TypeScript entry point under `node --import tsx`: codeflow, the bare app and the provider all
 * pay the same loader cost. The node process itself is the child, so its PID is the one measured.
 * `script` is relative to the repository's root.
 */
export function spawnTsx(
  name: string,
  script: string,
  env: Record<string, string>,
  stdio: StdioOptions = 'ignore',
  nodeArgs: readonly string[] = [],
): Child {
  const path = fileURLToPath(new URL(`../${script}`, import.meta.url));
  // A clean environment too: nothing from the shell (NODE_ENV, LOG_LEVEL, REDIS_URL) leaks in.
  const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  return spawnTracked(name, process.execPath, [...nodeArgs, '--import', TSX_LOADER, path], {
    env: { ...base, ...env },
    stdio,
    cwd: WORK_DIR,
  });
}

/** Shows a child's stderr (spawned with stderr 'pipe') on ours, less the lines `drop` matches. */
export function forwardStderr(child: Child, drop: RegExp): void {
  const stderr = child.process.stderr;
  if (!stderr) return;
  createInterface({ input: stderr }).on('line', (line) => {
    if (!drop.test(line)) console.error(`${child.name}: ${line}`);
  });
}

/** Polls `url` until `ready(status)` (bounded by `timeoutMs`); fails at once if the child exits. */
export async function waitForHttp(
  child: Child,
  url: string,
  ready: (status: number) => boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null || child.process.signalCode !== null) {
      throw new Error(
        `${child.name} exited (${child.process.exitCode ?? child.process.signalCode}) before ` +
          `answering ${url}; run it by hand to see why`,
      );
    }
    const status = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(2000) })
      .then(async (res) => (await res.arrayBuffer(), res.status))
      .catch(() => 0);
    if (status !== 0 && ready(status)) return;
    await sleep(100);
  }
  throw new Error(`${child.name} did not answer ${url} within ${timeoutMs} ms`);
}

/** SIGTERM to every child, then SIGKILL to those still running after 3 s. */
export async function stopAll(): Promise<void> {
  const running = [...children];
  const exited = running.map(
    (c) =>
      new Promise<void>((resolve) =>
        c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve()),
      ),
  );
  for (const c of running) c.kill('SIGTERM');
  const timer = setTimeout(() => running.forEach((c) => c.kill('SIGKILL')), 3000);
  await Promise.all(exited);
  clearTimeout(timer);
}

/** On any exit (the last resort when it was not planned): SIGKILL to whatever is left, synchronously. */
export function cleanUpNow(): void {
  for (const c of children) c.kill('SIGKILL');
  rmSync(WORK_DIR, { recursive: true, force: true });
}

const CLOCK_TICKS_PER_SECOND = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = Number(out.stdout?.trim());
  return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
})();

/** CPU time (user + system) a process has used so far, in milliseconds, from /proc/<pid>/stat. */
export function cpuMillis(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (2nd field) may hold spaces: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Pins a process (all its threads) to `cpus` (e.g. "1", or "0-1" to free it again) with taskset,
 * where there are at least two CPUs and taskset is installed: during the throughput rounds, the
 * server under test on one core and the load (autocannon, the provider) on the other, so the
 * scheduler's placement does not move the figures between runs.
 * @returns whether it pinned.
 */
export function pinToCpus(pid: number, cpus: string): boolean {
  if (availableParallelism() < 2) return false;
  const done = spawnSync('taskset', ['-a', '-c', '-p', cpus, String(pid)], { stdio: 'ignore' });
  return done.status === 0;
}

/** Every CPU, as taskset lists them: what a process gets back after the pinned rounds. */
export const ALL_CPUS = `0-${availableParallelism() - 1}`;
