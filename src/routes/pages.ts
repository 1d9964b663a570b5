import type { Request, Response } from 'express';
import type { JWK } from 'jose';
import type * as client from 'openid-client';
import { fetchApiForSession, type SessionApiDeps } from '../api/session-api.js';
import { getFreshTokens, refreshTokens } from '../auth/access-token.js';
import { bindingOf } from '../auth/dpop.js';
import type { AuthRequirement } from '../auth/step-up.js';
import { tokenStatus } from '../auth/tokens.js';
import { canRevoke } from '../tokens/revocation.js';

export interface PageDeps extends SessionApiDeps {
  csrfToken: (req: Request) => string;
  /** What /dashboard/sensitive asks of the sign-in, and the API it calls (none: no call). */
  stepUp: { requirement: AuthRequirement; apiUrl: URL | undefined };
}

/** GET /, GET /dashboard, GET /dashboard/sensitive, POST /refresh, GET /me. */
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
      binding: await bindingOf(record.tokens, keyHandle(req, oidc)),
      refresh: record.refreshes,
      revocable: canRevoke(oidc),
      flow: flow.events,
      flowHidden: flow.hidden,
      api: api?.response,
      apiUrl: api?.url.href,
      csrfToken: deps.csrfToken(req),
    });
  }

  /**
   * GET /dashboard/sensitive, behind requireSignIn: shown only to a session whose sign-in meets the
   * step-up requirement. It calls the API's sensitive resource, which may ask for more (RFC 9470).
   */
  async function sensitive(req: Request, res: Response): Promise<void> {
    const { apiUrl, requirement } = deps.stepUp;
    const { record, api } = apiUrl
      ? await fetchApiForSession(req, deps, apiUrl)
      : { record: await getFreshTokens(req, deps), api: undefined };
    res.render('sensitive', {
      user: req.session.user,
      acr: req.session.acr,
      authTime: req.session.authTime,
      requirement,
      binding: await bindingOf(
        record.tokens,
        keyHandle(req, await deps.provider.getConfiguration()),
      ),
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

  /** The session's DPoP handle (cached), for what the page shows of its key. */
  function keyHandle(req: Request, oidc: client.Configuration) {
    return (key: JWK) => deps.dpop.forSession(oidc, req.sessionID, key);
  }

  return { home, dashboard, sensitive, refreshNow, me, flow };
}
