import type { Request } from 'express';
import type * as client from 'openid-client';
import { getFreshTokens, refreshTokens, type AccessTokenDeps } from '../auth/access-token.js';
import { isBound } from '../auth/dpop.js';
import { isUnreachable } from '../auth/oauth-errors.js';
import { stepUpRequired } from '../auth/step-up.js';
import { AppError } from '../errors.js';
import type { TokenRecord } from '../tokens/token-store.js';
import { callApi, type ApiClientOptions, type ApiResponse } from './provider-api.js';

export interface SessionApiDeps extends AccessTokenDeps {
  /** The API to call; undefined: the provider's userinfo endpoint. */
  apiUrl: URL | undefined;
  api: ApiClientOptions;
}

/**
 * Calls the API (`target`, by default API_URL) for the signed-in person and turns each kind of
 * answer into what they should see: 401 refreshes once and retries once (never loops), unless it
 * asks for a stronger sign-in (RFC 9470: then a step-up is offered); 403 names the missing
 * permission; 429 and 5xx, once retries are spent, say when to come back.
 * @returns the token record used last, and the API's answer unless there is no API to call.
 */
export async function fetchApiForSession(
  req: Request,
  deps: SessionApiDeps,
  target: URL | undefined = deps.apiUrl,
): Promise<{ record: TokenRecord; api?: { url: URL; response: ApiResponse } }> {
  const oidc = await deps.provider.getConfiguration();
  let record = await getFreshTokens(req, deps);
  const url = target ?? userinfoUrl(oidc);
  if (!url) return { record };

  const call = async ({ tokens }: TokenRecord) => {
    const started = performance.now();
    // A bound token goes with the DPoP scheme and a proof; one the provider did not bind, as Bearer.
    const dpop =
      tokens.dpopKey && isBound(tokens.tokenType)
        ? await deps.dpop.forSession(oidc, req.sessionID, tokens.dpopKey)
        : undefined;
    const answer = await send(oidc, tokens.accessToken, url, { ...deps.api, dpop });
    deps.flow?.record(req.sessionID, req.log, {
      step: 'api',
      at: deps.now() * 1000,
      ms: Math.round(performance.now() - started),
      status: answer.status,
      attempts: answer.attempts,
      url: url.origin + url.pathname,
    });
    return answer;
  };
  let response = await call(record);
  if (response.status === 401 && response.challenge?.error === 'insufficient_user_authentication')
    throw stepUpRequired(req, response);
  if (response.status === 401) {
    // RFC 6750 §3.1 invalid_token: expired early or revoked. One refresh, one retry.
    const rejectedAccessToken = record.tokens.accessToken;
    record = await refreshTokens(req, deps, { force: true, rejectedAccessToken });
    response = await call(record);
    if (response.status === 401) {
      throw new AppError(
        'api_unauthorized',
        'The API refused your access token, even a freshly renewed one. The API may expect another audience or scope; signing in again may help.',
        { returnTo: req.originalUrl },
      );
    }
  }
  if (response.status === 403) throw forbidden(response, record.tokens.scope);
  if (response.status === 429) {
    const seconds = Math.max(1, Math.ceil((response.retryAfterMs ?? 30_000) / 1000));
    throw new AppError(
      'api_rate_limited',
      `It asked us to slow down. Try again in ${seconds} seconds.`,
      {
        retryAfterSeconds: seconds,
      },
    );
  }
  if (response.status >= 500) {
    throw new AppError(
      'api_error',
      `It answered ${response.status} after ${response.attempts} attempts. Try again in a minute.`,
      {
        retryAfterSeconds: 60,
      },
    );
  }
  return { record, api: { url, response } };
}

function userinfoUrl(oidc: client.Configuration): URL | undefined {
  const userinfo = oidc.serverMetadata().userinfo_endpoint;
  return userinfo ? new URL(userinfo) : undefined;
}

async function send(
  oidc: client.Configuration,
  accessToken: string,
  url: URL,
  options: ApiClientOptions,
) {
  try {
    return await callApi(oidc, accessToken, url, options);
  } catch (err) {
    if (isUnreachable(err)) {
      throw new AppError(
        'provider_unavailable',
        'The API did not answer in time. Try again in a minute.',
        {
          cause: err,
          retryAfterSeconds: 30,
        },
      );
    }
    throw new AppError('api_error', 'The API sent an answer we could not read.', { cause: err });
  }
}

/** RFC 6750 §3.1 insufficient_scope: say what was granted and what the API asked for. */
function forbidden(response: ApiResponse, grantedScope: string | undefined): AppError {
  const details: Array<[string, string]> = [
    ['Scopes granted', grantedScope || '(not stated by the provider)'],
  ];
  const required = response.challenge?.scope;
  if (required) details.push(['Scopes the API asked for', required]);
  return new AppError(
    'api_forbidden',
    'Your access token is valid but lacks a permission this API needs. Ask for the scope below (OIDC_SCOPES) or ask an administrator to grant it.',
    { details },
  );
}
