import type { Request, Response } from 'express';
import { fetchApiForSession, type SessionApiDeps } from '../api/session-api.js';
import { refreshTokens } from '../auth/access-token.js';
import { tokenStatus } from '../auth/tokens.js';
import { canRevoke } from '../tokens/revocation.js';

export interface PageDeps extends SessionApiDeps {
  csrfToken: (req: Request) => string;
}

/** GET /, GET /dashboard, POST /refresh, GET /me. */
export function createPages(deps: PageDeps) {
  function home(req: Request, res: Response): void {
    const user = req.session?.user;
    res.render('home', { user, csrfToken: user ? deps.csrfToken(req) : undefined });
  }

  /**
   * The person, their token status and what the API says, using a fresh access token; and,
   * when the provider cannot revoke, that sign-out leaves the refresh token valid there.
   */
  async function dashboard(req: Request, res: Response): Promise<void> {
    const { record, api } = await fetchApiForSession(req, deps);
    // The sign-in's steps and the latest few after them; the whole record is on /dashboard/flow.
    const flow = (await deps.flow?.readRecent(req.sessionID, 5)) ?? { events: [], hidden: 0 };
    // Discovered already by the call above: no request to the provider.
    const oidc = await deps.provider.getConfiguration();
    res.render('dashboard', {
      user: req.session.user,
      tokens: tokenStatus(record.tokens, deps.now()),
      refresh: record.refreshes,
      revocable: canRevoke(oidc),
      flow: flow.events,
      flowHidden: flow.hidden,
      api: api?.response,
      apiUrl: api?.url.href,
      csrfToken: deps.csrfToken(req),
    });
  }

  /** POST /refresh ("Refresh now", CSRF-checked): renew the tokens now, to watch it happen. */
  async function refreshNow(req: Request, res: Response): Promise<void> {
    await refreshTokens(req, deps, { force: true });
    res.redirect(303, '/dashboard');
  }

  /** GET /dashboard/flow: every step of this session's sign-in and since, in detail. */
  async function flow(req: Request, res: Response): Promise<void> {
    res.render('flow', {
      user: req.session.user,
      csrfToken: deps.csrfToken(req),
      flow: (await deps.flow?.read(req.sessionID)) ?? [],
    });
  }

  /** JSON of the signed-in person for scripts on the page: claims only, never a token. */
  function me(req: Request, res: Response): void {
    const { iss, sub, name, email } = req.session.user!;
    res.json({ iss, sub, name, email });
  }

  return { home, dashboard, refreshNow, me, flow };
}
