/**
 * A throwaway redis-server for the multi-instance rows, and what codeflow keeps in it: bytes per
 * key (key + value, as the goal counts them), Redis's own MEMORY USAGE, and time to live.
 */
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { freePort, spawnTracked } from './processes.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

export interface BenchRedis {
  url: string;
  client: ReturnType<typeof createClient>;
  close(): Promise<void>;
}

/** redis-server on a free 127.0.0.1 port, no persistence; undefined when it is not installed. */
export async function startRedis(): Promise<BenchRedis | undefined> {
  if (!existsSync(REDIS_SERVER)) return undefined;
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  spawnTracked('redis-server', REDIS_SERVER, args);
  const url = `redis://127.0.0.1:${port}`;
  const client = createClient({ url, socket: { reconnectStrategy: false } });
  client.on('error', () => undefined);
  for (let attempt = 0; attempt < 100; attempt++) {
    if (
      await client.connect().then(
        () => true,
        () => false,
      )
    ) {
      return { url, client, close: () => client.close().catch(() => undefined) };
    }
    await sleep(50);
  }
  throw new Error('redis-server did not start within 5 s');
}

export interface StoredKey {
  /** The key with its session id left out, e.g. "codeflow:sess:…" (ids are not worth keeping). */
  kind: string;
  /** Key length + value length (string) or field + value lengths (hash), in bytes. */
  bytes: number;
  /** MEMORY USAGE: what Redis really spends, overheads included (informational). */
  memoryUsage: number;
  /** PTTL in ms; null when the key never expires. */
  ttlMs: number | null;
}

export interface StoredKeys {
  keys: StoredKey[];
  bytes: number;
  memoryUsage: number;
  /** The longest any of them stays; null when one never expires. */
  maxTtlMs: number | null;
}

/** Every codeflow key now present. */
export async function codeflowKeys(redis: BenchRedis): Promise<string[]> {
  return redis.client.keys('codeflow:*');
}

/** undefined when the key is gone already (it expired or was deleted meanwhile). */
async function measureKey(redis: BenchRedis, key: string): Promise<StoredKey | undefined> {
  const { client } = redis;
  let bytes = Buffer.byteLength(key);
  const type = await client.type(key);
  if (type === 'none') return undefined;
  if (type === 'string') bytes += await client.strLen(key);
  else if (type === 'hash') {
    // HSTRLEN, not the length of the value read back: sealed tokens are bytes, not UTF-8.
    for (const field of await client.hKeys(key)) {
      bytes += Buffer.byteLength(field) + Number(await client.hStrLen(key, field));
    }
  } else if (type === 'set') {
    // The session index's sets: one member per session id.
    for (const member of await client.sMembers(key)) bytes += Buffer.byteLength(member);
  } else if (type === 'list') {
    // The flow panel's events: one item per event.
    for (const item of await client.lRange(key, 0, -1)) bytes += Buffer.byteLength(item);
  } else
    throw new Error(`${key}: a ${type}; the bench counts strings, hashes, sets and lists only`);
  const ttl = await client.pTTL(key);
  return {
    kind: `${key.slice(0, key.lastIndexOf(':') + 1)}…`,
    bytes,
    memoryUsage: Number(await client.sendCommand(['MEMORY', 'USAGE', key])),
    ttlMs: ttl >= 0 ? ttl : null,
  };
}

/** What `keys` hold, counted as the goals count. */
export async function measureKeys(redis: BenchRedis, keys: string[]): Promise<StoredKeys> {
  const measured: StoredKey[] = [];
  for (const key of keys) {
    const one = await measureKey(redis, key);
    if (one) measured.push(one);
  }
  const ttls = measured.map((k) => k.ttlMs);
  return {
    keys: measured,
    bytes: measured.reduce((n, k) => n + k.bytes, 0),
    memoryUsage: measured.reduce((n, k) => n + k.memoryUsage, 0),
    maxTtlMs: ttls.some((t) => t === null) ? null : Math.max(0, ...(ttls as number[])),
  };
}

/**
 * The keys that `step` added (what one anonymous visit or one sign-in leaves behind). With
 * `belongs`, only those it accepts; the rest are measured apart as `others`.
 */
export async function keysAddedBy<T>(
  redis: BenchRedis,
  step: () => Promise<T>,
  belongs: (key: string, result: T) => boolean = () => true,
): Promise<StoredKeys & { others: StoredKeys }> {
  const before = new Set(await codeflowKeys(redis));
  const result = await step();
  const added = (await codeflowKeys(redis)).filter((k) => !before.has(k));
  return {
    ...(await measureKeys(
      redis,
      added.filter((k) => belongs(k, result)),
    )),
    others: await measureKeys(
      redis,
      added.filter((k) => !belongs(k, result)),
    ),
  };
}

/** The session id in a codeflow Cookie header (`codeflow.sid=s%3A<id>.<signature>`). */
export function sessionIdOf(cookie: string): string {
  const value = decodeURIComponent(/codeflow\.sid=([^;]+)/.exec(cookie)?.[1] ?? '');
  return value.slice(2, value.lastIndexOf('.'));
}
