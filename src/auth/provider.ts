import * as client from 'openid-client';
import { isLoopbackHost, type ClientAuthMethod } from '../config.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { timedFetch, type Metrics, type ProviderEndpoint } from '../metrics.js';
import type { JWK } from 'jose';
import type { ClientKey } from './client-key.js';
import { proofFor } from './dpop.js';
import { providerTrouble } from './oauth-errors.js';
import {
  checkProvider,
  isEntraTenantIndependent,
  type ProviderCheck,
  type Wants,
} from './provider-check.js';

export interface ProviderOptions {
  issuer: URL;
  clientId: string;
  clientSecret: string;
  /** Default client_secret_basic. */
  clientAuth?: ClientAuthMethod;
  /** With private_key_jwt: the key that signs the client assertions. */
  clientKey?: ClientKey;
  /** The only ID-token signing algorithm accepted (ASVS 9.1.2): never "none", never a surprise. */
  idTokenAlg: string;
  timeoutMs: number;
  logger: Logger;
  /** Injected for tests that need to see or shape the provider's traffic. */
  fetch?: client.CustomFetch;
  /** Every outbound call (this provider's endpoints, and the API) is timed into it. */
  metrics?: Metrics;
  /** For a provider without discovery (GitHub): its endpoints, used as they are. */
  staticMetadata?: client.ServerMetadata;
  /** What codeflow will ask of the provider, for the provider check; default: the defaults. */
  wants?: Partial<Omit<Wants, 'issuer'>>;
  /** Milliseconds since the epoch. */
  now?: () => number;
}

export type ProviderState = 'pending' | 'ready' | 'unreachable';

/** Why the provider cannot be used: the error kind, and what the operator needs (no secret). */
export interface ProviderProblem {
  kind: string;
  [fact: string]: unknown;
}

export interface Provider {
  /**
   * The client configuration, built once per discovered metadata and shared by every request
   * (authorization URLs, API calls, revocation, logout). Discovery runs on first use and again
   * every 10 minutes.
   * @throws {AppError} provider_unavailable while the provider cannot be discovered.
   */
  getConfiguration(): Promise<client.Configuration>;
  /**
   * A configuration of its own for one token request (a code exchange or a refresh), which can
   * empty its signing-key cache when the response names a key it lacks. See createProvider.
   * With `revocationProofKey`, its revocation requests carry a DPoP proof signed with that key
   * (openid-client sends none there: see proofFor).
   * @throws {AppError} provider_unavailable while the provider cannot be discovered.
   */
  forTokenRequest(options?: { revocationProofKey?: JWK }): Promise<client.Configuration>;
  /** `problem`: why the last discovery failed (an error kind, and facts for the operator). */
  status(): {
    state: ProviderState;
    issuer: string;
    problem?: ProviderProblem;
    /** The provider check of the metadata last discovered (see provider-check.ts). */
    check?: ProviderCheck;
  };
}

/** The metadata fields of the endpoints codeflow calls, and their names in the metrics. */
const ENDPOINTS: ReadonlyArray<readonly [keyof client.ServerMetadata, ProviderEndpoint]> = [
  ['token_endpoint', 'token'],
  ['jwks_uri', 'jwks'],
  ['userinfo_endpoint', 'userinfo'],
  ['revocation_endpoint', 'revocation'],
];

const MAX_BACKOFF_MS = 30_000;
/** Metadata is re-discovered after this, so changed endpoints or jwks_uri are picked up (RFC 9700 §2.6). */
const METADATA_TTL_MS = 10 * 60_000;
/** At most one forced JWKS re-fetch per this interval, so forged kids cannot make us hammer the provider. */
const KID_REFETCH_INTERVAL_MS = 10_000;

/**
 * The provider, as the rest of the app sees it.
 *
 * Discovery is lazy and cached: the app starts and serves its other pages while the provider is
 * down; a failed discovery is not cached, and the next attempt waits 1 s, 2 s, 4 s ... up to 30 s.
 *
 * One shared Configuration per discovered metadata serves every request but the token requests:
 * building one per API call cost each dashboard view a new object and fetch wrapper.
 *
 * Signing keys: openid-client re-fetches the JWKS on an unknown `kid` only when its copy is at
 * least 60 s old, so a key rotated just after a fetch would fail sign-ins for up to a minute (and a
 * code is single-use: that person's sign-in is lost). oauth4webapi caches keys per metadata object,
 * out of our reach, so each token request (sign-in or refresh: rare) gets a Configuration of its
 * own, seeded with the JWKS codeflow keeps; when its response is signed with a `kid` it has not
 * seen, that Configuration's cache is emptied first, so the library fetches the new keys.
 */
