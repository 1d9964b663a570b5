import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler } from 'express';
import Provider, {
  type ClientMetadata,
  type Configuration,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import type { Logger } from '../log.js';
import { findAccount } from './accounts.js';
import { ONE_TIME_CODE_ACR, PASSWORD_ACR } from './acr.js';
import { demoApi } from './demo-api.js';
import { interactionRoutes, stepUpPolicy } from './interactions.js';

export interface DevProviderOptions {
  /** 0 picks a free port (tests). */
  port: number;
  /** Host in the issuer URL; the provider is its own origin, like a real one. */
  hostname: string;
  /** Listen address (HOST; loopback by default); undefined: all interfaces. */
  listenHost?: string;
  client: {
    clientId: string;
    clientSecret: string;
    /** How codeflow authenticates: the provider accepts only this method, as a strict one would. */
    authMethod?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
    /** codeflow's public keys, for private_key_jwt. */
    jwks?: { keys: object[] };
    redirectUri: string;
    postLogoutRedirectUri: string;
    /**
     * codeflow's `POST /backchannel-logout` (APP_BASE_URL + '/backchannel-logout'): registered as
     * the client's backchannel_logout_uri, so signing out here ends codeflow's sessions too.
     */
    backchannelLogoutUri?: string;
  };
  /** Lifetime of every access token: a person's (AccessToken) and the service client's (ClientCredentials). */
  accessTokenTtlSeconds: number;
  logger: Logger;
  /** Pushed authorization requests: not offered (default), offered, or required. */
  par?: 'off' | 'on' | 'required';
  /**
   * DPoP (RFC 9449): offered (default: a proof binds the token, none gets a bearer token) or
   * required of codeflow's client (`dpop_bound_access_tokens`), as a strict provider does.
   */
  dpop?: 'offered' | 'required';
  /** The token endpoint and the demo API ask for a DPoP nonce before they take a proof. */
  dpopNonce?: boolean;
  /**
   * fapi2: the FAPI 2.0 Security Profile, as oidc-provider enforces it: PAR required, PKCE S256,
   * private_key_jwt with assertions for this issuer, DPoP-bound tokens, ID tokens signed PS256.
   */
  profile?: 'none' | 'fapi2';
  /** Extra Koa middleware run by oidc-provider for every request (tests record what it received). */
  middleware?: Array<Parameters<Provider['use']>[0]>;
}

export interface DevProvider {
  issuer: URL;
  apiUrl: URL;
  /** The demo API's resource that needs a recent sign-in with a one-time code (RFC 9470). */
  sensitiveApiUrl: URL;
  provider: Provider;
  close(): Promise<void>;
}

/**
 * The demo service client: code that calls the demo API as itself, with the client_credentials
 * grant (RFC 6749 §4.4), as examples/service-client.ts does. Development only: like the demo
 * passwords, its secret is published (README, the example's defaults), so `npm start` and
 * `npm run example:service` work with nothing to configure.
 */
export const DEMO_SERVICE_CLIENT = Object.freeze({
  clientId: 'codeflow-service',
  clientSecret: 'codeflow-service-demo-secret',
  /** The one scope it may ask for: read access to the demo API. */
  scope: 'api:read',
});

/** DEMO_SERVICE_CLIENT as oidc-provider registers it. */
const SERVICE_CLIENT: ClientMetadata = {
  // No person, no browser: no redirect URIs, no response types, only client_credentials.
  client_id: DEMO_SERVICE_CLIENT.clientId,
  client_secret: DEMO_SERVICE_CLIENT.clientSecret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  // The scopes it may be granted; asking for any other listed scope is invalid_scope.
  scope: DEMO_SERVICE_CLIENT.scope,
};

const viewsDir = fileURLToPath(new URL('../../views/dev-provider/', import.meta.url));
const publicDir = fileURLToPath(new URL('../../public/', import.meta.url));

/**
 * Starts the embedded development provider: oidc-provider (a certified OpenID Provider) with the
 * demo accounts, one confidential client for codeflow, PKCE required, rotating refresh tokens,
 * revocation, RP-initiated logout (GET and POST) and back-channel logout, plus a demo protected API
 * at /api/me. A second client, DEMO_SERVICE_CLIENT, may use the client_credentials grant only.
 */
export async function startDevProvider(options: DevProviderOptions): Promise<DevProvider> {
  const app = express();
  app.disable('x-powered-by');
  const server: Server = options.listenHost
    ? app.listen(options.port, options.listenHost)
    : app.listen(options.port);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const issuer = new URL(`http://${options.hostname}:${port}`);

  const render = (view: string, locals: object) =>
    new Promise<string>((resolve, reject) =>
      app.render(view, locals, (err, html) => (err ? reject(err) : resolve(html))),
    );
  // No trailing slash, as most providers spell their issuer.
  const provider = new Provider(issuer.origin, providerConfiguration(options, render));
  for (const m of options.middleware ?? []) provider.use(m);
  provider.on('server_error', (_ctx, err) => options.logger.error({ err }, 'dev provider error'));
  // Neither the logout token nor the provider session id is logged: only who was told, and how it went.
  provider.on('backchannel.success', (_ctx, client) =>
    options.logger.info({ clientId: client.clientId }, 'dev provider: back-channel logout sent'),
  );
  provider.on('backchannel.error', (_ctx, err, client) =>
    options.logger.warn(
      { err, clientId: client.clientId },
      'dev provider: back-channel logout failed',
    ),
  );

  app.set('view engine', 'ejs');
  app.set('views', viewsDir);
  // First, so every page has them: the interaction routes' and oidc-provider's own (Koa writes
  // to the same response, and keeps headers already set).
  app.use(refuseFraming);
  app.use('/static', express.static(publicDir, { index: false }));
  const api = demoApi(provider, { requireNonce: options.dpopNonce, logger: options.logger });
  app.get('/api/me', api.me);
  app.get('/api/sensitive', api.sensitive);
  app.use('/interaction', interactionRoutes(provider));
  app.post(
    '/session/end',
    express.urlencoded({ extended: false, limit: '8kb', parameterLimit: 10 }),
    endSessionByPost,
  );
  app.use(provider.callback());

  options.logger.info(
    { issuer: issuer.href, host: (server.address() as AddressInfo).address, port },
    'embedded development provider started',
  );
  return {
    issuer,
    apiUrl: new URL('/api/me', issuer),
    sensitiveApiUrl: new URL('/api/sensitive', issuer),
    provider,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function providerConfiguration(
  options: DevProviderOptions,
  render: (view: string, locals: object) => Promise<string>,
): Configuration {
  // A fresh signing key per start: nothing to leak, nothing to configure. FAPI 2.0 allows no
  // RSASSA-PKCS1-v1_5 (RS256): the same kind of key then signs PS256.
  const fapi2 = options.profile === 'fapi2';
  const idTokenAlg = fapi2 ? 'PS256' : 'RS256';
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = {
    ...privateKey.export({ format: 'jwk' }),
    kid: randomBytes(8).toString('hex'),
    alg: idTokenAlg,
    use: 'sig',
  };
  const dpopRequired = fapi2 || options.dpop === 'required';

  return {
    clients: [
      {
        client_id: options.client.clientId,
        client_secret: options.client.clientSecret,
        redirect_uris: [options.client.redirectUri],
        post_logout_redirect_uris: [options.client.postLogoutRedirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: options.client.authMethod ?? 'client_secret_basic',
        ...(options.client.jwks && { jwks: options.client.jwks as never }),
        id_token_signed_response_alg: idTokenAlg,
        // Every ID token says when the person signed in, as Keycloak's and Okta's do: a page that
        // asks for a recent sign-in (step-up) can judge one without asking for max_age first.
        require_auth_time: true,
        // RFC 9449 §5.2: every token request must carry a proof; a token is never a bearer token.
        ...(dpopRequired && { dpop_bound_access_tokens: true }),
        // Back-Channel Logout 1.0: a logout token is posted here when the person signs out at the
        // provider. session_required: ID tokens and logout tokens carry `sid`, so one provider
        // session ends exactly the codeflow sessions it started.
        ...(options.client.backchannelLogoutUri !== undefined && {
          backchannel_logout_uri: options.client.backchannelLogoutUri,
          backchannel_logout_session_required: true,
        }),
      },
      // FAPI 2.0 allows no client secret: the service client (client_secret_basic) is not offered.
      ...(fapi2 ? [] : [SERVICE_CLIENT]),
    ],
    // FAPI 2.0: private_key_jwt only (or mutual TLS, not offered here); a client with a secret is refused.
    ...(fapi2 && { clientAuthMethods: ['private_key_jwt'] }),
    fetch: fetchAllowing(options.client.backchannelLogoutUri),
    jwks: { keys: [signingKey as never] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount: (_ctx, id) => {
      const account = findAccount(id);
      if (!account) return undefined;
      return {
        accountId: account.id,
        claims: () => ({
          sub: account.id,
          name: account.name,
          email: account.email,
          email_verified: true,
        }),
      };
    },
    // How each sign-in happened (PASSWORD_ACR, amr ["pwd"], or with a one-time code too) goes into
    // the ID token: the sessions page shows it, and a step-up asks for ONE_TIME_CODE_ACR.
    acrValues: [PASSWORD_ACR, ONE_TIME_CODE_ACR],
    // Asking for a level the session lacks (acr_values) means signing in again, as Keycloak does.
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: stepUpPolicy(),
    },
    // The access token remembers how its sign-in happened, so the demo API can ask for more (RFC 9470).
    extraTokenClaims: (ctx, token) => {
      if (token.kind !== 'AccessToken') return undefined;
      const from = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
      return from ? { acr: from.acr, auth_time: from.authTime } : undefined;
    },
    claims: {
      openid: ['sub', 'acr', 'amr'],
      profile: ['name'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'profile', 'email', 'offline_access', DEMO_SERVICE_CLIENT.scope],
    pkce: { required: () => true },
    // Rotate on every use, as Okta, Auth0 and Entra do; a reused refresh token revokes the grant.
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: options.accessTokenTtlSeconds,
      // Opaque, kept in the provider's store like a person's access token (no resource indicator
      // is asked for, so no JWT): the demo API looks it up there.
      ClientCredentials: options.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    features: {
      devInteractions: { enabled: false },
      // Pushed authorization requests (RFC 9126): off unless asked for, so the default demo shows
      // the request in the URL, where a learner can read it; tests turn them on, or require them.
      pushedAuthorizationRequests: {
        enabled: fapi2 || (options.par ?? 'off') !== 'off',
        requirePushedAuthorizationRequests: fapi2 || options.par === 'required',
      },
      // FAPI 2.0 as oidc-provider enforces it (PKCE, assertion audience, redirect_uri always, ...).
      fapi: { enabled: fapi2, profile: '2.0' },
      dPoP: {
        enabled: true,
        // Only to demand nonces: the secret signs them, and is made fresh per start.
        ...(options.dpopNonce && {
          nonceSecret: randomBytes(32),
          requireNonce: () => true,
        }),
      },
      // A client may revoke only the tokens issued to it (RFC 7009 §2.1).
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      // RFC 6749 §4.4, for DEMO_SERVICE_CLIENT only: the grant_types of codeflow's client exclude it.
      clientCredentials: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
          // Sent here by codeflow's sign-out (it names itself), or come on their own (the demo of
          // back-channel logout): the page says which.
          const fromApp = ctx.oidc.params?.client_id !== undefined;
          ctx.body = await render('logout', { form, fromApp });
        },
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => {
          ctx.body = await render('logged-out', { appUrl: options.client.postLogoutRedirectUri });
        },
      },
    },
    ...(fapi2 && {
      enabledJWA: {
        idTokenSigningAlgValues: ['PS256', 'ES256', 'EdDSA'],
        clientAuthSigningAlgValues: ['PS256', 'ES256', 'EdDSA'],
      },
    }),
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = await render('error', { error: out.error, description: out.error_description });
    },
  };
}

/**
 * oidc-provider's outbound fetch, letting through the one URL we registered ourselves.
 *
 * oidc-provider refuses to connect to loopback, private and other special-use addresses (its
 * SSRF protection: a `dispatcher` on every outbound request), so a logout token for codeflow on
 * http://localhost or 127.0.0.1 would never arrive. The backchannel_logout_uri is configuration,
 * not input from a request, so that exact URL goes without the check; any other URL keeps it.
 */
function fetchAllowing(trusted: string | undefined): NonNullable<Configuration['fetch']> {
  const href = trusted === undefined ? undefined : new URL(trusted).href;
  return (input, init) => {
    const url = input instanceof Request ? input.url : new URL(input).href;
    if (href === undefined || url !== href || init === undefined) return fetch(input, init);
    const { dispatcher: _ssrfCheck, ...rest } = init as RequestInit & { dispatcher?: unknown };
    return fetch(input, rest);
  };
}

/**
 * The provider's pages (sign-in, consent, sign-out, errors) are never shown inside another site's
 * frame: a page that frames them could overlay its own buttons and have the person consent or
 * sign out unawares (clickjacking). CSP `frame-ancestors` for current browsers, X-Frame-Options for
 * older ones. Only `frame-ancestors`: a fuller policy (script-src) would block the inline script
 * of oidc-provider's form_post page. Its web_message mode, which must be framed, removes both
 * itself; it is not enabled here.
 */
const refuseFraming: RequestHandler = (_req, res, next) => {
  res.set('Content-Security-Policy', "frame-ancestors 'none'");
  res.set('X-Frame-Options', 'DENY');
  next();
};

/**
 * RP-Initiated Logout 1.0 §2 lets the client send its logout request by POST, so the ID token in
 * `id_token_hint` never sits in a URL (browser history, the provider's access log). oidc-provider 9
 * serves POST at the end-session endpoint only with `enableHttpPostMethods`, which it refuses
 * unless its session cookie is SameSite=None; browsers drop SameSite=None cookies that are not
 * Secure, so that cannot work over the plain http of development. This route takes the POST,
 * parses the form here, and hands oidc-provider the equivalent GET, rewriting the method and URL
 * of this in-process request only: no browser, proxy or log ever sees that URL. The person's
 * provider session still arrives with the POST, because in development codeflow and this provider
 * share a host (ports differ, the site is the same) and SameSite=Lax cookies go with same-site POSTs.
 *
 * The rewritten request carries `codeflowOriginalMethod = 'POST'`, so tests (through the
 * provider's middleware, `ctx.req`) can tell that the hint arrived in a form and not in a URL.
 */
const endSessionByPost: RequestHandler = (req, _res, next) => {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries((req.body ?? {}) as Record<string, unknown>)) {
    // A repeated parameter stays repeated: oidc-provider rejects duplicates itself.
    for (const one of Array.isArray(value) ? value : [value])
      if (typeof one === 'string') params.append(name, one);
  }
  (req as IncomingMessage & { codeflowOriginalMethod?: string }).codeflowOriginalMethod = 'POST';
  req.method = 'GET';
  req.url = `${req.path}?${params}`;
  // The body has been read: nothing downstream may try to parse it again.
  delete req.headers['content-type'];
  delete req.headers['content-length'];
  delete req.headers['transfer-encoding'];
  next();
};
