import type { RequestHandler } from 'express';
import type { EndSession } from '../session/end-session.js';

/**
 * Ends, on every route, a session older than `maxAgeSeconds` since sign-in, however active it was
 * and however long refresh would still work (ASVS 7.3.2). The request goes on signed out, with no
 * session: a page view stores nothing and sends no cookie; /login and /callback make a new one.
 */
export function endExpiredSessions(
  now: () => number,
  maxAgeSeconds: number,
  endSession: EndSession,
): RequestHandler {
  return async (req, _res, next) => {
    const session = req.session;
    if (session?.user && now() - (session.authenticatedAt ?? 0) >= maxAgeSeconds) {
      await endSession(req, 'max-age');
    }
    next();
  };
}

/**
 * Lets signed-in people through. Pages send everyone else to /login and back here afterwards;
 * JSON clients get a 401 they can act on.
 */
export const requireUser: RequestHandler = (req, res, next) => {
  if (req.session?.user) return next();
  if (req.accepts(['html', 'json']) === 'json') {
    res.status(401).json({ error: 'unauthenticated', message: 'Sign in first.' });
    return;
  }
  const returnTo = req.method === 'GET' ? req.originalUrl : '/dashboard';
  res.redirect(`/login?returnTo=${encodeURIComponent(returnTo)}`);
};
