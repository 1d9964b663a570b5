import { describe, expect, it } from 'vitest';
import { challengeParams } from '../../src/api/provider-api.js';
import {
  backoffDelay,
  isRetryableStatus,
  nextDelay,
  parseRetryAfter,
  type RetryPolicy,
} from '../../src/api/retry.js';

const nowMs = Date.parse('2026-11-22T12:00:00Z');
const policy: RetryPolicy = { maxRetries: 3, budgetMs: 5000, baseDelayMs: 200, maxDelayMs: 2000 };

describe('parseRetryAfter', () => {
  it.each([
    ['0', 0],
    ['1', 1000],
    [' 120 ', 120_000],
    ['Sun, 22 Nov 2026 12:00:05 GMT', 5000],
    ['Sun, 22 Nov 2026 11:59:00 GMT', 0],
    [null, undefined],
    [undefined, undefined],
    ['', undefined],
    ['-1', undefined],
    ['1.5', undefined],
    ['soon', undefined],
  ])('reads %j as %j ms', (value, expected) => {
    expect(parseRetryAfter(value, nowMs)).toBe(expected);
  });
});

describe('backoffDelay', () => {
  it.each([
    [0, 0, undefined, 100],
    [0, 1, undefined, 200],
    [1, 0, undefined, 200],
    [1, 1, undefined, 400],
    [2, 1, undefined, 800],
    [5, 1, undefined, 2000],
    [9, 0.5, undefined, 1500],
    [0, 0, 1000, 1000],
    [3, 1, 500, 1600],
  ])(
    'retry %i with random %d and Retry-After %j waits %i ms',
    (attempt, random, retryAfter, expected) => {
      expect(backoffDelay(attempt, policy, () => random, retryAfter)).toBe(expected);
    },
  );
});

describe('nextDelay', () => {
  it.each([
    ['the first retry', 0, 0, undefined, 200],
    ['a retry within the budget with Retry-After', 1, 1000, 2000, 2000],
    ['out of retries', 3, 0, undefined, undefined],
    ['a Retry-After past the budget', 0, 0, 120_000, undefined],
    ['a wait that would overrun what is left', 2, 4500, 1000, undefined],
  ])('%s → %j', (_name, attempt, waited, retryAfter, expected) => {
    expect(nextDelay(attempt, waited, policy, () => 1, retryAfter)).toBe(expected);
  });
});

describe('isRetryableStatus', () => {
  it.each([
    [429, true],
    [500, true],
    [502, true],
    [503, true],
    [504, true],
    [200, false],
    [401, false],
    [403, false],
    [404, false],
    [501, false],
  ])('%i → %s', (status, expected) => {
    expect(isRetryableStatus(status)).toBe(expected);
  });
});

describe('challengeParams', () => {
  it.each([
    [
      'Bearer error="insufficient_scope", scope="read:projects write:projects"',
      { error: 'insufficient_scope', scope: 'read:projects write:projects' },
    ],
    ['Bearer realm="api", error="invalid_token"', { realm: 'api', error: 'invalid_token' }],
    ['Bearer error=invalid_token', { error: 'invalid_token' }],
    ['Bearer error_description="say \\"hi\\""', { error_description: 'say "hi"' }],
    [null, undefined],
  ])('parses %j', (header, expected) => {
    expect(challengeParams(header)).toEqual(expected);
  });
});
