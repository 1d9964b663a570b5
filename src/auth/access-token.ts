import type { Request } from 'express';
import * as client from 'openid-client';
import { AppError, storeUnavailable } from '../errors.js';
import type { RefreshOutcome } from '../metrics.js';
import type { DPoPHandles } from './dpop.js';
import type { FlowRecorder } from './flow-events.js';
import type { RefreshLock } from '../session/backend.js';
import type { EndSession } from '../session/end-session.js';
import type { RefreshedWrites } from '../tokens/refreshed-writes.js';
import type { Revoker } from '../tokens/revocation.js';
import type { TokenRecord, TokenStore } from '../tokens/token-store.js';
import { providerUnavailable } from './oauth-errors.js';
import type { Provider } from './provider.js';
import { isFatalRefreshError, needsRefresh, toStoredTokens } from './tokens.js';

export interface AccessTokenDeps {
  provider: Provider;
  /** Epoch seconds. */
  now: () => number;
  refreshSkewSeconds: number;
  /** Absolute session lifetime: a token record never outlives its session. */
  maxAgeSeconds: number;
  tokens: TokenStore;
  /** Serialises refreshes of one session across instances (Redis); a no-op in one process. */
  lock: RefreshLock;
  /** This instance's refreshes in progress, by session id (one map per app, see createApp). */
  inFlight: RefreshesInFlight;
  endSession: EndSession;
  revoker: Revoker;
  /** Stores refreshed tokens, and keeps trying for a few seconds when the store fails. */
  refreshedWrites: RefreshedWrites;
  /** Told how each request's refresh ended (metrics). */
  onRefresh?: (outcome: RefreshOutcome) => void;
  /** The "How you signed in" panel's record. */
  flow?: FlowRecorder;
  /** DPoP handles per session (their nonces), made from the key in the token record. */
  dpop: DPoPHandles;
}

export interface RefreshOptions {
  /** Refresh even if the token looks valid ("Refresh now", or the API said 401). */
  force?: boolean;
  /**
   * The access token the API just refused. If the store already holds another one, a sibling
   * request refreshed meanwhile: use that instead of spending the refresh token again.
   */
  rejectedAccessToken?: string;
}

/** Refreshes in progress, by session id: concurrent requests of one session share one refresh. */
export type RefreshesInFlight = Map<string, Promise<TokenRecord>>;

/**
 * This session's tokens, refreshed first when the access token is about to expire. The record is
 * read here, by the requests that need a token, and by no other.
 * @throws {AppError} session_expired (the session has ended), provider_unavailable or
 *   store_unavailable (it is kept: try again).
 */
export async function getFreshTokens(req: Request, deps: AccessTokenDeps): Promise<TokenRecord> {
  // A refresh of this session whose tokens the store refused a moment ago may be landing now.
  await deps.refreshedWrites.settled(req.sessionID);
  const record = await deps.tokens.read(req.sessionID);
  if (!record) return endAndSignInAgain(req, deps, 'tokens-missing', 'Please sign in again.');
  if (!needsRefresh(record.tokens, deps.now(), deps.refreshSkewSeconds)) return record;
  return refreshTokens(req, deps);
}

/**
 * The only place that calls the token endpoint after sign-in. One refresh per session at a time:
 * requests that arrive while it runs wait for it and take its tokens, so none of them spends the
 * (single-use, rotating) refresh token again.
 */
export async function refreshTokens(
  req: Request,
  deps: AccessTokenDeps,
  options: RefreshOptions = {},
): Promise<TokenRecord> {
  const sid = req.sessionID;
  const report = deps.onRefresh ?? (() => undefined);
  const why = options.rejectedAccessToken
    ? 'after a 401'
    : options.force
      ? 'Refresh now'
      : 'ahead of expiry';
  const started = performance.now();
  const recordFlow = (outcome: 'refreshed' | 'joined' | 'raced', rotated?: boolean) =>
    deps.flow?.record(sid, req.log, {
      step: 'refresh',
      at: deps.now() * 1000,
      ms: Math.round(performance.now() - started),
      why,
      outcome,
      rotated,
    });
  let refresh = deps.inFlight.get(sid);
  if (refresh) {
    report('joined');
    void refresh.then(
      () => recordFlow('joined'),
      () => undefined,
    );
  } else {
    refresh = underLock(sid, deps, () =>
      runRefresh(req, deps, options, (outcome, record) => {
        report(outcome);
        if (record && (outcome === 'refreshed' || outcome === 'raced'))
          recordFlow(outcome, outcome === 'refreshed' ? record.refreshes.rotated : undefined);
      }),
    ).finally(() => deps.inFlight.delete(sid));
    deps.inFlight.set(sid, refresh);
  }
  try {
    return await refresh;
  } catch (err) {
    if (err instanceof SessionOver) return endAndSignInAgain(req, deps, err.reason, err.message);
    throw err;
  }
}

/** Thrown inside a shared refresh; each request that shared it ends its session and says so. */
class SessionOver extends Error {
  constructor(
    readonly reason: 'refresh-rejected' | 'tokens-missing' | 'other-account',
    message: string,
    /** For the metrics: the provider refused the refresh token (invalid_grant), or something else. */
    readonly outcome: 'invalid_grant' | 'failed' = 'failed',
  ) {
    super(message);
  }
}

