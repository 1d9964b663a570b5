import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import express from 'express';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../log.js';
import { findAccount } from './accounts.js';
import { demoApi } from './demo-api.js';
import { interactionRoutes } from './interactions.js';

export interface DevProviderOptions {
  /** 0 picks a free port (tests). */
  port: number;
  /** Host in the issuer URL; the provider is its own origin, like a real one. */
  hostname: string;
  /** Listen address; undefined: all interfaces. */
  listenHost?: string;
  client: {
    clientId: string;
    clientSecret: string;
    redirectUri: string;
    postLogoutRedirectUri: string;
  };
  accessTokenTtlSeconds: number;
  logger: Logger;
  /** Extra Koa middleware run by oidc-provider for every request (tests record what it received). */
  middleware?: Array<Parameters<Provider['use']>[0]>;
}

export interface DevProvider {
  issuer: URL;
  apiUrl: URL;
  provider: Provider;
  close(): Promise<void>;
}

const viewsDir = fileURLToPath(new URL('../../views/dev-provider/', import.meta.url));
const publicDir = fileURLToPath(new URL('../../public/', import.meta.url));

/**
 * Starts the embedded development provider: oidc-provider (a certified OpenID Provider) with the
 * demo accounts, one confidential client for codeflow, PKCE required, rotating refresh tokens,
 * revocation and RP-initiated logout, plus a demo protected API at /api/me.
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

  app.set('view engine', 'ejs');
  app.set('views', viewsDir);
  app.use('/static', express.static(publicDir, { index: false }));
  app.get('/api/me', demoApi(provider));
  app.use('/interaction', interactionRoutes(provider));
  app.use(provider.callback());

  options.logger.info({ issuer: issuer.href }, 'embedded development provider started');
  return {
    issuer,
    apiUrl: new URL('/api/me', issuer),
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
  // A fresh signing key per start: nothing to leak, nothing to configure.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = {
    ...privateKey.export({ format: 'jwk' }),
    kid: randomBytes(8).toString('hex'),
    alg: 'RS256',
    use: 'sig',
  };

  return {
    clients: [
      {
        client_id: options.client.clientId,
        client_secret: options.client.clientSecret,
        redirect_uris: [options.client.redirectUri],
        post_logout_redirect_uris: [options.client.postLogoutRedirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'RS256',
      },
    ],
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
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    // Rotate on every use, as Okta, Auth0 and Entra do; a reused refresh token revokes the grant.
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: options.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    features: {
      devInteractions: { enabled: false },
      // A client may revoke only the tokens issued to it (RFC 7009 §2.1).
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
          ctx.body = await render('logout', { form });
        },
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => {
          ctx.body = await render('logged-out', {});
        },
      },
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = await render('error', { error: out.error, description: out.error_description });
    },
  };
}
