import { setTimeout as sleep } from 'node:timers/promises';
import * as client from 'openid-client';
import {
  DEFAULT_RETRY_POLICY,
  isRetryableStatus,
  nextDelay,
  parseRetryAfter,
  type RetryPolicy,
} from './retry.js';

/** One answer of the API, after any retries. */
export interface ApiResponse {
  status: number;
  ok: boolean;
  /** Parsed JSON when the API sent JSON, else text (truncated). */
  body: unknown;
  /** Parameters of the Bearer challenge (`error`, `scope`, ...) when the API sent one. */
  challenge: Record<string, string> | undefined;
  /** Milliseconds the API asked us to wait (Retry-After), if it did. */
  retryAfterMs: number | undefined;
  /** How many requests this answer took. */
  attempts: number;
}

export interface ApiClientOptions {
  /** A DPoP-bound access token: sent with the DPoP scheme and a proof from this handle (RFC 9449 §7). */
  dpop?: client.DPoPHandle;
  /** Authorization scheme; `Bearer` goes through openid-client, anything else is sent as `<scheme> <token>`. */
  authScheme: string;
  timeoutMs: number;
  retry?: RetryPolicy;
  random?: () => number;
  wait?: (ms: number) => Promise<unknown>;
}

const MAX_TEXT = 2000;

/**
 * GETs the protected API with the access token in the Authorization header (never the URL) and
 * without following redirects, so the token cannot be carried to another host. Rate limits (429,
 * honouring Retry-After) and server errors are retried with backoff within a budget: a GET is
 * idempotent. 401 and 403 are returned to the caller, which decides about refreshing.
 */
export async function callApi(
  oidc: client.Configuration,
  accessToken: string,
  url: URL,
  options: ApiClientOptions,
): Promise<ApiResponse> {
  const policy = options.retry ?? DEFAULT_RETRY_POLICY;
  const random = options.random ?? Math.random;
  const wait = options.wait ?? sleep;
  let waited = 0;
  for (let attempt = 0; ; attempt++) {
    const response = await send(oidc, accessToken, url, options);
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), Date.now());
    const delay = isRetryableStatus(response.status)
      ? nextDelay(attempt, waited, policy, random, retryAfterMs)
      : undefined;
    if (delay === undefined) return read(response, attempt + 1, retryAfterMs);
    await response.body?.cancel();
    await wait(delay);
    waited += delay;
  }
}

async function send(
  oidc: client.Configuration,
  accessToken: string,
  url: URL,
  options: ApiClientOptions,
) {
  if (options.authScheme.toLowerCase() === 'bearer' || options.dpop) {
    try {
      // With a DPoP handle, openid-client sends `Authorization: DPoP`, a proof naming this URL and
      // the token's hash, and answers the API's DPoP-Nonce challenge with one retry.
      const dpop = options.dpop && { DPoP: options.dpop };
      return await client.fetchProtectedResource(
        oidc,
        accessToken,
        url,
        'GET',
        undefined,
        undefined,
        dpop,
      );
    } catch (err) {
      // A 401/403 with a Bearer challenge arrives as an error that holds the response.
      if (err instanceof client.WWWAuthenticateChallengeError) return err.response;
      throw err;
    }
  }
  // Some APIs (GitHub's among them) want another scheme; openid-client only builds Bearer and DPoP.
  return fetch(url, {
    headers: { authorization: `${options.authScheme} ${accessToken}`, accept: 'application/json' },
    redirect: 'manual',
    signal: AbortSignal.timeout(options.timeoutMs),
  });
}

async function read(
  response: Response,
  attempts: number,
  retryAfterMs: number | undefined,
): Promise<ApiResponse> {
  const type = response.headers.get('content-type') ?? '';
  const body: unknown = type.includes('json')
    ? await response.json().catch(() => null)
    : (await response.text()).slice(0, MAX_TEXT);
  return {
    status: response.status,
    ok: response.ok,
    body,
    challenge: challengeParams(response.headers.get('www-authenticate')),
    retryAfterMs,
    attempts,
  };
}

/**
 * The auth-params of a WWW-Authenticate challenge (RFC 6750 §3), e.g. `error="insufficient_scope",
 * scope="read write"`. openid-client parses these too but only hands them out with its error.
 */
export function challengeParams(header: string | null): Record<string, string> | undefined {
  if (!header) return undefined;
  const params: Record<string, string> = {};
  for (const match of header.matchAll(/([a-zA-Z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[match[1]!.toLowerCase()] = (match[2] ?? match[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return params;
}