async function runRefresh(
  req: Request,
  deps: AccessTokenDeps,
  options: RefreshOptions,
  report: (outcome: RefreshOutcome, record?: TokenRecord) => void,
): Promise<TokenRecord> {
  try {
    const { record, outcome } = await refreshOnce(req, deps, options);
    report(outcome, record);
    return record;
  } catch (err) {
    const unavailable = err instanceof AppError && err.kind === 'provider_unavailable';
    report(
      err instanceof SessionOver ? err.outcome : unavailable ? 'provider_unavailable' : 'failed',
    );
    throw err;
  }
}

/** One refresh, and how it went: done here, or found already done by another request or instance. */
async function refreshOnce(
  req: Request,
  deps: AccessTokenDeps,
  options: RefreshOptions,
): Promise<{ record: TokenRecord; outcome: 'refreshed' | 'raced' }> {
  const sid = req.sessionID;
  // Read again under the lock: another request or instance may have refreshed a moment ago, or
  // signed out. A store that fails here is a 503, not a sign-out.
  await deps.refreshedWrites.settled(sid);
  const current = await deps.tokens.read(sid);
  if (!current) throw new SessionOver('tokens-missing', 'Please sign in again.');
  const siblingRefreshed =
    options.rejectedAccessToken !== undefined &&
    current.tokens.accessToken !== options.rejectedAccessToken;
  const stillFresh =
    !options.force && !needsRefresh(current.tokens, deps.now(), deps.refreshSkewSeconds);
  if (siblingRefreshed || stillFresh) return { record: current, outcome: 'raced' };
  const refreshToken = current.tokens.refreshToken;
  if (!refreshToken) {
    throw new SessionOver(
      'refresh-rejected',
      'Your access has expired and cannot be renewed. Please sign in again.',
    );
  }

  const oidc = await deps.provider.forTokenRequest();
  let response: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
  try {
    // Never retried: a rotated refresh token is single-use, and a blind retry would look like theft.
    // (openid-client's one retry for a DPoP nonce is not one: the provider refused before using it.)
    const key = current.tokens.dpopKey;
    const options = key && { DPoP: await deps.dpop.forSession(oidc, sid, key) };
    response = await client.refreshTokenGrant(oidc, refreshToken, undefined, options);
  } catch (err) {
    if (!isFatalRefreshError(err)) throw providerUnavailable(err);
    // Another instance may have rotated the token a moment ago: if the store holds a newer one, use it.
    const latest = await deps.tokens.read(sid);
    if (latest && latest.version > current.version) return { record: latest, outcome: 'raced' };
    throw new SessionOver(
      'refresh-rejected',
      'Your sign-in has expired or was revoked. Please sign in again.',
      'invalid_grant',
    );
  }

  const now = deps.now();
  const tokens = toStoredTokens(response, now, current.tokens);
  // OIDC Core §12.2: a refreshed ID token must be about the same person (the library checks iss and aud).
  const claims = response.claims();
  if (claims && claims.sub !== req.session?.user?.sub) {
    deps.revoker.revokeLater(tokens, req.log);
    throw new SessionOver(
      'other-account',
      'The provider answered for a different account. Please sign in again.',
    );
  }
  const next: TokenRecord = {
    version: current.version + 1,
    tokens,
    refreshes: {
      count: current.refreshes.count + 1,
      lastAt: now,
      rotated: response.refresh_token !== undefined && response.refresh_token !== refreshToken,
    },
  };
  const ttlMs = ((req.session?.authenticatedAt ?? now) + deps.maxAgeSeconds - now) * 1000;
  const outcome = await deps.refreshedWrites.write(sid, next, ttlMs, req.log);
  if (outcome === 'ended') {
    // Signed out while the provider was answering: what it sent must not outlive the session.
    deps.revoker.revokeLater(tokens, req.log);
    throw new SessionOver('tokens-missing', 'You have signed out.');
  }
  if (outcome === 'conflict') {
    // Only possible if the lock expired under a slow refresh: the store's newer tokens win.
    req.log.warn('a newer refresh was stored first; keeping it');
    return { record: (await deps.tokens.read(sid)) ?? next, outcome: 'raced' };
  }
  req.log.info(
    {
      expiresAt: tokens.expiresAt,
      refreshes: next.refreshes.count,
      rotated: next.refreshes.rotated,
    },
    'tokens refreshed',
  );
  return { record: next, outcome: 'refreshed' };
}

/** Runs `refresh` holding this session's cross-instance lock; the re-read inside sees the winner's tokens. */
async function underLock<T>(sid: string, deps: AccessTokenDeps, refresh: () => Promise<T>) {
  let release: () => void;
  try {
    release = await deps.lock.acquire(sid);
  } catch (err) {
    throw storeUnavailable(err);
  }
  try {
    return await refresh();
  } finally {
    // Held while refreshed tokens the store refused are tried again, so that no other instance
    // spends the old refresh token meanwhile (the lock expires by itself after 10 s).
    const pending = deps.refreshedWrites.pending(sid);
    if (pending) void pending.finally(release);
    else release();
  }
}

async function endAndSignInAgain(
  req: Request,
  deps: AccessTokenDeps,
  reason: SessionOver['reason'],
  message: string,
): Promise<never> {
  const returnTo = req.method === 'GET' ? req.originalUrl : '/dashboard';
  await deps.endSession(req, reason);
  throw new AppError('session_expired', message, { returnTo });
}