export function createProvider(options: ProviderOptions): Provider {
  const now = options.now ?? Date.now;
  const untimed = options.fetch ?? fetch;
  /** Which endpoint a URL is, for the latency metrics: the metadata's, else the API. */
  const endpointOf = (url: string): ProviderEndpoint => {
    if (url.includes('/.well-known/')) return 'discovery';
    const known = metadata && ENDPOINTS.find(([field]) => metadata![field] === url);
    return known ? known[1] : 'api';
  };
  const baseFetch: client.CustomFetch = options.metrics
    ? timedFetch(untimed, endpointOf, options.metrics)
    : untimed;
  // http is accepted only for loopback issuers (development, tests); loadConfig enforces it.
  const insecure = options.issuer.protocol === 'http:' && isLoopbackHost(options.issuer.hostname);
  const clientMetadata: Partial<client.ClientMetadata> = {
    // openid-client checks the ID token's alg against this, refusing "none" and algorithm confusion
    // even when the provider's metadata lists them.
    id_token_signed_response_alg: options.idTokenAlg,
  };
  const clientAuth = clientAuthentication(options);

  let metadata: client.ServerMetadata | undefined;
  let shared: client.Configuration | undefined;
  let discoveredAt = 0;
  let inFlight: Promise<client.ServerMetadata> | undefined;
  let failures = 0;
  let retryAt = 0;
  let lastFailure: AppError | undefined;
  let check: ProviderCheck | undefined;
  let tenantIndependent: client.Configuration | undefined;
  const wants: Wants = {
    issuer: options.issuer.href,
    idTokenAlg: options.idTokenAlg,
    clientAuthMethod: options.clientAuth ?? 'client_secret_basic',
    scopes: 'openid',
    ...options.wants,
  };
  let jwksCache: client.ExportedJWKSCache | undefined;
  let lastKidRefetch = 0;

  async function discover(): Promise<client.ServerMetadata> {
    const discovered = await client.discovery(
      options.issuer,
      options.clientId,
      clientMetadata,
      clientAuth,
      {
        execute: insecure ? [client.allowInsecureRequests] : [],
        timeout: options.timeoutMs / 1000,
        [client.customFetch]: baseFetch,
      },
    );
    const server = discovered.serverMetadata();
    // Multi-tenant Entra ID names its issuer `.../{tenantid}/v2.0`; each ID token's `iss` holds the
    // person's own tenant. openid-client checks that against the token's `tid`, but only in the
    // Configuration discovery returns (the metadata it hands out has lost the mark): so that one
    // serves every request. Its key cache is openid-client's own (a refetch at most every 60 s).
    tenantIndependent = isEntraTenantIndependent(server.issuer) ? discovered : undefined;
    if (tenantIndependent) client.enableNonRepudiationChecks(tenantIndependent);
    return server;
  }

  function rediscover(): Promise<client.ServerMetadata> {
    inFlight ??= discover()
      .then((discovered) => {
        if (metadata?.jwks_uri !== discovered.jwks_uri) jwksCache = undefined;
        if (JSON.stringify(metadata) !== JSON.stringify(discovered)) shared = undefined;
        metadata = discovered;
        discoveredAt = now();
        failures = 0;
        lastFailure = undefined;
        const first = check === undefined;
        check = checkProvider(discovered, wants);
        options.logger.info({ issuer: options.issuer.href }, 'provider discovered');
        // Once, at the first discovery: what works and what does not with this provider.
        if (first) logCheck(options.logger, options.issuer.href, check);
        return discovered;
      })
      .catch((err: unknown) => {
        failures += 1;
        const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1));
        retryAt = now() + delay;
        lastFailure = unavailable(delay, err);
        options.logger.warn(
          {
            err,
            kind: lastFailure.kind,
            ...lastFailure.logFields,
            issuer: options.issuer.href,
            retryInMs: delay,
          },
          'provider discovery failed',
        );
        throw lastFailure;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  }

  /** A token request's Configuration: our JWKS cache in, a fetch that watches keys and `kid`s. */
  function forUse(server: client.ServerMetadata, proofKey?: JWK): client.Configuration {
    const config = new client.Configuration(server, options.clientId, clientMetadata, clientAuth);
    config.timeout = options.timeoutMs / 1000;
    client.enableNonRepudiationChecks(config);
    if (insecure) client.allowInsecureRequests(config);
    if (jwksCache) client.setJwksCache(config, jwksCache);
    config[client.customFetch] = async (url, init) => {
      if (proofKey && url === server.revocation_endpoint) {
        const dpop = await proofFor(proofKey, init.method, new URL(url));
        init = { ...init, headers: { ...init.headers, dpop } };
      }
      const response = await baseFetch(url, init);
      if (response.ok && url === server.jwks_uri) {
        const jwks = (await response
          .clone()
          .json()
          .catch(() => undefined)) as client.JWKS | undefined;
        if (Array.isArray(jwks?.keys)) jwksCache = { jwks, uat: Math.floor(now() / 1000) };
      } else if (response.ok && url === server.token_endpoint && jwksCache) {
        const kid = idTokenKid(
          await response
            .clone()
            .json()
            .catch(() => undefined),
        );
        const known = jwksCache.jwks.keys.some((key) => key.kid === kid);
        if (kid && !known && now() - lastKidRefetch >= KID_REFETCH_INTERVAL_MS) {
          lastKidRefetch = now();
          options.logger.info({ kid }, 'unknown signing key id: fetching the JWKS again');
          client.setJwksCache(config, {} as client.ExportedJWKSCache);
        }
      }
      return response;
    };
    return config;
  }

  async function current(): Promise<client.ServerMetadata> {
    // A provider without discovery (GitHub): its fixed metadata, checked once like a discovered one.
    if (options.staticMetadata) {
      if (!metadata) {
        metadata = options.staticMetadata;
        check = checkProvider(metadata, wants);
        logCheck(options.logger, options.issuer.href, check);
      }
      return metadata;
    }
    if (metadata) {
      // Stale metadata keeps serving while a fresh copy is fetched in the background.
      if (now() - discoveredAt > METADATA_TTL_MS && now() >= retryAt)
        rediscover().catch(() => undefined);
      return metadata;
    }
    if (now() < retryAt) throw unavailable(retryAt - now(), lastFailure?.cause);
    return rediscover();
  }

  return {
    async getConfiguration() {
      const server = await current();
      // Rebuilt only when re-discovery brought different metadata.
      shared ??= tenantIndependent ?? forUse(server);
      return shared;
    },
    async forTokenRequest(use) {
      const server = await current();
      return tenantIndependent ?? forUse(server, use?.revocationProofKey);
    },
    status() {
      const state: ProviderState = metadata ? 'ready' : failures > 0 ? 'unreachable' : 'pending';
      const problem = !metadata &&
        lastFailure && { kind: lastFailure.kind, ...lastFailure.logFields };
      return {
        state,
        issuer: options.issuer.href,
        ...(problem && { problem }),
        ...(check && { check }),
      };
    },
  };
}

