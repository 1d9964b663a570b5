import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { serializeError } from './log.js';

export type RefreshOutcome =
  'refreshed' | 'joined' | 'raced' | 'invalid_grant' | 'provider_unavailable' | 'failed';
export type SignOutKind =
  | 'user'
  | 'other_session'
  | 'back_channel'
  | 'expired'
  | 'refresh_rejected'
  | 'other_account'
  | 'tokens_missing';
export type ProviderEndpoint =
  'discovery' | 'jwks' | 'token' | 'userinfo' | 'revocation' | 'api' | 'other';

const REFRESH_OUTCOMES: readonly RefreshOutcome[] = [
  'refreshed',
  'joined',
  'raced',
  'invalid_grant',
  'provider_unavailable',
  'failed',
];
const SIGN_OUT_KINDS: readonly SignOutKind[] = [
  'user',
  'other_session',
  'back_channel',
  'expired',
  'refresh_rejected',
  'other_account',
  'tokens_missing',
];
const BACKCHANNEL_OUTCOMES = ['accepted', 'rejected', 'unavailable'] as const;

/** What codeflow counts and times, each into its own registry (never prom-client's global one). */
export interface Metrics {
  readonly registry: Registry;
  /** `reason` is 'ok' for a success, else the error kind. */
  signIn(outcome: 'success' | 'failure', reason: string): void;
  refresh(outcome: RefreshOutcome): void;
  signOut(kind: SignOutKind, count?: number): void;
  backchannelLogout(outcome: 'accepted' | 'rejected' | 'unavailable'): void;
  observeProvider(endpoint: ProviderEndpoint, seconds: number, outcome: 'ok' | 'error'): void;
  observeStore(operation: string, seconds: number, outcome: 'ok' | 'error'): void;
}

export interface MetricsOptions {
  /** prom-client's process_* and nodejs_* metrics, into this registry. Default true. */
  defaultMetrics?: boolean;
  /** Read on each scrape as codeflow_sessions_active; undefined leaves the sample out. */
  sessionsActive?: () => number | undefined;
  /** The revoker's running totals, read on each scrape. */
  revocations?: () => {
    revoked: number;
    failedAttempts: number;
    gaveUp: number;
    /** Sign-outs whose tokens could not be revoked: the provider has no revocation endpoint. */
    unsupported?: number;
  };
}

