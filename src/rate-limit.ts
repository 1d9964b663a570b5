import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { AppError } from './errors.js';

/**
 * Per-client-address limit on starting and finishing sign-ins (/login, /callback), against
 * transaction flooding and code or state guessing. Generous by design: a corporate NAT puts
 * hundreds of people behind one address. The count is per instance (in memory).
 */
export function signInRateLimit(perMinute: number): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
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
