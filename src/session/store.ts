import { randomUUID } from 'node:crypto';
import { RedisStore } from 'connect-redis';
import { MemoryStore, type Store } from 'express-session';
import { createClient } from 'redis';
import type { Logger } from '../log.js';
import { SESSION_IDLE_MS } from './session.js';

/** Serialises refreshes of one session across every instance that shares the store. */
export interface RefreshLock {
  /** Waits (bounded) until this instance holds the lock for `sid`; returns its release. */
  acquire(sid: string): Promise<() => Promise<void>>;
}

export interface SessionBackend {
  store: Store;
  lock: RefreshLock;
  close(): Promise<void>;
}

/** One process: express-session's memory store; the in-process single-flight needs no lock. */
export function memoryBackend(): SessionBackend {
  return {
    store: new MemoryStore(),
    lock: { acquire: async () => async () => undefined },
    close: async () => undefined,
  };
}

const LOCK_TTL_MS = 10_000;
const LOCK_WAIT_MS = 8_000;
const LOCK_POLL_MS = 25;
// Deletes the lock only if it is still ours (it may have expired and been taken by another instance).
const RELEASE =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/**
 * Several instances: sessions, login transactions and refresh locks in Redis. Commands fail fast
 * while Redis is unreachable (no offline queue), so pages answer 503 at once instead of hanging,
 * and the client reconnects by itself.
 */
export async function redisBackend(url: string, logger: Logger): Promise<SessionBackend> {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 2000,
      reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000),
    },
  });
  let reported = false;
  // The URL may hold a password: log the error's code only.
  client.on('error', (err: { code?: string; message?: string }) => {
    if (!reported) logger.warn({ code: err.code ?? err.message }, 'redis unavailable; retrying');
    reported = true;
  });
  client.on('ready', () => {
    if (reported) logger.info('redis available again');
    reported = false;
  });
  // Do not block the start on Redis: the app serves 503s until it is reachable.
  client.connect().catch(() => undefined);

  const lock: RefreshLock = {
    async acquire(sid) {
      const key = `codeflow:refresh-lock:${sid}`;
      const token = randomUUID();
      const deadline = Date.now() + LOCK_WAIT_MS;
      for (;;) {
        if ((await client.set(key, token, { NX: true, PX: LOCK_TTL_MS })) === 'OK') {
          return async () => {
            await client.eval(RELEASE, { keys: [key], arguments: [token] }).catch(() => undefined);
          };
        }
        if (Date.now() > deadline) throw new Error('timed out waiting for the refresh lock');
        await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
      }
    },
  };

  return {
    store: new RedisStore({ client, prefix: 'codeflow:sess:', ttl: SESSION_IDLE_MS / 1000 }),
    lock,
    close: async () => {
      await client.close().catch(() => undefined);
    },
  };
}
