import type { RequestHandler } from 'express';
import { destroySession } from '../session/session.js';

/**
 * Lets signed-in people through. Pages send everyone else to /login and back here afterwards;
 * JSON clients get a 401 they can act on. A session older than `maxAgeSeconds` since sign-in ends,
 * however active it was and however long refresh would still work (ASVS 7.3.2).
 */
export function requireUser(now: () => number, maxAgeSeconds: number): RequestHandler {
  return async (req, res, next) => {
    const { user, tokens, authenticatedAt = 0 } = req.session;
    if (user && tokens && now() - authenticatedAt < maxAgeSeconds) return next();
    if (user) {
      await destroySession(req);
      req.log.info({ sub: user.sub }, 'session reached its maximum age');
    }
    if (req.accepts(['html', 'json']) === 'json') {
      res.status(401).json({ error: 'unauthenticated', message: 'Sign in first.' });
      return;
    }
    res.redirect(
      `/login?returnTo=${encodeURIComponent(req.method === 'GET' ? req.originalUrl : '/dashboard')}`,
    );
  };
}
