import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, RESP_TYPES } from 'redis';
import { startHarness, startSecondInstance, type Harness } from './harness.js';

const REDIS_SERVER = '/usr/bin/redis-server';

/** Whether the Redis suite runs: redis-server installed. With CI set it must be. */
export function redisAvailable(): boolean {
  if (existsSync(REDIS_SERVER)) return true;
  if (process.env.CI)
    throw new Error(`CI is set but ${REDIS_SERVER} is missing: apt-get install -y redis-server`);
  return false;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

export interface TestRedis {
  url: string;
  /** Keys currently stored and their values (a hash's fields joined), as Latin-1 text, for asserting what is (not) at rest. */
  dump(): Promise<Record<string, string>>;
  /** Kills the server (connections refused until start()). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, commands hang. */
  freeze(): void;
  thaw(): void;
}

/** A throwaway redis-server on a free 127.0.0.1 port, without persistence; stopped by PID. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  async function start() {
    child = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    for (let i = 0; i < 100; i++) {
      const ping = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
      if (ping.stdout.trim() === 'PONG') return;
      await sleep(50);
    }
    throw new Error('redis-server did not start');
  }
  async function stop() {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await exited;
  }
  await start();
  return {
    url,
    async dump() {
      // Values may be bytes (sealed tokens): read them as Buffers and keep every byte.
      const client = createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
      await client.connect();
      const out: Record<string, string> = {};
      for (const key of await client.keys('*')) {
        const name = key.toString();
        const type = await client.type(key);
        const value =
          type === 'hash'
            ? Object.entries(await client.hGetAll(key)).flat()
            : type === 'set'
              ? await client.sMembers(key)
              : type === 'list'
                ? await client.lRange(key, 0, -1)
                : [await client.get(key)];
        out[name] = value.map((v) => (v ?? '').toString('latin1')).join('\n');
      }
      await client.close();
      return out;
    },
    stop,
    start,
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
  };
}

export interface TwoInstances {
  redis: TestRedis;
  a: Harness;
  b: Harness;
  /** Closes B, then A, then stops Redis. */
  close(): Promise<void>;
}

/**
 * A throwaway Redis and two codeflow instances on it: A with the embedded provider, B behind A's
 * public URL, talking to A's provider as an ordinary external issuer (startSecondInstance).
 */
export async function startTwoInstances(
  envA: Record<string, string> = {},
  envB: Record<string, string> = {},
  optionsA: Parameters<typeof startHarness>[1] = {},
): Promise<TwoInstances> {
  const redis = await startRedis();
  const a = await startHarness({ REDIS_URL: redis.url, ...envA }, optionsA);
  const b = await startSecondInstance(a, envB);
  return {
    redis,
    a,
    b,
    close: async () => {
      await b.close();
      await a.close();
      await redis.stop();
    },
  };
}