/**
 * How codeflow proves who it is at the token and revocation endpoints.
 * - client_secret_basic (default): the secret in the Authorization header, form-encoded first as
 *   RFC 6749 §2.3.1 requires (some providers compare without decoding: then use _post);
 * - client_secret_post: the secret in the request body;
 * - private_key_jwt (RFC 7523): a short-lived assertion signed with codeflow's key; no secret at all.
 */
function clientAuthentication(options: ProviderOptions): client.ClientAuth {
  switch (options.clientAuth ?? 'client_secret_basic') {
    case 'client_secret_post':
      return client.ClientSecretPost(options.clientSecret);
    case 'private_key_jwt': {
      const key = options.clientKey;
      if (!key)
        throw new Error('private_key_jwt needs the client key (OIDC_CLIENT_PRIVATE_KEY_FILE)');
      return client.PrivateKeyJwt({ key: key.privateKey, kid: key.kid });
    }
    default:
      return client.ClientSecretBasic(options.clientSecret);
  }
}

function logCheck(logger: Logger, issuer: string, check: ProviderCheck): void {
  const gaps = check.findings.filter((f) => f.level !== 'ok');
  const fields = { issuer, verdict: check.verdict, gaps: gaps.map((f) => `${f.topic}: ${f.says}`) };
  if (check.verdict === 'fail') logger.error(fields, 'provider check failed');
  else if (gaps.length > 0) logger.warn(fields, 'provider check: works, with gaps');
  else logger.info(fields, 'provider check: all that codeflow needs');
}

/** Discovery failed: what went wrong (providerTrouble), answered with the time of the next try. */
function unavailable(retryInMs: number, cause?: unknown): AppError {
  const trouble = providerTrouble(cause);
  return new AppError(trouble?.kind ?? 'provider_unavailable', 'Please try again in a minute.', {
    cause,
    retryAfterSeconds: Math.max(1, Math.ceil(retryInMs / 1000)),
    logFields: trouble?.logFields,
  });
}

/** The `kid` in the header of a token response's ID token, if any. */
function idTokenKid(body: unknown): string | undefined {
  const idToken = (body as { id_token?: unknown } | undefined)?.id_token;
  if (typeof idToken !== 'string') return undefined;
  try {
    const header = JSON.parse(
      Buffer.from(idToken.split('.')[0] ?? '', 'base64url').toString('utf8'),
    ) as {
      kid?: unknown;
    };
    return typeof header.kid === 'string' ? header.kid : undefined;
  } catch {
    return undefined;
  }
}
