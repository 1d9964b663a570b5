import type { ErrorRequestHandler, Request, RequestHandler } from 'express';

/** The few things that go wrong, each with a status and a sentence a person can act on. */
export const ERROR_KINDS = {
  bad_request: { status: 400, title: 'Something was wrong with that request' },
  transaction_not_found: { status: 400, title: 'This sign-in link is no longer valid' },
  transaction_expired: { status: 400, title: 'This sign-in link has expired' },
  state_mismatch: { status: 400, title: 'This sign-in response does not match' },
  issuer_mismatch: { status: 400, title: 'The sign-in response came from the wrong provider' },
  invalid_id_token: { status: 502, title: "The provider's answer failed verification" },
  rate_limited: { status: 429, title: 'Too many sign-in attempts' },
  access_denied: { status: 403, title: 'Sign-in was cancelled' },
  // Outside ALLOWED_EMAIL_DOMAINS or ALLOWED_GROUPS: signed in at the provider, admitted by no rule.
  not_allowed: { status: 403, title: 'This account may not use this application' },
  login_failed: { status: 400, title: 'Sign-in failed' },
  provider_error: { status: 502, title: 'The sign-in provider answered with an error' },
  provider_unavailable: { status: 503, title: 'The sign-in provider is unreachable' },
  // What went wrong between codeflow and the provider, each told apart (operators act on them).
  provider_credentials_refused: {
    status: 502,
    title: "The sign-in provider refused this application's credentials",
  },
  provider_issuer_mismatch: {
    status: 502,
    title: 'The sign-in provider is not the one configured',
  },
  provider_tls: { status: 502, title: "The sign-in provider's certificate is not trusted" },
  provider_refused: { status: 503, title: 'The sign-in provider refused the connection' },
  provider_timeout: { status: 504, title: 'The sign-in provider did not answer in time' },
  provider_bad_response: {
    status: 502,
    title: 'The sign-in provider sent an answer that could not be read',
  },
  store_unavailable: { status: 503, title: 'Sessions are unavailable for a moment' },
  session_expired: { status: 401, title: 'Your session has ended' },
  // Step-up: the API asked for a stronger or more recent sign-in (RFC 9470), or the one that came
  // back from the provider was not (the session stays as it was).
  step_up_required: { status: 401, title: 'A stronger sign-in is needed' },
  step_up_failed: { status: 403, title: 'That sign-in was not strong enough' },
  api_forbidden: { status: 403, title: 'The API refused: a permission is missing' },
  api_unauthorized: { status: 502, title: 'The API did not accept your access' },
  api_rate_limited: { status: 503, title: 'The API is busy' },
  api_error: { status: 502, title: 'The API had a problem' },
  csrf: { status: 403, title: 'This form has expired' },
  not_found: { status: 404, title: 'Page not found' },
  internal: { status: 500, title: 'Something went wrong on our side' },
} as const;

export type ErrorKind = keyof typeof ERROR_KINDS;

/** An error whose message is safe to show; `cause` is for the log only. */
export class AppError extends Error {
  readonly status: number;
  readonly title: string;
  readonly retryAfterSeconds: number | undefined;
  /** Where "sign in again" should come back to. */
  readonly returnTo: string | undefined;
  /** The sign-in link itself, when it must ask for more than returnTo (a step-up). */
  readonly signIn: string | undefined;
  /** Facts worth showing (label, value), such as the scopes granted and asked for. */
  readonly details: ReadonlyArray<readonly [string, string]>;
  /** Facts for the operator, logged with the error and never shown (no secret may go here). */
  readonly logFields: Readonly<Record<string, unknown>>;
  constructor(
    readonly kind: ErrorKind,
    readonly userMessage: string,
    options: {
      cause?: unknown;
      status?: number;
      retryAfterSeconds?: number;
      returnTo?: string;
      signIn?: string;
      details?: ReadonlyArray<readonly [string, string]>;
      logFields?: Record<string, unknown>;
    } = {},
  ) {
    super(`${kind}: ${userMessage}`, { cause: options.cause });
    this.name = 'AppError';
    this.status = options.status ?? ERROR_KINDS[kind].status;
    this.title = ERROR_KINDS[kind].title;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.returnTo = options.returnTo;
    this.signIn = options.signIn;
    this.details = options.details ?? [];
    this.logFields = options.logFields ?? {};
  }
}

/** The session store failed or did not answer in time: nothing was lost; try again. */
export function storeUnavailable(cause: unknown): AppError {
  if (cause instanceof AppError) return cause;
  return new AppError('store_unavailable', 'Please try again in a few seconds.', {
    cause,
    retryAfterSeconds: 5,
  });
}

export const notFound: RequestHandler = () => {
  throw new AppError('not_found', 'There is nothing at this address.');
};

function wantsJson(req: Request): boolean {
  return req.accepts(['html', 'json']) === 'json';
}

/** Turns library errors we know into AppErrors; anything else is a 500 whose details stay in the log. */
function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = err as { code?: unknown; status?: unknown; type?: unknown };
  // csrf-sync raises an http-errors 403 with this code.
  if (e.code === 'EBADCSRFTOKEN') {
    return new AppError('csrf', 'Reload the page and try again.', { cause: err });
  }
  // Body parsers raise http-errors 4xx (too large, malformed): the client's fault, not ours.
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    return new AppError('bad_request', 'The request could not be read.', {
      cause: err,
      status: e.status,
    });
  }
  return new AppError(
    'internal',
    'Please try again. If it keeps happening, tell us the reference below.',
    {
      cause: err,
    },
  );
}

/**
 * The one error handler: logs the cause with the request's correlation id and answers with a
 * plain page, or JSON for clients that ask for it. Never a stack trace, never a library message.
 */
export const errorHandler: ErrorRequestHandler = (err, req, res, _next) => {
  const error = toAppError(err);
  const correlationId = String(req.id ?? '');
  const level = error.status >= 500 ? 'error' : 'warn';
  req.log[level](
    { err: error.cause ?? error, kind: error.kind, ...error.logFields, correlationId },
    error.title,
  );

  if (res.headersSent) return;
  res.status(error.status);
  res.set('Cache-Control', 'no-store');
  if (error.retryAfterSeconds !== undefined)
    res.set('Retry-After', String(error.retryAfterSeconds));
  const body = {
    error: error.kind,
    title: error.title,
    message: error.userMessage,
    ...(error.details.length > 0 && { details: Object.fromEntries(error.details) }),
    ...(error.retryAfterSeconds !== undefined && { retryAfterSeconds: error.retryAfterSeconds }),
    correlationId,
  };
  if (wantsJson(req)) {
    res.json(body);
    return;
  }
  const signIn =
    error.signIn ??
    (error.returnTo ? `/login?returnTo=${encodeURIComponent(error.returnTo)}` : '/login');
  // The header still shows who is signed in (a session that just ended has no user any more).
  const user = req.session?.user;
  const csrfToken = user ? req.session?.csrfToken : undefined;
  res.render('error', {
    ...body,
    details: error.details,
    status: error.status,
    signIn,
    user,
    csrfToken,
  });
};
