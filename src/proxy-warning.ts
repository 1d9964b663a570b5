import type { RequestHandler } from 'express';
import type { Logger } from './log.js';

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
