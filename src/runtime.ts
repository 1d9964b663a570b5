import type express from 'express';
import type { CustomFetch } from 'openid-client';
import { createApp } from './app.js';
import { loadClientKey, type ClientKey } from './auth/client-key.js';
import { githubMetadata, githubTokenErrors } from './auth/github.js';
import { createProvider, type Provider } from './auth/provider.js';
import type { Config } from './config.js';
import type { DevProvider, DevProviderOptions } from './dev-provider/dev-provider.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { ONE_PROCESS_WARNING } from './routes/health.js';
import type { SessionBackend } from './session/backend.js';
import { memoryBackend } from './session/memory-backend.js';
import { redisBackend } from './session/redis-backend.js';
import { createRevoker, type Revoker } from './tokens/revocation.js';

export interface Runtime {
  app: express.Express;
  config: Config;
  provider: Provider;
  devProvider: DevProvider | undefined;
  sessions: SessionBackend;
  revoker: Revoker;
  metrics: Metrics;
  /** codeflow's own key, with private_key_jwt. */
  clientKey: ClientKey | undefined;
  /** Stops what this runtime started (the embedded provider); the caller closes its own server. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** Default: Redis when REDIS_URL is set, else in-process. */
  sessions?: SessionBackend;
  isShuttingDown?: () => boolean;
  /** Epoch seconds; tests move time. */
  now?: () => number;
  /** The embedded provider's listen address; default: HOST, as the app's. */
  devProviderListenHost?: string;
  /** Host name in the embedded provider's issuer; default: the app's host name. */
  devProviderHostname?: string;
  devProviderMiddleware?: DevProviderOptions['middleware'];
  /** Whether the embedded provider offers or requires pushed authorization requests (default: off). */
  devProviderPar?: DevProviderOptions['par'];
  /** The embedded provider and its demo API ask for a DPoP nonce (RFC 9449 §8, §9); default: no. */
  devProviderDpopNonce?: boolean;
  /** How codeflow reaches the provider; tests route a real provider's host name to a local one. */
  providerFetch?: CustomFetch;
  /** Waits between revocation retries; tests shorten them. */
  revocationRetryDelaysMs?: readonly number[];
}

/**
 * Wires the pieces: the embedded development provider when no issuer is configured, the provider
 * client, and the app. The caller listens.
 */
export async function createRuntime(
  baseConfig: Config,
  logger: Logger,
  options: RuntimeOptions = {},
): Promise<Runtime> {
  let config = baseConfig;
  let devProvider: DevProvider | undefined;
  // private_key_jwt: read (and checked) at start, so a bad key file stops the start, not a sign-in.
  const clientKey: ClientKey | undefined =
    config.oidc.clientAuth === 'private_key_jwt'
      ? await loadClientKey(config.oidc.privateKeyFile!, config.oidc.profile === 'fapi2')
      : undefined;
  if (!config.oidc.issuer && config.devProvider) {
    // Imported only when it runs: with a real issuer, oidc-provider and Koa are never loaded.
    const { startDevProvider } = await import('./dev-provider/dev-provider.js');
    devProvider = await startDevProvider({
      port: config.devProvider.port,
      hostname: options.devProviderHostname ?? config.appBaseUrl.hostname,
      listenHost: options.devProviderListenHost ?? config.host,
      middleware: options.devProviderMiddleware,
      par: options.devProviderPar,
      profile: config.devProvider.profile,
      // A strict provider: with codeflow's DPoP on, tokens without a proof are refused.
      dpop: config.oidc.dpop ? 'required' : 'offered',
      dpopNonce: options.devProviderDpopNonce ?? false,
      accessTokenTtlSeconds: config.devProvider.accessTokenTtlSeconds,
      client: {
        clientId: config.oidc.clientId,
        clientSecret: config.oidc.clientSecret,
        authMethod: config.oidc.clientAuth,
        ...(clientKey && { jwks: { keys: [clientKey.publicJwk] } }),
        redirectUri: config.redirectUri.href,
        postLogoutRedirectUri: config.postLogoutRedirectUri.href,
        backchannelLogoutUri: new URL('/backchannel-logout', config.appBaseUrl).href,
      },
      logger,
    });
    config = Object.freeze({
      ...config,
      oidc: Object.freeze({ ...config.oidc, issuer: devProvider.issuer }),
      apiUrl: config.apiUrl ?? devProvider.apiUrl,
      stepUp: Object.freeze({
        ...config.stepUp,
        apiUrl: config.stepUp.apiUrl ?? devProvider.sensitiveApiUrl,
      }),
    });
  }
  if (!config.oidc.issuer) throw new Error('no issuer: set OIDC_ISSUER');
  if (
    !devProvider &&
    config.oidc.clientAuth === 'client_secret_basic' &&
    /[^A-Za-z0-9]/.test(config.oidc.clientId + config.oidc.clientSecret)
  ) {
    logger.warn(
      'OIDC_CLIENT_ID or OIDC_CLIENT_SECRET holds characters other than letters and digits: client_secret_basic sends them form-encoded (RFC 6749 §2.3.1), and some providers compare without decoding and refuse them; if sign-in fails with "refused this application\'s credentials", set OIDC_CLIENT_AUTH=client_secret_post',
    );
  }

  const sessions =
    options.sessions ?? (config.redisUrl ? redisBackend(config.redisUrl, logger) : memoryBackend());
  if (config.isProduction && sessions.kind === 'memory') logger.warn(ONE_PROCESS_WARNING);
  const metrics = createMetrics({
    sessionsActive: () => sessions.sessionsActive?.(),
    // Read on each scrape, so after the revoker below exists.
    revocations: () => revoker.stats(),
  });
  // GitHub: fixed endpoints instead of discovery, and its 200-with-an-error token answers read as errors.
  const github = config.github && githubMetadata(config.github.url);
  const provider = createProvider({
    issuer: config.oidc.issuer,
    ...(options.providerFetch && { fetch: options.providerFetch }),
    ...(github && {
      staticMetadata: github,
      fetch: githubTokenErrors(options.providerFetch ?? fetch, github.token_endpoint!),
    }),
    clientId: config.oidc.clientId,
    clientSecret: config.oidc.clientSecret,
    clientAuth: config.oidc.clientAuth,
    clientKey,
    idTokenAlg: config.oidc.idTokenAlg,
    timeoutMs: config.httpTimeoutMs,
    logger,
    metrics,
    wants: {
      scopes: config.oidc.scopes,
      clientAuthMethod: config.oidc.clientAuth,
      par: config.oidc.par,
      dpop: config.oidc.dpop,
      profile: config.oidc.profile,
    },
  });
  const revoker: Revoker = createRevoker(provider, options.revocationRetryDelaysMs);
  const app = createApp({
    config,
    provider,
    logger,
    sessions,
    revoker,
    metrics,
    clientKey,
    isShuttingDown: options.isShuttingDown,
    now: options.now,
    devProviderSignOutUrl: devProvider && new URL('/session/end', devProvider.issuer).href,
  });
  return {
    app,
    config,
    provider,
    devProvider,
    sessions,
    revoker,
    metrics,
    clientKey,
    close: async () => {
      // Revocations already under way get a moment to finish; none is started after this.
      await revoker.settle(2000);
      await sessions.close();
      await devProvider?.close();
    },
  };
}
