/** Pure retry decisions for calls to the API: when to try again and how long to wait. */

export interface RetryPolicy {
  /** Retries after the first attempt, at most. */
  maxRetries: number;
  /** Total time all waits may add up to; past it we stop and tell the person when to come back. */
  budgetMs: number;
  /** First backoff step; doubles every retry. */
  baseDelayMs: number;
  /** Upper bound of one computed backoff step (a Retry-After may ask for more: then we give up). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxRetries: 2,
  budgetMs: 5_000,
  baseDelayMs: 200,
  maxDelayMs: 2_000,
};

/**
 * Milliseconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Undefined when absent or unreadable; never negative.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number,
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!/[a-z]/i.test(trimmed)) return undefined; // "-1", "1.5": not a date either
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/**
 * Exponential backoff with "equal jitter" for retry `attempt` (0 = the first retry): between half and
 * all of base·2^attempt (capped), so clients spread out, but never shorter than what the server asked
 * for with Retry-After.
 */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number,
  retryAfterMs?: number,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  const jittered = Math.round(ceiling / 2 + (random() * ceiling) / 2);
  return Math.max(retryAfterMs ?? 0, jittered);
}

/** Whether a status is worth another GET: rate limited, or a server-side failure. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504 || status === 500;
}

/**
 * The next wait, or undefined to stop: out of retries, or the wait would overrun the budget.
 */
export function nextDelay(
  attempt: number,
  waitedMs: number,
  policy: RetryPolicy,
  random: () => number,
  retryAfterMs?: number,
): number | undefined {
  if (attempt >= policy.maxRetries) return undefined;
  const delay = backoffDelay(attempt, policy, random, retryAfterMs);
  return waitedMs + delay > policy.budgetMs ? undefined : delay;
}
