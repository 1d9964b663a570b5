import { describe, expect, it } from 'vitest';
import {
  addTransaction,
  DEFAULT_RETURN_TO,
  MAX_PENDING_TRANSACTIONS,
  MAX_RETURN_TO_LENGTH,
  newTransaction,
  safeReturnTo,
  takeTransaction,
  TRANSACTION_TTL_SECONDS,
  type TransactionMap,
} from '../../src/auth/transactions.js';

describe('safeReturnTo', () => {
  it.each([
    ['/dashboard', '/dashboard'],
    ['/me', '/me'],
    ['/dashboard?tab=tokens#api', '/dashboard?tab=tokens#api'],
    ['/a/../dashboard', '/dashboard'],
    [`/${'a'.repeat(MAX_RETURN_TO_LENGTH - 1)}`, `/${'a'.repeat(MAX_RETURN_TO_LENGTH - 1)}`],
  ])('keeps the same-origin path %j', (input, expected) => {
    expect(safeReturnTo(input)).toBe(expected);
  });

  it.each([
    '//evil.example',
    '///evil.example',
    '/\\evil.example',
    '\\\\evil.example',
    '/\t/evil.example',
    '/ /evil.example',
    '/./\\evil.example',
    'https://evil.example',
    'http:evil.example',
    'https:/evil.example',
    'javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    '%2F%2Fevil.example',
    '/%2F/evil.example',
    '%2f%5cevil.example',
    '/%5Cevil.example',
    '/%09/evil.example',
    '/%0d%0aSet-Cookie:x=1',
    '/.//evil.example',
    '/x/..//evil.example',
    '/%2e//evil.example',
    '/%2e%2e//evil.example',
    ' /dashboard',
    'dashboard',
    '',
    '%',
    `/${'a'.repeat(3000)}`,
    `/${'a'.repeat(MAX_RETURN_TO_LENGTH)}`,
  ])('falls back to /dashboard for %j', (input) => {
    expect(safeReturnTo(input)).toBe(DEFAULT_RETURN_TO);
  });

  it.each([[undefined], [null], [42], [['/a', '/b']], [{ x: '/a' }]])(
    'falls back for the non-string %j',
    (input) => {
      expect(safeReturnTo(input)).toBe(DEFAULT_RETURN_TO);
    },
  );
});

describe('login transactions', () => {
  const t0 = 1_700_000_000;

  it('makes fresh 43-character state, nonce and verifier for every attempt', () => {
    const a = newTransaction('/x', t0);
    const b = newTransaction('/x', t0);
    for (const key of ['state', 'nonce', 'codeVerifier'] as const) {
      expect(a[key]).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(a[key]).not.toBe(b[key]);
    }
  });

  it('is consumed once: a second take of the same state finds nothing', () => {
    const tx = newTransaction('/x', t0);
    const map = addTransaction(undefined, tx, t0);
    const first = takeTransaction(map, tx.state, t0 + 1);
    expect(first.tx).toEqual(tx);
    expect(takeTransaction(first.rest, tx.state, t0 + 2).tx).toBeUndefined();
  });

  it('expires after ten minutes', () => {
    const tx = newTransaction('/x', t0);
    const map = addTransaction(undefined, tx, t0);
    expect(takeTransaction(map, tx.state, t0 + TRANSACTION_TTL_SECONDS - 1).tx).toEqual(tx);
    expect(takeTransaction(map, tx.state, t0 + TRANSACTION_TTL_SECONDS).tx).toBeUndefined();
  });

  it(`keeps at most ${MAX_PENDING_TRANSACTIONS} pending, dropping the oldest`, () => {
    let map: TransactionMap | undefined;
    const all = Array.from({ length: 25 }, (_, i) => newTransaction('/x', t0 + i));
    all.forEach((tx, i) => (map = addTransaction(map, tx, t0 + i)));
    const states = Object.keys(map!);
    expect(states).toHaveLength(MAX_PENDING_TRANSACTIONS);
    expect(states).toEqual(all.slice(-MAX_PENDING_TRANSACTIONS).map((t) => t.state));
  });

  it('drops expired transactions when adding and taking', () => {
    const old = newTransaction('/x', t0);
    const map = addTransaction(undefined, old, t0);
    const fresh = newTransaction('/y', t0 + TRANSACTION_TTL_SECONDS + 5);
    const next = addTransaction(map, fresh, t0 + TRANSACTION_TTL_SECONDS + 5);
    expect(Object.keys(next)).toEqual([fresh.state]);
    expect(takeTransaction(map, 'other', t0 + TRANSACTION_TTL_SECONDS).rest).toEqual({});
  });
});
