import type { RequestHandler } from 'express';
import { rateLimit as expressRateLimit, type Store } from 'express-rate-limit';
import { AppError } from './errors.js';
import type { Logger } from './log.js';

/**
 * Per-client-address limit on starting and finishing sign-ins (/login, /callback), against
 * transaction flooding and code or state guessing, and on back-channel logout. Generous by
 * design: a corporate NAT puts hundreds of people behind one address. The count is per instance
 * (in memory), or shared by every instance through `store` (Redis).
 */
export function rateLimit(perMinute: number, logger: Logger, store?: Store): RequestHandler {
  // The library's own messages go through ours, at debug: while Redis is down every request would
  // log one (the backend already says once that Redis is unavailable), and never a stack on stderr.
  const log = (err: unknown, message?: string) =>
    logger.debug({ code: (err as { code?: unknown })?.code }, message ?? 'rate limit store error');
  return expressRateLimit({
    logger: { error: log, warn: log },
    windowMs: 60_000,
    limit: perMinute,
    ...(store && { store }),
    // A store that cannot count lets the request through: the session store behind it answers 503
    // on its own, and a dead Redis must not turn into 429s or 500s.
    passOnStoreError: true,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    // The forwarded-header check is ours (proxy-warning.ts), through the app's logger.
    validate: { xForwardedForHeader: false },
    handler: (req, _res, next) => {
      const info = (req as typeof req & { rateLimit?: { resetTime?: Date } }).rateLimit;
      const resetTime = info?.resetTime?.getTime() ?? Date.now() + 60_000;
      next(
        new AppError('rate_limited', 'Wait a minute, then sign in again.', {
          retryAfterSeconds: Math.max(1, Math.ceil((resetTime - Date.now()) / 1000)),
        }),
      );
    },
  });
}
