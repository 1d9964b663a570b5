import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, RESP_TYPES } from 'redis';
import type { Logger } from '../log.js';
import type { SealedRecord, WriteOutcome } from '../tokens/token-store.js';
import {
  STORE_TIMEOUT_MS,
  TOMBSTONE_TTL_MS,
  type RefreshLock,
  type SessionBackend,
} from './backend.js';

const key = {
  session: (sid: string) => `codeflow:sess:${sid}`,
  tokens: (sid: string) => `codeflow:tok:${sid}`,
  ended: (sid: string) => `codeflow:ended:${sid}`,
  lock: (sid: string) => `codeflow:refresh-lock:${sid}`,
};

// Each script is one atomic step on the server: no other command runs between its check and its write.

/** KEYS: session, ended. ARGV: value, ttl ms. A session that has ended is never written again. */
const SET_SESSION = `
if redis.call('exists', KEYS[2]) == 1 then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/** KEYS: tokens, ended. ARGV: expected version, new version, sealed, ttl ms. */
const WRITE_TOKENS = `
if redis.call('exists', KEYS[2]) == 1 then return 'ended' end
local stored = tonumber(redis.call('hget', KEYS[1], 'v') or '0')
if stored ~= tonumber(ARGV[1]) then return 'conflict' end
redis.call('hset', KEYS[1], 'v', ARGV[2], 't', ARGV[3])
redis.call('pexpire', KEYS[1], ARGV[4])
return 'written'`;

/** KEYS: session, tokens, ended. ARGV: tombstone ttl ms. Returns the tokens it deleted. */
const END = `
local held = redis.call('hmget', KEYS[2], 'v', 't')
redis.call('set', KEYS[3], '1', 'PX', ARGV[1])
redis.call('del', KEYS[1], KEYS[2])
return held`;

/** KEYS: lock. ARGV: owner. Deletes the lock only if it is still ours (it may have expired and moved on). */
const RELEASE = `
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`;

const LOCK_TTL_MS = 10_000;
const LOCK_WAIT_MS = 8_000;
const LOCK_POLL_MS = 25;

/**
 * Several instances: sessions, tokens, tombstones and refresh locks in Redis. Commands fail at once
 * while Redis is unreachable (no offline queue) and after {@link STORE_TIMEOUT_MS} when it hangs, so
 * pages answer 503 instead of waiting; the client reconnects by itself.
 */
export function redisBackend(url: string, logger: Logger): SessionBackend {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: STORE_TIMEOUT_MS,
      reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000),
    },
  });
  // Sealed tokens are bytes: read them as Buffers, not as UTF-8 text.
  const binary = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
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
      const owner = randomUUID();
      const deadline = Date.now() + LOCK_WAIT_MS;
      const take = () => client.set(key.lock(sid), owner, { NX: true, PX: LOCK_TTL_MS });
      while ((await withinDeadline(take())) !== 'OK') {
        if (Date.now() > deadline) throw new Error('timed out waiting for the refresh lock');
        await sleep(LOCK_POLL_MS);
      }
      // Released in the background: the response does not wait for it, and if Redis is gone the
      // lock expires by itself after LOCK_TTL_MS.
      return () =>
        void client
          .eval(RELEASE, { keys: [key.lock(sid)], arguments: [owner] })
          .catch(() => undefined);
    },
  };

  return {
    kind: 'redis',
    getSession: async (sid) => (await withinDeadline(client.get(key.session(sid)))) ?? undefined,
    async setSession(sid, value, ttlMs) {
      const keys = [key.session(sid), key.ended(sid)];
      const args = [value, String(ttlMs)];
      return (await withinDeadline(client.eval(SET_SESSION, { keys, arguments: args }))) === 1;
    },
    async touchSession(sid, ttlMs) {
      await withinDeadline(client.pExpire(key.session(sid), ttlMs));
    },
    tokens: {
      async read(sid) {
        const [version, sealed] = await withinDeadline(binary.hmGet(key.tokens(sid), ['v', 't']));
        return toRecord(version, sealed);
      },
      async write(sid, next, expectedVersion, ttlMs) {
        const keys = [key.tokens(sid), key.ended(sid)];
        const args = [String(expectedVersion), String(next.version), next.sealed, String(ttlMs)];
        const outcome = await withinDeadline(client.eval(WRITE_TOKENS, { keys, arguments: args }));
        return String(outcome) as WriteOutcome;
      },
    },
    async end(sid) {
      const keys = [key.session(sid), key.tokens(sid), key.ended(sid)];
      const args = [String(TOMBSTONE_TTL_MS)];
      const held = await withinDeadline(binary.eval(END, { keys, arguments: args }));
      const [version, sealed] = held as [Buffer | null, Buffer | null];
      return toRecord(version, sealed);
    },
    lock,
    ping: async () => void (await withinDeadline(client.ping())),
    close: async () => {
      await client.close().catch(() => undefined);
    },
  };
}

/**
 * The command's answer, or a rejection after STORE_TIMEOUT_MS. node-redis's own command timeout
 * stops counting once the command is written, so it never fires for a server that has stopped
 * answering; this does. A late answer is dropped (the client's reply queue stays in order).
 */
function withinDeadline<T>(command: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error('redis did not answer in time')), STORE_TIMEOUT_MS);
  });
  return Promise.race([command, deadline]).finally(() => clearTimeout(timer));
}

function toRecord(
  version: Buffer | string | null | undefined,
  sealed: Buffer | string | null | undefined,
): SealedRecord | undefined {
  if (!version || !Buffer.isBuffer(sealed)) return undefined;
  return { version: Number(version.toString()), sealed };
}
