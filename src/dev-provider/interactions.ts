import express, { type NextFunction, type Request, type Response } from 'express';
import type Provider from 'oidc-provider';
import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { DEMO_ACCOUNTS, checkOneTimeCode, checkPassword } from './accounts.js';
import { ONE_TIME_CODE_ACR, PASSWORD_ACR } from './acr.js';

/** Whether this authorization request asks for a one-time code (`acr_values`). */
function asksForCode(acrValues: unknown): boolean {
  return String(acrValues ?? '')
    .split(' ')
    .includes(ONE_TIME_CODE_ACR);
}

/**
 * oidc-provider's interaction policy, with one more reason to show the sign-in page: the request
 * asks for the one-time-code level (`acr_values`) and the provider session was made without it.
 * `acr_values` is only a wish in OpenID Connect Core §3.1.2.1; a provider that offers step-up
 * (Keycloak, Okta, Auth0) signs the person in again at that level, and so does this one.
 */
export function stepUpPolicy() {
  const { base, Check } = interactionPolicy;
  const policy = base();
  policy.get('login')!.checks.add(
    new Check('acr_step_up', 'a stronger sign-in was asked for', (ctx: KoaContextWithOIDC) => {
      const { oidc } = ctx;
      if (!asksForCode(oidc.params?.acr_values) || ctx.oidc.result?.login)
        return Check.NO_NEED_TO_PROMPT;
      return oidc.acr === ONE_TIME_CODE_ACR ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    }),
  );
  return policy;
}

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
      // Signing in again (a step-up, or max_age passed): the account is the session's.
      login: details.session?.accountId ?? '',
      needsCode: asksForCode(details.params.acr_values),
    });
  });

  router.post('/:uid/login', form, async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    const {
      login = '',
      password = '',
      code,
    } = req.body as { login?: string; password?: string; code?: string };
    const needsCode = asksForCode(details.params.acr_values);
    const account = checkPassword(String(login), String(password));
    const codeOk = account && code !== undefined && checkOneTimeCode(account, String(code));
    // A step-up proves more about the person already signed in here. Another account would make
    // oidc-provider end that person's session on the way (and, by back-channel logout, their
    // session at the application): refuse it on this page instead, and say why.
    const signedIn = details.session?.accountId;
    if (needsCode && account && signedIn && account.id !== signedIn) {
      res.status(403).render('login', {
        uid: details.uid,
        clientId: details.params.client_id,
        scopes: [],
        accounts: DEMO_ACCOUNTS,
        error: `This stronger sign-in is for ${signedIn}, who is signed in here. To use another account, sign out first.`,
        login: signedIn,
        needsCode,
      });
      return;
    }
    if (!account || (needsCode && !codeOk)) {
      res.status(401).render('login', {
        uid: details.uid,
        clientId: details.params.client_id,
        scopes: [],
        accounts: DEMO_ACCOUNTS,
        error: needsCode
          ? 'That user name, password and one-time code do not match a demo account.'
          : 'That user name and password do not match a demo account.',
        login: String(login),
        needsCode,
      });
      return;
    }
    // How the person signed in (OpenID Connect Core §2): `amr` "pwd", a password, and "otp", a
    // one-time code (RFC 8176 §2), at the level they make. The ID token carries them when the
    // provider's `claims` list `acr` and `amr` (and `acrValues` names both levels, for discovery).
    const [acr, amr] = codeOk ? [ONE_TIME_CODE_ACR, ['pwd', 'otp']] : [PASSWORD_ACR, ['pwd']];
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: account.id, acr, amr } },
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
