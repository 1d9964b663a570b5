import { randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import * as client from 'openid-client';
import type { Config } from '../config.js';
import { AppError, storeUnavailable } from '../errors.js';
import { describeDevice } from '../session/device.js';
import type { EndSession } from '../session/end-session.js';
import type { SessionEntry, SessionIndex } from '../session/session-index.js';
import {
  ensureSession,
  regenerateSession,
  saveSession,
  storeLifetimeMs,
  type SessionUser,
} from '../session/session.js';
import { canRevoke, type Revoker } from '../tokens/revocation.js';
import type { TokenStore } from '../tokens/token-store.js';
import { accessRefusal } from './access-rules.js';
import {
  authorizeEvent,
  callbackEvent,
  idTokenEvent,
  tokenEvent,
  type FlowEvent,
  type FlowRecorder,
} from './flow-events.js';
import { githubPerson } from './github.js';
import {
  checkIssuedAt,
  checkResponseShape,
  missingTransaction,
  userFrom,
} from './callback-checks.js';
import { callbackError, providerTrouble } from './oauth-errors.js';
import type { Provider } from './provider.js';
import { dpopHandle, isBound, newDPoPKey } from './dpop.js';
import {
  requirementFrom,
  shortfall,
  signInUrl,
  stepUpParams,
  type SignInFacts,
} from './step-up.js';
import { toStoredTokens } from './tokens.js';
import {
  addTransaction,
  newTransaction,
  safeReturnTo,
  takeTransaction,
  type LoginTransaction,
} from './transactions.js';

export interface AuthDeps {
  config: Config;
  provider: Provider;
  /** Epoch seconds. */
  now: () => number;
  tokens: TokenStore;
  index: SessionIndex;
  endSession: EndSession;
  /** The "How you signed in" panel's record. */
  flow: FlowRecorder;
  /** Revokes, in the background, the tokens of someone the access rules refuse. */
  revoker: Revoker;
  /** Makes the session's CSRF token (csrf-sync), stored with the session at sign-in. */
  csrfToken: (req: Request) => string;
  /** The page's Content-Security-Policy with forms allowed to post to `origin` too. */
  policyPostingTo: (origin: string) => string;
}

/** GET /login, GET /callback, POST /logout: the authorization-code flow, in the order it happens. */
export function createAuthHandlers(deps: AuthDeps) {
  const { config, provider, now } = deps;
  const github = config.oidc.kind === 'github' ? config.github : undefined;
  /**
   * Whether the authorization request is pushed (RFC 9126): always with OIDC_PAR=on, never with
   * off, and with auto whenever the provider offers it.
   */
  function pushes(oidc: client.Configuration): boolean {
    const offered = Boolean(oidc.serverMetadata().pushed_authorization_request_endpoint);
    return config.oidc.par === 'on' || (config.oidc.par === 'auto' && offered);
  }

  /** The authorization request's parameters for one transaction. */
  async function authorizationParams(tx: LoginTransaction): Promise<Record<string, string>> {
    return {
      redirect_uri: config.redirectUri.href,
      scope: config.oidc.scopes,
      state: tx.state,
      // No ID token from plain OAuth 2.0 (GitHub): nothing would carry the nonce back.
      ...(!github && { nonce: tx.nonce }),
      code_challenge: await client.calculatePKCECodeChallenge(tx.codeVerifier),
      code_challenge_method: 'S256',
      // OIDC Core §11: a request for offline_access MUST carry prompt=consent, or the provider
      // may ignore it and issue no refresh token (oidc-provider and Google do exactly that).
      ...(config.oidc.scopes.split(' ').includes('offline_access') && { prompt: 'consent' }),
      // A step-up: the level and freshness the page or the API asked for.
      ...stepUpParams(tx.stepUp),
    };
  }

  /** The request as it would go in a URL (for the flow panel, whether or not it was pushed). */
  async function authorizationUrlFor(oidc: client.Configuration, tx: LoginTransaction) {
    return client.buildAuthorizationUrl(oidc, await authorizationParams(tx));
  }

  /**
   * GET /login[?returnTo=/path][&acr_values=..&max_age=..]: a new transaction, then off to the
   * provider. acr_values and max_age come from a page's or the API's step-up (src/auth/step-up.ts).
   */
  async function login(req: Request, res: Response): Promise<void> {
    ensureSession(req); // the session may have just ended (absolute lifetime)
    const oidc = await provider.getConfiguration();
    // Only a validated same-origin path and a validated step-up are kept; nothing else from the
    // request reaches the URL.
    const stepUp = github ? undefined : requirementFrom(req.query.acr_values, req.query.max_age);
    const tx = newTransaction(safeReturnTo(req.query.returnTo), now(), stepUp);
    req.session.transactions = addTransaction(req.session.transactions, tx, now());

    // Pushed (PAR): the parameters go to the provider over the back channel, authenticated, and
    // the browser's URL carries only client_id and request_uri.
    const authorizationUrl = pushes(oidc)
      ? await client
          .buildAuthorizationUrlWithPAR(oidc, await authorizationParams(tx))
          .catch((err: unknown) => {
            throw (
              providerTrouble(err) ??
              new AppError('provider_error', 'The provider refused the sign-in request.', {
                cause: err,
              })
            );
          })
      : await authorizationUrlFor(oidc, tx);
    // The transaction must be stored before the browser can come back with its state.
    await saveSession(req);
    res.redirect(authorizationUrl.href);
  }

  /** GET /callback?code&state[&iss]: verify, exchange, validate, then start a fresh session. */
  async function callback(req: Request, res: Response): Promise<void> {
    const state = req.query.state;
    if (typeof state !== 'string' || state === '') {
      throw new AppError('bad_request', 'The sign-in response had no valid state. Start again.');
    }

    // 1. Find this browser's transaction by state and consume it: a replay finds nothing.
    ensureSession(req); // the session may have just ended (absolute lifetime): nothing to find
    const pending = Object.keys(req.session.transactions ?? {}).length;
    const { tx, missing, rest } = takeTransaction(req.session.transactions, state, now());
    req.session.transactions = rest;
    if (!tx) {
      // A signed-in person pressing Back onto the callback URL is not an error.
      if (req.session.user) return res.redirect('/dashboard');
      await saveSession(req);
      throw missingTransaction(missing, pending);
    }
    await saveSession(req);
    checkResponseShape(req.query);

    // 2. Mix-up defence (RFC 9207): the response must name the provider we sent the person to.
    //    openid-client checks this too; checking first gives the person the precise page.
    const oidc = await provider.forTokenRequest();
    const iss = req.query.iss;
    const metadata = oidc.serverMetadata();
    if (
      (iss === undefined && metadata.authorization_response_iss_parameter_supported) ||
      (iss !== undefined && iss !== metadata.issuer)
    ) {
      throw new AppError(
        'issuer_mismatch',
        'Start again from this site. If it keeps happening, tell us the reference below.',
      );
    }

    // 3. Exchange the code. openid-client checks state and error first, then sends the code with
    //    the PKCE verifier, then validates the ID token (signature, alg, iss, aud, azp, exp, nonce).
    //    The callback URL is rebuilt from APP_BASE_URL, never from Host or X-Forwarded-*, and keeps
    //    the whole query so the `iss` parameter is checked too.
    const currentUrl = new URL(config.redirectUri);
    currentUrl.search = new URL(req.originalUrl, config.appBaseUrl).search;
    // DPoP (RFC 9449): this session's own key, made now; the code exchange carries its first proof,
    // and the provider binds the access token to it.
    const dpopKey = config.oidc.dpop ? await newDPoPKey() : undefined;
    const dpop = dpopKey && { DPoP: await dpopHandle(oidc, dpopKey) };
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    const exchangeStarted = performance.now();
    try {
      tokens = await client.authorizationCodeGrant(
        oidc,
        currentUrl,
        github
          ? { expectedState: tx.state, pkceCodeVerifier: tx.codeVerifier }
          : {
              expectedState: tx.state,
              expectedNonce: tx.nonce,
              pkceCodeVerifier: tx.codeVerifier,
              idTokenExpected: true,
            },
        undefined,
        dpop,
      );
    } catch (err) {
      throw callbackError(err);
    }
    const exchangeMs = Math.round(performance.now() - exchangeStarted);
    checkIssuedAt(tokens.claims()?.iat, now());
    const signInFacts = factsOf(tokens.claims());
    if (tx.stepUp) checkStepUp(req, tx, signInFacts, tokens.claims(), now());

    // 4. Only now are the tokens trusted. Keep the claims the pages need: from the ID token, or
    //    (GitHub, no ID token) from its API: /user and the primary verified email.
    const person = github && (await githubPerson(oidc, tokens.access_token, github.apiUrl));
    // userinfo takes a bound token with a proof; one the provider left unbound, as a bearer token.
    const proofs = isBound(tokens.token_type) ? dpop : undefined;
    const user = person ? person.user : await userFrom(oidc, tokens, proofs);
    const claims = tokens.claims() ?? ({} as client.IDToken);
    if (typeof claims.sid === 'string') user.providerSid = claims.sid;
    // Access rules (ALLOWED_EMAIL_DOMAINS, ALLOWED_GROUPS): someone outside them is refused here,
    // before any session or token is kept.
    const refusal = await accessRefusal(oidc, tokens, config.accessRules, person?.claims, proofs);
    if (refusal) {
      // Issued, but to someone who may not use this application: they must not stay valid.
      deps.revoker.revokeLater(
        { ...toStoredTokens(tokens, now()), ...(dpopKey && { dpopKey }) },
        req.log,
      );
      throw refusal;
    }

    // 5. A new session id for the signed-in person (no fixation); other tabs' sign-ins carry over.
    //    The tokens go to their own record first, so a session with a user always has tokens.
    await regenerateSession(req);
    const signedInAt = now();
    const record = {
      version: 1,
      tokens: { ...toStoredTokens(tokens, signedInAt), ...(dpopKey && { dpopKey }) },
      refreshes: { count: 0 },
    };
    const lifetimeMs = config.session.maxAgeSeconds * 1000;
    await deps.tokens.write(req.sessionID, record, lifetimeMs);
    // Indexed by person and by provider session, for the sessions page and back-channel logout.
    const entry = indexEntry(user, claims, signedInAt, req.get('user-agent'));
    const ttlMs = storeLifetimeMs(
      { user, authenticatedAt: signedInAt },
      signedInAt,
      lifetimeMs / 1000,
    );
    await deps.index.add(req.sessionID, entry, ttlMs, lifetimeMs).catch((err: unknown) => {
      throw storeUnavailable(err);
    });
    // The panel's record of this sign-in, step by step (never a token, code or verifier).
    const at = now() * 1000;
    deps.flow.record(
      req.sessionID,
      req.log,
      authorizeEvent(await authorizationUrlFor(oidc, tx), tx.createdAt * 1000, pushes(oidc)),
      callbackEvent(req.query, tx.createdAt * 1000, at, metadata),
      tokenEvent(tokens, exchangeMs, at),
      ...optional(
        idTokenEvent(
          tokens,
          {
            issuer: metadata.issuer,
            clientId: config.oidc.clientId,
            nonce: github ? undefined : tx.nonce,
          },
          at,
        ),
      ),
    );
    if (Object.keys(rest).length > 0) req.session.transactions = rest;
    req.session.user = user;
    req.session.authenticatedAt = signedInAt;
    if (signInFacts.acr !== undefined) req.session.acr = signInFacts.acr;
    if (signInFacts.authTime !== undefined) req.session.authTime = signInFacts.authTime;
    // Made now, so that no later page view changes (and so writes) the session.
    deps.csrfToken(req);
    await saveSession(req);
    req.log.info({ sub: user.sub, iss: user.iss }, 'signed in');
    res.locals.signedIn = true;
    res.redirect(tx.returnTo);
  }

  /**
   * POST /logout (CSRF-checked): end the session for good, then the provider's session too. Ending
   * it leaves a tombstone, so a request still in flight cannot bring it back, and revokes the
   * refresh token in the background (RFC 7009), so a slow provider never holds up the sign-out.
   */
  async function logout(req: Request, res: Response): Promise<void> {
    const oidc = await provider.getConfiguration().catch(() => undefined);
    const endpoint = oidc?.serverMetadata().end_session_endpoint;
    // The session's record, read before the session (and it) ends, for the page below only: shown
    // once more, with this step.
    const flow = endpoint && req.session?.user ? await deps.flow.read(req.sessionID) : [];
    const tokens = (await deps.endSession(req, 'sign-out'))?.tokens;
    // Nothing personal stays in this browser's cache for the Back button (ASVS 14.3.1).
    res.set('Clear-Site-Data', '"cache"');
    res.clearCookie(config.session.cookieName, {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      secure: config.session.secureCookie,
    });

    // RP-initiated logout (RP-Initiated Logout 1.0 §2): the provider ends its session and sends
    // the browser back home. The request is a POST form, not a redirect: the ID token then never
    // sits in a URL, where browser history and the provider's access logs would keep it.
    if (oidc && endpoint && tokens?.idToken) {
      res.set('Content-Security-Policy', deps.policyPostingTo(new URL(endpoint).origin));
      const signOut: FlowEvent = {
        step: 'sign-out',
        at: now() * 1000,
        revocation: canRevoke(oidc) ? 'in the background' : 'not possible',
        atProvider: true,
      };
      return res.render('signing-out', {
        flow: [...flow, signOut],
        endpoint,
        fields: {
          id_token_hint: tokens.idToken,
          client_id: oidc.clientMetadata().client_id,
          post_logout_redirect_uri: config.postLogoutRedirectUri.href,
        },
      });
    }
    res.redirect(303, '/');
  }

  return { login, callback, logout };
}

/** How the ID token says the person signed in: the level (`acr`) and when (`auth_time`). */
function factsOf(claims: client.IDToken | undefined): SignInFacts {
  return {
    ...(typeof claims?.acr === 'string' && { acr: claims.acr.slice(0, 200) }),
    ...(typeof claims?.auth_time === 'number' && { authTime: claims.auth_time }),
  };
}

/**
 * A step-up's sign-in must show what was asked for, by the person already signed in; else 403,
 * and the session stays as it was (no upgrade). The check is ours, not openid-client's `maxAge`:
 * that covers auth_time but not acr, and its failure would read as an invalid ID token.
 * The tokens that came back are not revoked: with providers that keep one grant per person and
 * application (oidc-provider among them), revoking them would end the session's own tokens too.
 */
function checkStepUp(
  req: Request,
  tx: LoginTransaction,
  facts: SignInFacts,
  claims: client.IDToken | undefined,
  now: number,
): void {
  const current = req.session.user;
  const otherPerson = current && (current.sub !== claims?.sub || current.iss !== claims?.iss);
  const why = otherPerson
    ? 'You signed in as a different account from the one this session belongs to.'
    : shortfall(facts, tx.stepUp!, now);
  if (!why) return;
  req.log.warn(
    {
      acr: facts.acr,
      authTime: facts.authTime,
      asked: tx.stepUp,
      otherPerson: Boolean(otherPerson),
    },
    'step-up refused',
  );
  throw new AppError('step_up_failed', why, {
    details: [
      ['Asked for', tx.stepUp!.acrValues.join(' or ') || 'a recent sign-in'],
      ['The provider answered', facts.acr ?? '(no acr)'],
    ],
    signIn: signInUrl(tx.returnTo, tx.stepUp),
  });
}

/** What the sessions page will show about this sign-in; only the device's names, never the header. */
function indexEntry(
  user: SessionUser,
  claims: client.IDToken,
  signedInAt: number,
  userAgent: string | undefined,
): SessionEntry {
  const amr = Array.isArray(claims.amr)
    ? claims.amr.filter((m): m is string => typeof m === 'string').slice(0, 8)
    : undefined;
  return {
    handle: randomBytes(16).toString('base64url'),
    iss: user.iss,
    sub: user.sub,
    ...(user.providerSid && { providerSid: user.providerSid }),
    signedInAt,
    device: describeDevice(userAgent),
    ...(typeof claims.acr === 'string' && { acr: claims.acr.slice(0, 100) }),
    ...(amr?.length && { amr }),
  };
}

function optional(event: FlowEvent | undefined): FlowEvent[] {
  return event ? [event] : [];
}
