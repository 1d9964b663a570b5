import express, { type NextFunction, type Request, type Response } from 'express';
import type Provider from 'oidc-provider';
import { DEMO_ACCOUNTS, checkPassword } from './accounts.js';

/** The authentication context class of a sign-in with a demo account's password (ID token `acr`). */
export const PASSWORD_ACR = 'urn:codeflow:dev:password';

/**
 * The embedded provider's own sign-in and consent pages (oidc-provider leaves these to the host).
 * Plain forms, no script, so they work under any CSP and without JavaScript.
 */
export function interactionRoutes(provider: Provider): express.Router {
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '4kb' });

  router.get('/:uid', async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    const view = details.prompt.name === 'login' ? 'login' : 'consent';
    res.set('Cache-Control', 'no-store');
    res.render(view, {
      uid: details.uid,
      clientId: details.params.client_id,
      scopes: String(details.params.scope ?? '')
        .split(' ')
        .filter(Boolean),
      accounts: DEMO_ACCOUNTS,
      error: undefined,
      login: '',
    });
  });

  router.post('/:uid/login', form, async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    const { login = '', password = '' } = req.body as { login?: string; password?: string };
    const account = checkPassword(String(login), String(password));
    if (!account) {
      res.status(401).render('login', {
        uid: details.uid,
        clientId: details.params.client_id,
        scopes: [],
        accounts: DEMO_ACCOUNTS,
        error: 'That user name and password do not match a demo account.',
        login: String(login),
      });
      return;
    }
    // How the person signed in (OpenID Connect Core §2): `amr` "pwd", a password (RFC 8176 §2),
    // at the one level this provider offers. The ID token carries them when the provider's
    // `claims` list `acr` and `amr` (and `acrValues` names PASSWORD_ACR, for discovery).
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: account.id, acr: PASSWORD_ACR, amr: ['pwd'] } },
      { mergeWithLastSubmission: false },
    );
  });

  router.post('/:uid/confirm', form, async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session?.accountId, clientId: String(params.client_id) });
    if (!grant) throw new Error('grant not found');
    const missing = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { consent: { grantId } },
      { mergeWithLastSubmission: true },
    );
  });

  router.get('/:uid/abort', async (req, res) => {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'The user cancelled the sign-in.' },
      { mergeWithLastSubmission: false },
    );
  });

  // An expired or unknown interaction: say so plainly instead of a stack trace.
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const name = err instanceof Error ? err.name : 'Error';
    res.status(400).render('error', {
      error: name === 'SessionNotFound' ? 'interaction_expired' : 'invalid_request',
      description: 'This sign-in page has expired. Go back to the app and start again.',
    });
  });
  return router;
}
