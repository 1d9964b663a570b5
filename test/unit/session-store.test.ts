import { afterEach, describe, expect, it } from 'vitest';
import type { LoginTransaction } from '../../src/auth/transactions.js';
import { ExpiringMap } from '../../src/session/expiring-map.js';
import { memoryBackend, type MemoryBackend } from '../../src/session/memory-backend.js';
import { SESSION_IDLE_MS, storeLifetimeMs } from '../../src/session/session.js';
import type { SealedRecord } from '../../src/tokens/token-store.js';

const now = 1_700_000_000;
const HOUR = 3600;
const user = { iss: 'https://issuer.example', sub: 'alice' };

function tx(createdAt: number): LoginTransaction {
  return { state: `s${createdAt}`, nonce: 'n', codeVerifier: 'v', returnTo: '/', createdAt };
}

describe('storeLifetimeMs', () => {
  it.each([
    ['a fresh sign-in (12 h max age) is kept for the 8 idle hours', now, 8 * HOUR * 1000],
    ['a sign-in 11 h old is kept for the hour its max age has left', now - 11 * HOUR, HOUR * 1000],
    ['a sign-in 1 s short of its max age is kept for that second', now - 12 * HOUR + 1, 1000],
  ])('%s', (_name, authenticatedAt, expected) => {
    expect(storeLifetimeMs({ user, authenticatedAt }, now, 12 * HOUR)).toBe(expected);
  });

  it.each([
    ['exactly at its max age', now - 12 * HOUR],
    ['an hour past its max age', now - 13 * HOUR],
  ])('keeps a signed-in session %s no longer (≤ 0)', (_name, authenticatedAt) => {
    expect(storeLifetimeMs({ user, authenticatedAt }, now, 12 * HOUR)).toBeLessThanOrEqual(0);
  });

  it('never keeps a signed-in session longer than the idle limit, whatever its max age', () => {
    expect(storeLifetimeMs({ user, authenticatedAt: now }, now, 30 * 24 * HOUR)).toBe(
      SESSION_IDLE_MS,
    );
  });

  it.each([
    ['one transaction made now', [now], 600_000],
    ['one transaction made 100 s ago', [now - 100], 500_000],
    ['the newest of several transactions', [now - 500, now - 30, now - 300], 570_000],
    ['only transactions older than 10 minutes', [now - 700, now - 601], -1000],
  ])('keeps a session with %s until the newest expires', (_name, created, expected) => {
    const transactions = Object.fromEntries(created.map((c) => [tx(c).state, tx(c)]));
    expect(storeLifetimeMs({ transactions }, now, 12 * HOUR)).toBe(expected);
  });

  it.each([
    ['nothing', {}],
    ['an empty transaction map', { transactions: {} }],
  ])('does not keep a session holding %s', (_name, session) => {
    expect(storeLifetimeMs(session, now, 12 * HOUR)).toBe(0);
  });
});

describe('ExpiringMap', () => {
  let clock = 0;
  const map = (max = 10) => new ExpiringMap<string>(max, () => clock);

  it('answers an entry until its expiry and forgets it from then on', () => {
    clock = 1000;
    const m = map();
    m.set('a', 'A', 500);
    clock = 1499;
    expect(m.get('a')).toBe('A');
    clock = 1500;
    expect(m.get('a')).toBeUndefined();
    expect(m.size).toBe(0);
  });

  it('moves the expiry of a live entry on touch, and does not bring back an expired one', () => {
    clock = 0;
    const m = map();
    m.set('live', 'L', 100);
    m.set('dead', 'D', 100);
    clock = 90;
    m.touch('live', 100);
    clock = 150;
    expect(m.get('live')).toBe('L');
    m.touch('dead', 1000);
    expect(m.get('dead')).toBeUndefined();
    m.touch('missing', 1000);
    expect(m.get('missing')).toBeUndefined();
    clock = 190;
    expect(m.get('live')).toBeUndefined();
  });

  it('drops expired entries on sweep and keeps live ones', () => {
    clock = 0;
    const m = map();
    m.set('short', 's', 10);
    m.set('long', 'l', 1000);
    m.set('short2', 's2', 20);
    clock = 20;
    expect(m.size).toBe(3);
    m.sweep();
    expect(m.size).toBe(1);
    expect([...m.values()]).toEqual(['l']);
  });

  it('drops the entry written longest ago beyond the cap, and re-setting a key makes it the newest', () => {
    clock = 0;
    const m = map(3);
    m.set('a', 'A', 1000);
    m.set('b', 'B', 1000);
    m.set('c', 'C', 1000);
    m.set('a', 'A2', 1000); // a is now the newest; b is the oldest
    m.set('d', 'D', 1000);
    expect(m.size).toBe(3);
    expect(m.get('b')).toBeUndefined();
    expect(m.get('a')).toBe('A2');
    expect(m.get('c')).toBe('C');
    expect(m.get('d')).toBe('D');
    m.set('e', 'E', 1000);
    expect(m.get('c')).toBeUndefined();
    expect([...m.values()]).toEqual(['A2', 'D', 'E']);
  });

  it('drops expired entries before live ones when the cap is reached', () => {
    clock = 0;
    const m = map(2);
    m.set('old-but-live', 'O', 1000);
    m.set('expiring', 'X', 10);
    clock = 20;
    m.set('new', 'N', 1000);
    expect(m.get('old-but-live')).toBe('O');
    expect(m.get('new')).toBe('N');
  });
});

