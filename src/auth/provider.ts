import * as client from 'openid-client';
import { isLoopbackHost } from '../config.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';

export interface ProviderOptions {
  issuer: URL;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
  logger: Logger;
  /** Injected for tests that need to see or shape the provider's traffic. */
  customFetch?: client.CustomFetch;
  now?: () => number;
}

export type ProviderState = 'pending' | 'ready' | 'unreachable';

export interface Provider {
  /**
   * The discovered client configuration, fetched on first use and cached.
   * @throws {AppError} provider_unavailable while discovery fails (retried with backoff).
   */
  getConfiguration(): Promise<client.Configuration>;
  status(): { state: ProviderState; issuer: string };
}

const MAX_BACKOFF_MS = 30_000;

/**
 * Lazy, cached discovery. The app starts and serves its other pages while the provider is down;
 * a failed discovery is not cached, and the next attempt waits 1 s, 2 s, 4 s ... up to 30 s.
 */
export function createProvider(options: ProviderOptions): Provider {
  const now = options.now ?? Date.now;
  let configuration: client.Configuration | undefined;
  let inFlight: Promise<client.Configuration> | undefined;
  let failures = 0;
  let retryAt = 0;

  async function discover(): Promise<client.Configuration> {
    const execute = [client.enableNonRepudiationChecks];
    // http is accepted only for loopback issuers (development, tests); loadConfig enforces it.
    if (options.issuer.protocol === 'http:' && isLoopbackHost(options.issuer.hostname)) {
      execute.push(client.allowInsecureRequests);
    }
    return client.discovery(
      options.issuer,
      options.clientId,
      {
        // openid-client checks the ID token's alg against this; pinning it refuses "none" and
        // algorithm confusion even when the provider's metadata lists them (ASVS 9.1.2).
        id_token_signed_response_alg: 'RS256',
      },
      // The secret goes in the Authorization header, not the body (client_secret_basic).
      client.ClientSecretBasic(options.clientSecret),
      {
        execute,
        timeout: options.timeoutMs / 1000,
        ...(options.customFetch && { [client.customFetch]: options.customFetch }),
      },
    );
  }

  return {
    async getConfiguration() {
      if (configuration) return configuration;
      if (now() < retryAt) {
        throw new AppError('provider_unavailable', 'Please try again in a minute.', {
          retryAfterSeconds: Math.ceil((retryAt - now()) / 1000),
        });
      }
      inFlight ??= discover().then(
        (config) => {
          configuration = config;
          failures = 0;
          options.logger.info({ issuer: options.issuer.href }, 'provider discovered');
          return config;
        },
        (err: unknown) => {
          failures += 1;
          const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1));
          retryAt = now() + delay;
          options.logger.warn(
            { err, issuer: options.issuer.href, retryInMs: delay },
            'provider discovery failed',
          );
          throw new AppError('provider_unavailable', 'Please try again in a minute.', {
            cause: err,
            retryAfterSeconds: Math.ceil(delay / 1000),
          });
        },
      );
      try {
        return await inFlight;
      } finally {
        inFlight = undefined;
      }
    },
    status() {
      const state: ProviderState = configuration
        ? 'ready'
        : failures > 0
          ? 'unreachable'
          : 'pending';
      return { state, issuer: options.issuer.href };
    },
  };
}
