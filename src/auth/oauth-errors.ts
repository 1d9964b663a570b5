import * as client from 'openid-client';
import { AppError } from '../errors.js';

/** The provider could not be reached or did not answer in time: worth a retry later. */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof TypeError) return true; // fetch failed: refused, reset, DNS
  const code = (err as { code?: unknown }).code;
  return err instanceof client.ClientError && (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT');
}

/** A refresh or API call could not reach the provider: the session is kept; try again later. */
export function providerUnavailable(cause: unknown): AppError {
  return new AppError(
    'provider_unavailable',
    'The sign-in provider is unreachable. Try again in a minute.',
    { cause, retryAfterSeconds: 30 },
  );
}

/** The provider answered, but not with OAuth: a 5xx page, HTML, an unexpected status. */
export function isProviderMalfunction(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    err instanceof client.ClientError &&
    (code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' ||
      code === 'OAUTH_RESPONSE_IS_NOT_JSON' ||
      code === 'OAUTH_PARSE_ERROR')
  );
}

/** The token endpoint answered 503 (overloaded or in maintenance): worth a retry later, not a bug. */
export function isProviderBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  const response = (err as { cause?: unknown }).cause;
  return (
    err instanceof client.ClientError &&
    code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' &&
    response instanceof Response &&
    response.status === 503
  );
}

/** What a person can do about each error code the provider may send back to /callback (RFC 6749 §4.1.2.1). */
const AUTHORIZATION_ERRORS: Record<string, AppError> = {
  access_denied: new AppError(
    'access_denied',
    'You (or the provider) cancelled the sign-in. You can start again.',
  ),
  login_required: new AppError('login_failed', 'The provider needs you to sign in again.'),
  interaction_required: new AppError('login_failed', 'The provider needs you to sign in again.'),
  consent_required: new AppError(
    'login_failed',
    'The provider needs your consent. Start again and allow access.',
  ),
  temporarily_unavailable: new AppError(
    'provider_unavailable',
    'The provider is busy. Try again in a minute.',
  ),
  server_error: new AppError(
    'provider_error',
    'The provider had a problem. Try again in a minute.',
  ),
};

/**
 * Maps what authorizationCodeGrant throws to a page: the provider's own `error=` answer, a rejected
 * code, an unreachable or broken token endpoint, or a response that failed validation.
 */
export function callbackError(err: unknown): AppError {
  if (err instanceof client.AuthorizationResponseError) {
    const known = AUTHORIZATION_ERRORS[err.error];
    const fallback = new AppError('provider_error', 'The provider refused the sign-in request.');
    return withCause(known ?? fallback, err);
  }
  if (err instanceof client.ResponseBodyError) {
    return err.error === 'invalid_grant'
      ? new AppError(
          'login_failed',
          'The sign-in code was already used or has expired. Start again.',
          { cause: err },
        )
      : new AppError('provider_error', 'The provider refused to complete the sign-in.', {
          cause: err,
        });
  }
  if (isUnreachable(err)) {
    return new AppError(
      'provider_unavailable',
      'The provider did not answer. Try again in a minute.',
      { cause: err },
    );
  }
  if (isProviderBusy(err)) {
    return new AppError('provider_unavailable', 'The provider is busy. Try again in a minute.', {
      cause: err,
      retryAfterSeconds: 30,
    });
  }
  if (isProviderMalfunction(err)) {
    return new AppError('provider_error', 'The provider sent an answer we could not read.', {
      cause: err,
    });
  }
  // Everything else failed a check on what the token endpoint sent: signature, alg, iss, aud,
  // azp, exp, nonce, required claims, a missing ID token, or a userinfo for another subject.
  return new AppError(
    'invalid_id_token',
    'The sign-in could not be verified, so you are not signed in. Start again.',
    { cause: err },
  );
}

function withCause(template: AppError, cause: unknown): AppError {
  return new AppError(template.kind, template.userMessage, { cause, status: template.status });
}
