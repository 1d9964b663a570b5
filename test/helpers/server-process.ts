import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * `src/server.ts` as a real process, as a container orchestrator runs it: started with its
 * environment, stopped by its PID. The rest of the suite builds the app in-process and never sees
 * server.ts: its listen address, its signal handlers or its exit code.
 */

export const SESSION_SECRET = 'shutdown-test-session-secret-0123456789abcdef';
export const START_TIMEOUT_MS = 15_000;
/** The repository this file is in: `src/server.ts` and `--import tsx` below resolve against it. */
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  stdout: () => string;
  stderr: () => string;
  /** Settles once, when the process exits, with its code and signal and when it happened. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Stops it by its PID, hard, unless it has exited already; resolves once it has. */
  kill: () => Promise<void>;
}

/** `src/server.ts` as a real process, with only `env` (and PATH, SESSION_SECRET) in its environment. */
export function spawnServer(env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, SESSION_SECRET, ...env },
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    at: Date.now(),
  }));
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid!, 'SIGKILL');
    await within(exited, 5_000, 'the child to die after SIGKILL').catch(() => undefined);
  };
  return { child, pid: child.pid!, stdout: () => out, stderr: () => err, exited, kill };
}

/** Rejects with a readable message when `promise` takes longer than `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Resolves when `text` has appeared in the child's stdout; rejects if it exits first. */
export async function waitForStdout(app: ServerProcess, text: string, ms: number): Promise<void> {
  const seen = new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!app.stdout().includes(text)) return;
      app.child.stdout!.off('data', check);
      resolve();
    };
    app.child.stdout!.on('data', check);
    app.exited.then(
      () => reject(new Error(`exited before printing "${text}":\n${app.stdout()}${app.stderr()}`)),
      reject,
    );
    check();
  });
  await within(seen, ms, `"${text}" on stdout`);
}

/** The child's log: one JSON object per stdout line. */
export function logLines(app: Pick<ServerProcess, 'stdout'>): Array<Record<string, unknown>> {
  return app
    .stdout()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** GET over a brand-new connection: its status, or the connection error's code. */
export function getOnNewConnection(url: string): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
}
