import type { RequestHandler } from 'express';

/**
 * Lets signed-in people through. Pages send everyone else to /login and back here afterwards;
 * JSON clients get a 401 they can act on.
 */
export const requireUser: RequestHandler = (req, res, next) => {
  if (req.session.user && req.session.tokens) return next();
  if (req.accepts(['html', 'json']) === 'json') {
    res.status(401).json({ error: 'unauthenticated', message: 'Sign in first.' });
    return;
  }
  res.redirect(`/login?returnTo=${encodeURIComponent(req.originalUrl)}`);
};
