import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store as RateLimitStore } from 'express-rate-limit';
import { createClient, RESP_TYPES } from 'redis';
import type { Logger } from '../log.js';
import type { SealedRecord, WriteOutcome } from '../tokens/token-store.js';
import {
  FLOW_MAX_EVENTS,
  STORE_TIMEOUT_MS,
  TOMBSTONE_TTL_MS,
  type RefreshLock,
  type SessionBackend,
} from './backend.js';
import {
  newestFirst,
  personKey,
  providerSessionKey,
  type IndexedSession,
  type IndexRef,
  type SessionEntry,
  type SessionIndex,
} from './session-index.js';

const key = {
  session: (sid: string) => `codeflow:sess:${sid}`,
  tokens: (sid: string) => `codeflow:tok:${sid}`,
  ended: (sid: string) => `codeflow:ended:${sid}`,
  lock: (sid: string) => `codeflow:refresh-lock:${sid}`,
  /** The session's index entry: hash {e: entry JSON, s: last seen}. */
  entry: (sid: string) => `codeflow:who:${sid}`,
  /** Sets of session ids: a person's, and a provider session's. */
  person: (ref: { iss: string; sub: string }) => `codeflow:person:${personKey(ref.iss, ref.sub)}`,
  providerSession: (iss: string, providerSid: string) =>
    `codeflow:psid:${providerSessionKey(iss, providerSid)}`,
  remembered: (name: string) => `codeflow:seen:${name}`,
  /** The session's protocol events: a list, oldest first. */
  flow: (sid: string) => `codeflow:flow:${sid}`,
};

/** The index sets a session is a member of. */
function setsOf(ref: IndexRef): string[] {
  return [
    key.person(ref),
    ...(ref.providerSid ? [key.providerSession(ref.iss, ref.providerSid)] : []),
  ];
}

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

/**
 * KEYS: session, tokens, ended, index entry, flow, then the index sets it belongs to (when known).
 * ARGV: tombstone ttl ms, sid. Returns the tokens it deleted.
 */
const END = `
local held = redis.call('hmget', KEYS[2], 'v', 't')
redis.call('set', KEYS[3], '1', 'PX', ARGV[1])
redis.call('del', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
for i = 6, #KEYS do redis.call('srem', KEYS[i], ARGV[2]) end
return held`;

/** KEYS: flow, ended. ARGV: ttl ms, max events, then the events. Never for an ended session. */
const FLOW_APPEND = `
if redis.call('exists', KEYS[2]) == 1 then return 0 end
for i = 3, #ARGV do redis.call('rpush', KEYS[1], ARGV[i]) end
redis.call('ltrim', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('pexpire', KEYS[1], ARGV[1])
return 1`;

/** KEYS: session, index entry. ARGV: ttl ms, last seen. Never creates either. */
const TOUCH = `
if redis.call('pexpire', KEYS[1], ARGV[1]) == 1 and redis.call('exists', KEYS[2]) == 1 then
  redis.call('pexpire', KEYS[2], ARGV[1])
  redis.call('hset', KEYS[2], 's', ARGV[2])
end
return 1`;

/**
 * KEYS: ended, index entry, then its sets. ARGV: entry JSON, signed in at, entry ttl ms, sid,
 * sets' ttl ms. A session that has ended is not indexed; a set lives as long as its longest member.
 */
