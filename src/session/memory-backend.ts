import type { SealedRecord, WriteOutcome } from '../tokens/token-store.js';
import { TOMBSTONE_TTL_MS, type SessionBackend } from './backend.js';
import { ExpiringMap } from './expiring-map.js';

export interface MemoryBackend extends SessionBackend {
  /** Bytes held for sessions and tokens (keys and values), for the benchmark's size report. */
  bytesStored(): number;
}

/** Sessions one process keeps at most; past it, the ones written longest ago are dropped. */
export const DEFAULT_MAX_SESSIONS = 10_000;
const SWEEP_INTERVAL_MS = 60_000;

/**
 * One process (development, tests): sessions, tokens and tombstones in bounded, expiring maps. Each
 * call runs to completion before any other, so every check is atomic with its write by construction.
 * Values are stored encoded, as Redis would hold them, so no request shares an object with another.
 */
export function memoryBackend(maxSessions = DEFAULT_MAX_SESSIONS): MemoryBackend {
  const sessions = new ExpiringMap<string>(maxSessions);
  const tokens = new ExpiringMap<SealedRecord>(maxSessions);
  // Tombstones are small and must not be pushed out by a burst of sign-outs within their 10
  // minutes (an evicted one would let a late save through): ten times the room.
  const ended = new ExpiringMap<true>(maxSessions * 10);
  const sweeper = setInterval(() => {
    for (const map of [sessions, tokens, ended]) map.sweep();
  }, SWEEP_INTERVAL_MS);
  sweeper.unref();

  return {
    kind: 'memory',
    getSession: async (sid) => sessions.get(sid),
    async setSession(sid, value, ttlMs) {
      if (ended.get(sid)) return false;
      sessions.set(sid, value, ttlMs);
      return true;
    },
    touchSession: async (sid, ttlMs) => sessions.touch(sid, ttlMs),
    tokens: {
      read: async (sid) => tokens.get(sid),
      async write(sid, next, expectedVersion, ttlMs): Promise<WriteOutcome> {
        if (ended.get(sid)) return 'ended';
        if ((tokens.get(sid)?.version ?? 0) !== expectedVersion) return 'conflict';
        tokens.set(sid, next, ttlMs);
        return 'written';
      },
    },
    async end(sid) {
      ended.set(sid, true, TOMBSTONE_TTL_MS);
      sessions.delete(sid);
      return tokens.delete(sid);
    },
    // One process needs no lock: the in-process single-flight already serialises refreshes.
    lock: { acquire: async () => () => undefined },
    ping: async () => undefined,
    close: async () => clearInterval(sweeper),
    bytesStored() {
      let bytes = 0;
      for (const value of sessions.values()) bytes += 32 + Buffer.byteLength(value);
      for (const value of tokens.values()) bytes += 32 + value.sealed.length + 4;
      return bytes;
    },
  };
}
