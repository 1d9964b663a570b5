import type { SealedRecord, WriteOutcome } from '../tokens/token-store.js';
import { FLOW_MAX_EVENTS, TOMBSTONE_TTL_MS, type SessionBackend } from './backend.js';
import { ExpiringMap } from './expiring-map.js';
import {
  newestFirst,
  personKey,
  providerSessionKey,
  type IndexedSession,
  type SessionEntry,
  type SessionIndex,
} from './session-index.js';

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
  // Logout tokens' ids, for as long as a replay could still pass the token's age check.
  const remembered = new ExpiringMap<true>(maxSessions * 10);
  const index = memoryIndex(maxSessions, (sid) => ended.get(sid) !== undefined);
  const flows = new ExpiringMap<string[]>(maxSessions);
  const sweeper = setInterval(() => {
    for (const map of [sessions, tokens, ended, remembered, flows]) map.sweep();
    index.sweep();
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
    async touchSession(sid, ttlMs, seenAt) {
      sessions.touch(sid, ttlMs);
      index.touch(sid, ttlMs, seenAt);
    },
    tokens: {
      read: async (sid) => tokens.get(sid),
      async write(sid, next, expectedVersion, ttlMs): Promise<WriteOutcome> {
        if (ended.get(sid)) return 'ended';
        if ((tokens.get(sid)?.version ?? 0) !== expectedVersion) return 'conflict';
        tokens.set(sid, next, ttlMs);
        return 'written';
      },
    },
    index,
    flow: {
      async append(sid, events, ttlMs) {
        if (ended.get(sid)) return;
        flows.set(sid, [...(flows.get(sid) ?? []), ...events].slice(-FLOW_MAX_EVENTS), ttlMs);
      },
      read: async (sid) => [...(flows.get(sid) ?? [])],
    },
    async end(sid) {
      ended.set(sid, true, TOMBSTONE_TTL_MS);
      sessions.delete(sid);
      index.remove(sid);
      flows.delete(sid);
      return tokens.delete(sid);
    },
    async remember(key, ttlMs) {
      if (remembered.get(key)) return false;
      remembered.set(key, true, ttlMs);
      return true;
    },
    sessionsActive: () => index.size(),
    // One process needs no lock: the in-process single-flight already serialises refreshes.
    lock: { acquire: async () => () => undefined },
    ping: async () => undefined,
    close: async () => clearInterval(sweeper),
    bytesStored() {
      let bytes = 0;
      for (const value of sessions.values()) bytes += 32 + Buffer.byteLength(value);
      for (const value of tokens.values()) bytes += 32 + value.sealed.length + 4;
      for (const events of flows.values()) for (const e of events) bytes += Buffer.byteLength(e);
      return bytes + index.bytes();
    },
  };
}

/** The index in one process: entries expire with their sessions; the sets are pruned as they are read. */
function memoryIndex(maxSessions: number, hasEnded: (sid: string) => boolean) {
  const entries = new ExpiringMap<IndexedSession>(maxSessions);
  const byPerson = new Map<string, Set<string>>();
  const byProviderSession = new Map<string, Set<string>>();
  const setKeys = (e: SessionEntry) => [
    [byPerson, personKey(e.iss, e.sub)] as const,
    ...(e.providerSid
      ? [[byProviderSession, providerSessionKey(e.iss, e.providerSid)] as const]
      : []),
  ];
  /** Live members of a set; the others leave it. */
  function live(sets: Map<string, Set<string>>, key: string): IndexedSession[] {
    const sids = sets.get(key);
    const found: IndexedSession[] = [];
    for (const sid of sids ?? []) {
      const entry = entries.get(sid);
      if (entry) found.push(structuredClone(entry));
      else sids!.delete(sid);
    }
    if (sids?.size === 0) sets.delete(key);
    return newestFirst(found);
  }

  const index: SessionIndex = {
    async add(sid, entry, ttlMs) {
      if (hasEnded(sid)) return;
      entries.set(sid, { ...entry, sid, lastSeenAt: entry.signedInAt }, ttlMs);
      for (const [sets, key] of setKeys(entry)) {
        const sids = sets.get(key) ?? new Set<string>();
        sets.set(key, sids.add(sid));
      }
    },
    list: async ({ iss, sub }) => live(byPerson, personKey(iss, sub)),
    byProviderSession: async (iss, providerSid) =>
      live(byProviderSession, providerSessionKey(iss, providerSid)),
  };
  return {
    ...index,
    touch(sid: string, ttlMs: number, seenAt: number) {
      const entry = entries.get(sid);
      if (!entry) return;
      entry.lastSeenAt = seenAt;
      entries.touch(sid, ttlMs);
    },
    remove(sid: string) {
      const entry = entries.delete(sid);
      if (entry) for (const [sets, key] of setKeys(entry)) live(sets, key);
    },
    sweep() {
      entries.sweep();
      for (const sets of [byPerson, byProviderSession])
        for (const key of sets.keys()) live(sets, key);
    },
    /** The entries as JSON, with their keys and set members, for the benchmark's size report. */
    bytes() {
      let bytes = 0;
      for (const entry of entries.values())
        bytes += 2 * 32 + Buffer.byteLength(JSON.stringify(entry));
      return bytes;
    },
    /** Live entries only: the expired ones are swept first (a scrape every few seconds; at most 10,000). */
    size() {
      entries.sweep();
      return entries.size;
    },
  };
}
