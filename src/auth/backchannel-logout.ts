import { createHash } from 'node:crypto';
import express from 'express';
import {
  createRemoteJWKSet,
  customFetch,
  type FetchImplementation,
  type JWTVerifyGetKey,
} from 'jose';
import * as client from 'openid-client';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { LogoutTokenError, verifyLogoutToken } from './logout-token.js';
import type { Provider } from './provider.js';

export type BackchannelOutcome = 'accepted' | 'rejected' | 'unavailable';

export interface BackchannelLogoutDeps {
  provider: Provider;
  clientId: string;
  /** config.oidc.idTokenAlg: logout tokens are signed like ID tokens (Back-Channel Logout §2.4). */
  algorithm: string;
  /** Epoch seconds. */
  now: () => number;
  /** true the first time `key` is seen within ttlMs, false for a replay; rejects when the store is unavailable. */
  remember: (key: string, ttlMs: number) => Promise<boolean>;
  /**
   * Ends every session of the provider session `sid` (only those of `sub` when both are given), or
   * with only `sub` every session of that person; returns how many ended. Rejects when the store is
   * unavailable.
   */
  endSessions: (who: { iss: string; sid?: string; sub?: string }, log: Logger) => Promise<number>;
  /** Called once per request, for metrics. */
  outcome?: (outcome: BackchannelOutcome) => void;
  /** Key getter for tests; default: the provider's JWKS (jwks_uri), fetched and cached by jose. */
  keys?: JWTVerifyGetKey;
  /** Timeout of a JWKS fetch (HTTP_TIMEOUT_MS); default 5 s. */
  timeoutMs?: number;
}

/** §2.6: "recently issued"; the provider sends a logout token at once, and retries soon. */
const MAX_AGE_SECONDS = 300;
/** Longer than a token stays acceptable (300 s old + 30 s of skew), so a replay is always seen. */
const JTI_TTL_MS = 10 * 60_000;
const RETRY_AFTER_SECONDS = 5;

/**
 * POST /backchannel-logout (OpenID Connect Back-Channel Logout 1.0 §2.5, §2.8): the provider
 * posts a logout token; when it is valid and new, every session it names ends, on every instance.
 *
 * The answers say nothing that would help a forger: 200 with an empty body, or 400
 * `{"error":"invalid_request"}` whatever was wrong (the reason goes to the log), or 503
 * `{"error":"temporarily_unavailable"}` when the store or the provider's keys cannot be reached,
 * so the provider may retry. Never a 500: errors of this route, body-parser errors included, are
 * answered by its own error handler, not the app's.
 *
 * Returns the route's middleware chain: its own small form parser, the handler, its error handler.
 */
export function createBackchannelLogout(
  deps: BackchannelLogoutDeps,
): Array<express.RequestHandler | express.ErrorRequestHandler> {
  // A logout token is a few hundred bytes; the spec's body has one parameter.
  const form = express.urlencoded({ extended: false, limit: '16kb', parameterLimit: 5 });
  const keysFor = remoteKeys(deps.timeoutMs ?? 5000);

  const handler: express.RequestHandler = async (req, res) => {
    try {
      const token = logoutTokenOf(req);
      const configuration = await deps.provider.getConfiguration();
      const { issuer } = configuration.serverMetadata();
      const claims = await verifyLogoutToken(token, {
        issuer,
        clientId: deps.clientId,
        algorithm: deps.algorithm,
        keys: deps.keys ?? keysFor(configuration),
        now: deps.now(),
        maxAgeSeconds: MAX_AGE_SECONDS,
      });
      // §2.6: a jti seen before is a replay; remembered across instances, by a hash (no raw claim
      // values as store keys). Remembered before anything ends, so a replay can never end a
      // session; the cost: a store failure just after this makes the provider's retry a "replay".
      const key = `jti:${sha256(`${claims.iss} ${claims.jti}`)}`;
      if (!(await deps.remember(key, JTI_TTL_MS))) throw new LogoutTokenError('jti');
      const ended = await deps.endSessions(
        { iss: claims.iss, sid: claims.sid, sub: claims.sub },
        req.log,
      );
      req.log.info({ ended, by: claims.sid ? 'sid' : 'sub' }, 'back-channel logout');
      deps.outcome?.('accepted');
      // §2.8: 200 OK; the body may be empty. no-store: a response to a token is never cached.
      res.status(200).set('Cache-Control', 'no-store').end();
    } catch (err) {
      answer(err, req, res);
    }
  };

  const errorHandler: express.ErrorRequestHandler = (err, req, res, _next) => {
    // The parser refused the body (too large, too many parameters, bad charset, aborted): the
    // sender's fault, answered like any other invalid request.
    const status = (err as { status?: unknown }).status;
    const clientFault = typeof status === 'number' && status >= 400 && status < 500;
    answer(clientFault ? new LogoutTokenError('body') : err, req, res);
  };

  function answer(err: unknown, req: express.Request, res: express.Response): void {
    if (res.headersSent) return;
    res.set('Cache-Control', 'no-store');
    if (err instanceof LogoutTokenError) {
      // The reason only: never the token, nor any of its claims.
      req.log.warn({ reason: err.reason }, 'back-channel logout rejected');
      deps.outcome?.('rejected');
      res.status(400).json({ error: 'invalid_request' });
      return;
    }
    req.log.error({ err }, 'back-channel logout unavailable');
    deps.outcome?.('unavailable');
    const retryAfter = err instanceof AppError ? err.retryAfterSeconds : undefined;
    res.set('Retry-After', String(retryAfter ?? RETRY_AFTER_SECONDS));
    res.status(503).json({ error: 'temporarily_unavailable' });
  }

  return [form, handler, errorHandler];
}

/**
 * §2.5: the body is `application/x-www-form-urlencoded` with one `logout_token`.
 * @throws {LogoutTokenError} any other body.
 */
function logoutTokenOf(req: express.Request): string {
  if (!req.is('application/x-www-form-urlencoded')) throw new LogoutTokenError('content_type');
  const token = (req.body as Record<string, unknown> | undefined)?.logout_token;
  // A repeated parameter arrives as an array: refused, not "the first one".
  if (typeof token !== 'string' || token.length === 0) throw new LogoutTokenError('logout_token');
  return token;
}

/**
 * The provider's keys, from the discovered jwks_uri: one jose key set per jwks_uri, made on first
 * use and again when re-discovery brings another jwks_uri. It refetches on an unknown `kid` (at
 * most every 30 s) and every 10 minutes. The provider's own fetch is used, so its timeouts apply
 * and tests that shape the provider's traffic see these requests too. jose fetches any http(s)
 * URL: the jwks_uri comes from discovery, which allowed http only for a loopback issuer.
 */
function remoteKeys(timeoutMs: number): (configuration: client.Configuration) => JWTVerifyGetKey {
  let cached: { uri: string; keys: JWTVerifyGetKey } | undefined;
  return (configuration) => {
    const uri = configuration.serverMetadata().jwks_uri;
    if (!uri) throw new AppError('provider_unavailable', 'The provider publishes no keys.');
    if (cached?.uri !== uri) {
      const fetchImpl = configuration[client.customFetch] as FetchImplementation | undefined;
      cached = {
        uri,
        keys: createRemoteJWKSet(new URL(uri), {
          timeoutDuration: timeoutMs,
          ...(fetchImpl && { [customFetch]: fetchImpl }),
        }),
      };
    }
    return cached.keys;
  };
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}