/** A fresh registry with codeflow's metrics; each app gets its own, so tests can build many. */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const { defaultMetrics = true, sessionsActive, revocations } = options;
  const registry = new Registry();
  const registers = [registry];
  if (defaultMetrics) collectDefaultMetrics({ register: registry });

  const signIns = new Counter({
    name: 'codeflow_sign_ins_total',
    help: 'Sign-ins finished, by outcome and the error kind that stopped them.',
    labelNames: ['outcome', 'reason'] as const,
    registers,
  });
  const refreshes = new Counter({
    name: 'codeflow_refreshes_total',
    help: 'Token refreshes asked for, by how each ended.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const signOuts = new Counter({
    name: 'codeflow_sign_outs_total',
    help: 'Sessions ended, by what ended them.',
    labelNames: ['kind'] as const,
    registers,
  });
  const backchannelLogouts = new Counter({
    name: 'codeflow_backchannel_logouts_total',
    help: 'Back-channel logout requests received, by outcome.',
    labelNames: ['outcome'] as const,
    registers,
  });
  new Counter({
    name: 'codeflow_token_revocations_total',
    help: 'Token revocations at the provider: revoked, attempts that failed, tokens given up on, and sign-outs the provider cannot revoke (no endpoint).',
    labelNames: ['outcome'] as const,
    registers,
    // The revoker keeps the totals; a scrape copies them in (a counter cannot be set, so reset and add).
    collect() {
      const totals = revocations?.() ?? { revoked: 0, failedAttempts: 0, gaveUp: 0 };
      this.reset();
      this.inc({ outcome: 'revoked' }, totals.revoked);
      this.inc({ outcome: 'failed_attempt' }, totals.failedAttempts);
      this.inc({ outcome: 'gave_up' }, totals.gaveUp);
      this.inc({ outcome: 'unsupported' }, totals.unsupported ?? 0);
    },
  });
  const providerDuration = new Histogram({
    name: 'codeflow_provider_request_duration_seconds',
    help: 'Time until the provider or the API answered with headers, by endpoint and outcome.',
    labelNames: ['endpoint', 'outcome'] as const,
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const storeDuration = new Histogram({
    name: 'codeflow_store_request_duration_seconds',
    help: 'Time each session store call took, by operation and outcome.',
    labelNames: ['operation', 'outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  if (sessionsActive) {
    new Gauge({
      name: 'codeflow_sessions_active',
      help: 'Sessions the store holds now, where the store can tell.',
      registers,
      collect() {
        const count = sessionsActive();
        if (count === undefined) this.remove({});
        else this.set(count);
      },
    });
  }

  // Known label sets start at zero, so a dashboard shows 0 rather than no series at all.
  signIns.inc({ outcome: 'success', reason: 'ok' }, 0);
  for (const outcome of REFRESH_OUTCOMES) refreshes.inc({ outcome }, 0);
  for (const kind of SIGN_OUT_KINDS) signOuts.inc({ kind }, 0);
  for (const outcome of BACKCHANNEL_OUTCOMES) backchannelLogouts.inc({ outcome }, 0);

  return {
    registry,
    signIn: (outcome, reason) => signIns.inc({ outcome, reason }),
    refresh: (outcome) => refreshes.inc({ outcome }),
    signOut(kind, count = 1) {
      // A counter throws on a negative increment; a metric must never break the request.
      if (count > 0) signOuts.inc({ kind }, count);
    },
    backchannelLogout: (outcome) => backchannelLogouts.inc({ outcome }),
    observeProvider: (endpoint, seconds, outcome) =>
      providerDuration.observe({ endpoint, outcome }, seconds),
    observeStore: (operation, seconds, outcome) =>
      storeDuration.observe({ operation, outcome }, seconds),
  };
}

const secondsSince = (started: number) => (performance.now() - started) / 1000;

/**
 * Wraps a fetch so each call is timed under the endpoint `classify(url)` names; errors (rejections)
 * count as outcome 'error', any HTTP answer as 'ok'. Fits both `fetch` and openid-client's
 * `customFetch` (`(url: string, options) => Promise<Response>`): the result has the type it was given.
 * The time is taken when the headers arrive: the body may be read later, or never.
 */
export function timedFetch<F extends (url: string, options: never) => Promise<Response>>(
  base: F,
  classify: (url: string) => ProviderEndpoint,
  metrics: Metrics,
): F {
  const timed = async (
    input: string | URL | { url: string },
    options: never,
  ): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const endpoint = classify(url);
    const started = performance.now();
    try {
      const response = await base(input as string, options);
      metrics.observeProvider(endpoint, secondsSince(started), 'ok');
      return response;
    } catch (err) {
      metrics.observeProvider(endpoint, secondsSince(started), 'error');
      throw err;
    }
  };
  return timed as unknown as F;
}

/**
 * The same backend, with each asynchronous call timed into codeflow_store_request_duration_seconds
 * under its path (`getSession`, `tokens.read`, `lock.acquire`). Wraps whatever the backend has, so
 * new methods are timed without a change here; values and synchronous methods pass through, and
 * `close` is not timed (it is no request).
 */
export function timedBackend<T extends object>(backend: T, metrics: Metrics): T {
  return timedObject(backend, '', metrics) as T;
}

function timedObject(target: object, prefix: string, metrics: Metrics): object {
  const copy: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(target)) {
    const path = prefix + name;
    if (typeof value === 'function' && path !== 'close') {
      copy[name] = timedFunction(value as (...args: unknown[]) => unknown, target, path, metrics);
    } else if (isPlainObject(value)) {
      copy[name] = timedObject(value, `${path}.`, metrics);
    } else {
      copy[name] = value;
    }
  }
  return copy;
}

function timedFunction(
  fn: (...args: unknown[]) => unknown,
  self: object,
  operation: string,
  metrics: Metrics,
): (...args: unknown[]) => unknown {
  return (...args) => {
    const started = performance.now();
    const result = fn.apply(self, args);
    if (!(result instanceof Promise)) return result;
    return result.then(
      (value: unknown) => {
        metrics.observeStore(operation, secondsSince(started), 'ok');
        return value;
      },
      (err: unknown) => {
        metrics.observeStore(operation, secondsSince(started), 'error');
        throw err;
      },
    );
  };
}

function isPlainObject(value: unknown): value is object {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * GET /metrics. With a token: only `Authorization: Bearer <token>` (compared in constant time over
 * SHA-256 digests, so neither content nor length leaks), else 401. Without a token in production:
 * only requests straight from loopback, else 403. Without a token outside production: open.
 * A failure while collecting answers 503 `{"error":"metrics_unavailable"}`.
 */
export function metricsEndpoint(options: {
  metrics: Metrics;
  token?: string;
  isProduction: boolean;
}): RequestHandler {
  const { metrics, token, isProduction } = options;
  const expected = token === undefined ? undefined : sha256(token);
  return async function metricsHandler(req, res) {
    res.set('Cache-Control', 'no-store');
    if (expected) {
      const presented = /^Bearer +(\S+) *$/i.exec(req.get('authorization') ?? '')?.[1];
      if (presented === undefined || !timingSafeEqual(sha256(presented), expected)) {
        res.set('WWW-Authenticate', 'Bearer realm="metrics"');
        res.status(401).json({ error: 'unauthorized' });
        return;
      }
    } else if (isProduction && !isStraightFromLoopback(req)) {
      res.status(403).json({ error: 'forbidden' });
      return;
    }
    let body: string;
    try {
      body = await metrics.registry.metrics();
    } catch (err) {
      // Present when requestLogger is mounted, as it is in createApp.
      req.log?.warn({ err: serializeError(err) }, 'metrics could not be collected');
      res.status(503).json({ error: 'metrics_unavailable' });
      return;
    }
    res.type(metrics.registry.contentType).send(body);
  };
}

const sha256 = (value: string) => createHash('sha256').update(value).digest();

/**
 * The socket's peer is this host, and no proxy says it forwarded the request: a reverse proxy on
 * the same host connects from loopback too, and would otherwise make every outside request look
 * local. `req.ip` is not used: with `trust proxy` it is whatever the forwarded header claims.
 */
function isStraightFromLoopback(req: Request): boolean {
  const forwarded = ['x-forwarded-for', 'forwarded', 'x-real-ip'].some(
    (name) => req.headers[name] !== undefined,
  );
  const peer = req.socket.remoteAddress ?? '';
  return !forwarded && (peer === '::1' || /^(::ffff:)?127(\.\d{1,3}){3}$/.test(peer));
}
