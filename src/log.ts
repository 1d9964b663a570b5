import type { Express, Request, RequestHandler, Response } from 'express';
import { pino, type DestinationStream, type Logger } from 'pino';

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
  // A session's DPoP private key (it travels with its tokens), and a private_key_jwt assertion.
  '*.dpopKey',
  '*.client_assertion',
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
    return { message: String(err) };
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
    // The cause's message names what failed (`unexpected JWT "aud" (audience) claim value`), never
    // the values: those stay in its own cause, which is not logged.
    ...(e.cause instanceof Error && {
      cause: {
        type: e.cause.name,
        code: (e.cause as { code?: unknown }).code,
        message: e.cause.message,
      },
    }),
  };
}

/** The request line without its query: /callback?code=...&state=... must never be logged. */
function pathOnly(url: string | undefined): string {
  return (url ?? '').split('?')[0] ?? '';
}

declare module 'express-serve-static-core' {
  interface Request {
    /** Correlation id: in every log line of this request and on its error page. */
    id: string;
    /** This request's logger: its lines carry the request's id, method and path. */
    log: Logger;
  }
}

/** A request slower than this is logged at info even when it succeeded. */
export const SLOW_REQUEST_MS = 1000;

const STARTED = Symbol('request started');
const CHILD = Symbol('request logger');
type Timed = { [STARTED]?: number };

/**
 * One log line per request, when it finishes: 5xx at error, 4xx at warn, slow ones at info, and
 * the rest at debug (LOG_LEVEL=debug shows every request). `req.log` is a child logger carrying
 * the request's id, method and path, made only when something logs. pino-http made one for every
 * request and cost /me about a fifth of its throughput; this keeps the line and drops the cost:
 * per request it sets an id and a start time and adds one shared listener, nothing more.
 */
export function requestLogger(
  app: Express,
  logger: Logger,
  newId: () => string,
  slowMs = SLOW_REQUEST_MS,
): RequestHandler {
  // On the app's request prototype, so no request pays for defining it.
  Object.defineProperty(app.request, 'log', {
    configurable: true,
    get(this: Request & { [CHILD]?: Logger }) {
      return (this[CHILD] ??= logger.child({
        req: {
          id: this.id,
          method: this.method,
          path: pathOnly(this.originalUrl),
          remoteAddress: this.ip,
        },
      }));
    },
  });
  function finished(this: Response & Timed) {
    const responseTime = Math.round(performance.now() - (this[STARTED] ?? 0));
    const status = this.statusCode;
    const level =
      status >= 500 ? 'error' : status >= 400 ? 'warn' : responseTime >= slowMs ? 'info' : 'debug';
    if (logger.isLevelEnabled(level)) {
      this.req.log[level]({ res: { statusCode: status }, responseTime }, 'request completed');
    }
  }
  return (req, res: Response & Timed, next) => {
    req.id = newId();
    res[STARTED] = performance.now();
    res.on('finish', finished);
    next();
  };
}
