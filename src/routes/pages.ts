import type { Request, Response } from 'express';
import { callApi } from '../api/provider-api.js';
import { getFreshAccessToken, type AccessTokenDeps } from '../auth/access-token.js';
import { isUnreachable } from '../auth/oauth-errors.js';
import { tokenStatus } from '../auth/tokens.js';
import { AppError } from '../errors.js';

export interface PageDeps extends AccessTokenDeps {
  /** The API the dashboard calls; undefined: the provider's userinfo endpoint. */
  apiUrl: URL | undefined;
  csrfToken: (req: Request) => string;
}

/** GET /, GET /dashboard, GET /me. */
export function createPages(deps: PageDeps) {
  function home(req: Request, res: Response): void {
    const user = req.session?.user;
    res.render('home', { user, csrfToken: user ? deps.csrfToken(req) : undefined });
  }

  /** The person, their token status and what the API says, using a fresh access token. */
  async function dashboard(req: Request, res: Response): Promise<void> {
    const oidc = await deps.provider.getConfiguration();
    const accessToken = await getFreshAccessToken(req, deps);
    const userinfo = oidc.serverMetadata().userinfo_endpoint;
    const apiUrl = deps.apiUrl ?? (userinfo ? new URL(userinfo) : undefined);
    const api = apiUrl
      ? await callApi(oidc, accessToken, apiUrl).catch((err: unknown) => {
          throw isUnreachable(err)
            ? new AppError(
                'provider_unavailable',
                'The API did not answer. Try again in a minute.',
                { cause: err },
              )
            : new AppError('provider_error', 'The API sent an answer we could not read.', {
                cause: err,
              });
        })
      : undefined;
    res.render('dashboard', {
      user: req.session.user,
      tokens: tokenStatus(req.session.tokens!, deps.now()),
      api,
      apiUrl: apiUrl?.href,
      csrfToken: deps.csrfToken(req),
    });
  }

  /** JSON of the signed-in person for scripts on the page: claims only, never a token. */
  function me(req: Request, res: Response): void {
    const { iss, sub, name, email } = req.session.user!;
    res.json({ iss, sub, name, email });
  }

  return { home, dashboard, me };
}