const INDEX_ADD = `
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('hset', KEYS[2], 'e', ARGV[1], 's', ARGV[2])
redis.call('pexpire', KEYS[2], ARGV[3])
for i = 3, #KEYS do
  redis.call('sadd', KEYS[i], ARGV[4])
  if redis.call('pttl', KEYS[i]) < tonumber(ARGV[5]) then redis.call('pexpire', KEYS[i], ARGV[5]) end
end
return 1`;

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
    async touchSession(sid, ttlMs, seenAt) {
      const keys = [key.session(sid), key.entry(sid)];
      await withinDeadline(
        client.eval(TOUCH, { keys, arguments: [String(ttlMs), String(seenAt)] }),
      );
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
    index: redisIndex(client),
    flow: {
      async append(sid, events, ttlMs) {
        const keys = [key.flow(sid), key.ended(sid)];
        const args = [String(ttlMs), String(FLOW_MAX_EVENTS), ...events];
        await withinDeadline(client.eval(FLOW_APPEND, { keys, arguments: args }));
      },
      read: (sid) => withinDeadline(client.lRange(key.flow(sid), 0, -1)),
    },
    async end(sid, ref) {
      const keys = [
        key.session(sid),
        key.tokens(sid),
        key.ended(sid),
        key.entry(sid),
        key.flow(sid),
      ];
      if (ref) keys.push(...setsOf(ref));
      const args = [String(TOMBSTONE_TTL_MS), sid];
      const held = await withinDeadline(binary.eval(END, { keys, arguments: args }));
      const [version, sealed] = held as [Buffer | null, Buffer | null];
      return toRecord(version, sealed);
    },
    async remember(name, ttlMs) {
      const set = client.set(key.remembered(name), '1', { NX: true, PX: ttlMs });
      return (await withinDeadline(set)) === 'OK';
    },
    rateLimitStore: (name) => rateLimitStore(client, name),
    lock,
    ping: async () => void (await withinDeadline(client.ping())),
    close: async () => {
      await client.close().catch(() => undefined);
    },
  };
}

type Client = ReturnType<typeof createClient>;

/** KEYS: counter. ARGV: window ms. Counts a hit; the window starts with the first. Returns {hits, ms left}. */
const COUNT_HIT = `
local hits = redis.call('incr', KEYS[1])
if hits == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end
return {hits, redis.call('pttl', KEYS[1])}`;

/**
 * express-rate-limit's counters in Redis, shared by every instance: one fixed window per client
 * address, counted and expired in one step. (rate-limit-redis loads its scripts once, when the
 * limiter is made; with Redis not yet connected at that moment, every later count failed and the
 * limit was silently off. A script sent with each call has no such state.)
 */
function rateLimitStore(client: Client, name: string): RateLimitStore {
  const counter = (address: string) => `codeflow:rate:${name}:${address}`;
  let windowMs = 60_000;
  return {
    prefix: `codeflow:rate:${name}:`,
    init: (options) => void (windowMs = options.windowMs),
    async increment(address) {
      const args = { keys: [counter(address)], arguments: [String(windowMs)] };
      const [hits, left] = (await withinDeadline(client.eval(COUNT_HIT, args))) as [number, number];
      return { totalHits: hits, resetTime: new Date(Date.now() + Math.max(left, 0)) };
    },
    async decrement(address) {
      await withinDeadline(client.decr(counter(address)));
    },
    async resetKey(address) {
      await withinDeadline(client.del(counter(address)));
    },
  };
}

/** The index in Redis: an entry hash per session, a set of session ids per person and per provider session. */
function redisIndex(client: Client): SessionIndex {
  /** The live sessions among a set's members, in two round trips; members whose entry has gone leave the set. */
  async function live(setKey: string): Promise<IndexedSession[]> {
    const sids = await withinDeadline(client.sMembers(setKey));
    if (sids.length === 0) return [];
    const multi = client.multi();
    for (const sid of sids) multi.hmGet(key.entry(sid), ['e', 's']);
    const rows = (await withinDeadline(multi.exec())) as unknown as (string | null)[][];
    const found: IndexedSession[] = [];
    const gone: string[] = [];
    rows.forEach(([entry, seen], i) => {
      const sid = sids[i]!;
      if (!entry) return void gone.push(sid);
      const parsed = JSON.parse(entry) as SessionEntry;
      found.push({ ...parsed, sid, lastSeenAt: Number(seen ?? parsed.signedInAt) });
    });
    if (gone.length > 0) client.sRem(setKey, gone).catch(() => undefined);
    return newestFirst(found);
  }

  return {
    async add(sid, entry, ttlMs, lifetimeMs) {
      const keys = [key.ended(sid), key.entry(sid), ...setsOf(entry)];
      const args = [
        JSON.stringify(entry),
        String(entry.signedInAt),
        String(ttlMs),
        sid,
        String(lifetimeMs),
      ];
      await withinDeadline(client.eval(INDEX_ADD, { keys, arguments: args }));
    },
    list: (person) => live(key.person(person)),
    byProviderSession: (iss, providerSid) => live(key.providerSession(iss, providerSid)),
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
