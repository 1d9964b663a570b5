import * as client from 'openid-client';
import { AppError } from '../errors.js';

/** The provider could not be reached or did not answer in time: worth a retry later. */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof TypeError) return true; // fetch failed: refused, reset, DNS, TLS
  const code = (err as { code?: unknown }).code;
  return err instanceof client.ClientError && (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT');
}

/**
 * A refresh failed, and not because the grant is gone: the session is kept. Says why: the provider
 * refused this application, could not be reached, or answered with an error of its own.
 */
export function providerUnavailable(cause: unknown): AppError {
  // invalid_client has its own kind below; temporarily_unavailable is an outage.
  const elsewhere = ['temporarily_unavailable', 'invalid_client'];
  if (cause instanceof client.ResponseBodyError && !elsewhere.includes(cause.error)) {
    return new AppError('provider_error', 'The provider refused to renew your access for now.', {
      cause,
      retryAfterSeconds: 30,
      logFields: { providerError: cause.error },
    });
  }
  if (isProviderMalfunction(cause) && !isProviderBusy(cause)) {
    return new AppError('provider_error', 'The provider had a problem. Try again in a minute.', {
      cause,
      retryAfterSeconds: 30,
    });
  }
  return (
    providerTrouble(cause) ??
    new AppError(
      'provider_unavailable',
      'The sign-in provider is unreachable. Try again in a minute.',
      { cause, retryAfterSeconds: 30 },
    )
  );
}

/** Node's names for a certificate it would not trust (OpenSSL's, and undici's own). */
const TLS_ERROR = /^(UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|CERT_|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH)/;
const TLS_HINT =
  'if the provider uses a private CA, start codeflow with NODE_EXTRA_CA_CERTS=/path/to/ca.pem';

/**
 * What went wrong between codeflow and the provider, below the protocol, told apart so that the
 * page, the log line and the metric name the real cause:
 * - credentials refused: a 401 with a challenge for the client's own scheme, or `invalid_client`
 *   (RFC 6749 §5.2): the operator's problem, never "the ID token failed";
 * - the discovered issuer is not the configured one (shown both, in the log);
 * - a certificate Node does not trust (a private CA: NODE_EXTRA_CA_CERTS);
 * - connection refused; a timeout; a body that is not JSON; any other network failure.
 * Undefined for everything else: protocol answers (invalid_grant) and failed token checks.
 */
export function providerTrouble(err: unknown): AppError | undefined {
  if (credentialsRefused(err)) {
    const challenge =
      err instanceof client.WWWAuthenticateChallengeError ? err.cause[0] : undefined;
    return new AppError(
      'provider_credentials_refused',
      'This is a problem with how this application is set up, not with your account. Tell the people who run it the reference below.',
      {
        cause: err,
        logFields: {
          providerError: challenge?.parameters.error ?? 'invalid_client',
          hint: 'check OIDC_CLIENT_ID and OIDC_CLIENT_SECRET, and the client authentication method registered at the provider',
        },
      },
    );
  }
  const code = (err as { code?: unknown }).code;
  if (err instanceof client.ClientError) {
    const issuers = issuerMismatch(err);
    if (issuers) {
      return new AppError(
        'provider_issuer_mismatch',
        'This application is set up for another address of its sign-in provider. Tell the people who run it.',
        {
          cause: err,
          logFields: {
            ...issuers,
            hint: 'OIDC_ISSUER must be exactly the issuer the provider names in its discovery document',
          },
        },
      );
    }
    if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT') {
      return new AppError('provider_timeout', 'Try again in a minute.', {
        cause: err,
        retryAfterSeconds: 30,
      });
    }
    if (code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_PARSE_ERROR') {
      return new AppError('provider_bad_response', 'Try again in a minute.', {
        cause: err,
        retryAfterSeconds: 30,
      });
    }
    return undefined;
  }
  if (!(err instanceof TypeError)) return undefined;
  const network = networkErrorCode(err);
  if (network && TLS_ERROR.test(network)) {
    return new AppError('provider_tls', 'Tell the people who run this application.', {
      cause: err,
      logFields: { tlsError: network, hint: TLS_HINT },
    });
  }
  if (network === 'ECONNREFUSED') {
    return new AppError('provider_refused', 'Try again in a minute.', {
      cause: err,
      retryAfterSeconds: 30,
      logFields: { networkError: network },
    });
  }
  if (network === 'ETIMEDOUT' || network === 'UND_ERR_CONNECT_TIMEOUT') {
    return new AppError('provider_timeout', 'Try again in a minute.', {
      cause: err,
      retryAfterSeconds: 30,
      logFields: { networkError: network },
    });
  }
  return new AppError('provider_unavailable', 'Try again in a minute.', {
    cause: err,
    retryAfterSeconds: 30,
    ...(network && { logFields: { networkError: network } }),
  });
}

/** The token endpoint refused the client itself (not a token): RFC 6749 §5.2. */
function credentialsRefused(err: unknown): boolean {
  if (err instanceof client.ResponseBodyError) return err.error === 'invalid_client';
  if (!(err instanceof client.WWWAuthenticateChallengeError) || err.status !== 401) return false;
  // A Bearer challenge is about a token (userinfo, invalid_token); Basic (or an explicit
  // invalid_client) is about the client's own credentials.
  return err.cause.some(
    (c) => c.parameters.error === 'invalid_client' || c.scheme.toLowerCase() === 'basic',
  );
}

/**
 * Both issuers, when discovery found another one than configured. openid-client puts the facts in
 * `cause` ({expected, body, attribute}); oauth4webapi one level deeper.
 */
function issuerMismatch(
  err: client.ClientError,
): { configuredIssuer: string; discoveredIssuer: string } | undefined {
  if (err.code !== 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') return undefined;
  type Facts = { attribute?: unknown; expected?: unknown; body?: unknown; cause?: Facts };
  const outer = err.cause as Facts | undefined;
  const facts = outer?.expected !== undefined ? outer : outer?.cause;
  if (facts?.attribute !== undefined && facts.attribute !== 'issuer') return undefined;
  const discovered = (facts?.body as { issuer?: unknown } | undefined)?.issuer;
  if (facts?.expected === undefined || discovered === undefined) return undefined;
  return { configuredIssuer: String(facts.expected), discoveredIssuer: String(discovered) };
}

/** The socket's error code under a failed fetch (undici wraps it, sometimes in an AggregateError). */
function networkErrorCode(err: TypeError): string | undefined {
  let cause: unknown = err.cause;
  for (let depth = 0; depth < 4 && cause; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const errors = (cause as { errors?: unknown }).errors;
    cause = Array.isArray(errors) ? errors[0] : (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The provider answered, but not with OAuth: a 5xx page, HTML, an unexpected status. */
export function isProviderMalfunction(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return err instanceof client.ClientError && code === 'OAUTH_RESPONSE_IS_NOT_CONFORM';
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
  const trouble = providerTrouble(err);
  if (trouble) return trouble;
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
  if (isProviderBusy(err)) {
    return new AppError('provider_unavailable', 'The provider is busy. Try again in a minute.', {
      cause: err,
      retryAfterSeconds: 30,
    });
  }
  if (isProviderMalfunction(err)) {
    return new AppError('provider_error', 'The provider had a problem. Try again in a minute.', {
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