describe('memoryBackend', () => {
  let backend: MemoryBackend;
  afterEach(async () => {
    await backend?.close();
  });

  const record = (version: number, text: string): SealedRecord => ({
    version,
    sealed: Buffer.from(text),
  });

  it('ends a session by handing back the tokens it held and then refuses to store it again', async () => {
    backend = memoryBackend();
    expect(await backend.setSession('sid', '{"user":1}', 60_000)).toBe(true);
    expect(await backend.tokens.write('sid', record(1, 'tokens-v1'), 0, 60_000)).toBe('written');
    const bytes = backend.bytesStored();
    expect(bytes).toBeGreaterThan(0);

    const held = await backend.end('sid');
    expect(held?.version).toBe(1);
    expect(held?.sealed.toString()).toBe('tokens-v1');
    expect(await backend.getSession('sid')).toBeUndefined();
    expect(await backend.tokens.read('sid')).toBeUndefined();
    expect(backend.bytesStored()).toBe(0);

    // A request that loaded the session before the sign-out saves it afterwards: dropped.
    expect(await backend.setSession('sid', '{"user":1}', 60_000)).toBe(false);
    expect(await backend.getSession('sid')).toBeUndefined();
    expect(backend.bytesStored()).toBe(0);
    // Touching does not bring it back either.
    await backend.touchSession('sid', 60_000, 1);
    expect(await backend.getSession('sid')).toBeUndefined();
    // Another session is unaffected.
    expect(await backend.setSession('other', '{}', 60_000)).toBe(true);
    expect(await backend.getSession('other')).toBe('{}');
  });

  it('refuses a token write that names the wrong version and keeps the stored record', async () => {
    backend = memoryBackend();
    expect(await backend.tokens.write('sid', record(1, 'first'), 0, 60_000)).toBe('written');
    expect(await backend.tokens.write('sid', record(2, 'second'), 1, 60_000)).toBe('written');
    // An older refresh, which read version 1, finishes last.
    expect(await backend.tokens.write('sid', record(2, 'stale'), 1, 60_000)).toBe('conflict');
    // One that believes there is nothing stored yet.
    expect(await backend.tokens.write('sid', record(1, 'fresh'), 0, 60_000)).toBe('conflict');
    const stored = await backend.tokens.read('sid');
    expect(stored?.version).toBe(2);
    expect(stored?.sealed.toString()).toBe('second');
  });

  it('answers "ended" to a token write after the session ended, and stores nothing', async () => {
    backend = memoryBackend();
    await backend.tokens.write('sid', record(1, 'first'), 0, 60_000);
    await backend.end('sid');
    expect(await backend.tokens.write('sid', record(2, 'late'), 1, 60_000)).toBe('ended');
    expect(await backend.tokens.write('sid', record(1, 'again'), 0, 60_000)).toBe('ended');
    expect(await backend.tokens.read('sid')).toBeUndefined();
    expect(backend.bytesStored()).toBe(0);
  });

  it('keeps its memory bounded by the session cap however many sessions are written', async () => {
    const cap = 5;
    backend = memoryBackend(cap);
    const value = 'x'.repeat(1000);
    const tokens = Buffer.alloc(500, 1);
    for (let i = 0; i < 3 * cap; i++) {
      expect(await backend.setSession(`sid-${i}`, value, 60_000)).toBe(true);
      await backend.tokens.write(`sid-${i}`, { version: 1, sealed: tokens }, 0, 60_000);
    }
    // Exactly `cap` sessions and `cap` token records: 32 bytes of overhead per entry, plus 4 for a version.
    const perSession = 32 + value.length + 32 + tokens.length + 4;
    expect(backend.bytesStored()).toBe(cap * perSession);
    // The newest are kept, the oldest dropped.
    expect(await backend.getSession(`sid-${3 * cap - 1}`)).toBe(value);
    expect(await backend.getSession('sid-0')).toBeUndefined();
    expect(await backend.tokens.read('sid-0')).toBeUndefined();
  });
});
