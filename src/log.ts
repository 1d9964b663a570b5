import type { IncomingMessage } from 'node:http';
import { pino, type DestinationStream, type Logger } from 'pino';
import { pinoHttp, type HttpLogger } from 'pino-http';

export type { Logger };

/**
 * Paths that may hold a credential. pino replaces them with "[redacted]" before serialising, so a
 * token, code, cookie or secret never reaches a log line even when an object is logged whole.
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  // The redirect to the provider carries state and nonce; the logout redirect carries id_token_hint.
  'res.headers.location',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.code',
  '*.code_verifier',
  '*.client_secret',
  '*.accessToken',
  '*.refreshToken',
  '*.idToken',
  '*.codeVerifier',
  '*.clientSecret',
  '*.password',
];

/** The application logger: JSON lines, secrets redacted. Tests pass their own destination. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/**
 * An error as a log field: its kind and codes, never its `cause`. openid-client keeps response
 * bodies and URLSearchParams in `cause`, and those can hold codes or tokens.
 */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) {
    // pino-http hands custom serializers its own summary, with the original error under `raw`.
    const raw = (err as { raw?: unknown } | undefined)?.raw;
    return raw instanceof Error ? serializeError(raw) : { message: String(err) };
  }
  const e = err as Error & { code?: unknown; error?: unknown; status?: unknown; kind?: unknown };
  return {
    type: e.name,
    message: e.message,
    // Not "code": that name is redacted everywhere, as it may be an authorization code.
    ...(e.code !== undefined && { errorCode: e.code }),
    ...(e.error !== undefined && { error: e.error }),
    ...(e.status !== undefined && { status: e.status }),
    ...(e.kind !== undefined && { kind: e.kind }),
    ...(e.cause instanceof Error && {
      cause: { type: e.cause.name, code: (e.cause as { code?: unknown }).code },
    }),
  };
}

/** The request line without its query: /callback?code=...&state=... must never be logged. */
function pathOnly(url: string | undefined): string {
  return (url ?? '').split('?')[0] ?? '';
}

/** One log line per request, with the correlation id that error pages show. */
export function createHttpLogger(
  logger: Logger,
  genReqId: (req: IncomingMessage) => string,
): HttpLogger {
  return pinoHttp({
    logger,
    genReqId,
    customLogLevel: (_req, res, err) =>
      err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
    serializers: {
      // pino-http hands this its own summary of the request (id, method, url, remoteAddress, ...).
      req: (req: { id?: unknown; method?: string; url?: string; remoteAddress?: string }) => ({
        id: req.id,
        method: req.method,
        path: pathOnly(req.url),
        remoteAddress: req.remoteAddress,
      }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      err: serializeError,
    },
  });
}
