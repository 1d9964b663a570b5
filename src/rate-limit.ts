import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { AppError } from './errors.js';
import type { Logger } from './log.js';

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
    // The forwarded-header check is ours (warnOnUntrustedForwarding), through the app's logger.
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

const FORWARDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'];
const WARN_EVERY_MS = 10 * 60_000;

/**
 * Without TRUST_PROXY, forwarded headers are ignored (they could be anyone's). If they arrive
 * anyway, the app is probably behind a proxy that nobody told it about: client addresses in logs
 * and rate limits are the proxy's, and Secure cookies may not be set. Say so, at most every 10 min.
 */
export function warnOnUntrustedForwarding(logger: Logger): RequestHandler {
  let lastWarning = 0;
  return (req, _res, next) => {
    if (
      Date.now() - lastWarning > WARN_EVERY_MS &&
      FORWARDED.some((h) => req.headers[h] !== undefined)
    ) {
      lastWarning = Date.now();
      logger.warn(
        { headers: FORWARDED.filter((h) => req.headers[h] !== undefined) },
        'forwarded headers arrived but TRUST_PROXY is not set: they are ignored; set TRUST_PROXY to the proxy hop count or subnet',
      );
    }
    next();
  };
}
