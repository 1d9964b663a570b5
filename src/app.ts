import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { csrfSync } from 'csrf-sync';
import express from 'express';
import helmet from 'helmet';
import { DEFAULT_RETRY_POLICY } from './api/retry.js';
import { createBackchannelLogout } from './auth/backchannel-logout.js';
import type { ClientKey } from './auth/client-key.js';
import { createDPoPHandles } from './auth/dpop.js';
import { createFlowRecorder } from './auth/flow-events.js';
import { createAuthHandlers } from './auth/login.js';
import type { Provider } from './auth/provider.js';
import { requireSignIn, type AuthRequirement } from './auth/step-up.js';
import type { Config } from './config.js';
import { AppError, errorHandler, notFound } from './errors.js';
import { requestLogger, type Logger } from './log.js';
import {
  createMetrics,
  metricsEndpoint,
  timedBackend,
  type Metrics,
  type SignOutKind,
} from './metrics.js';
import { warnOnUntrustedForwarding } from './proxy-warning.js';
import { rateLimit } from './rate-limit.js';
import { contentSecurityPolicy, precomputedHeaders } from './security-headers.js';
import { createReadyz, healthz } from './routes/health.js';
import { createPages } from './routes/pages.js';
import { endExpiredSessions, requireUser } from './routes/require-user.js';
import { createSessionsPages } from './routes/sessions.js';
import type { SessionBackend } from './session/backend.js';
import { createSessionEnder, type EndReason } from './session/end-session.js';
import { memoryBackend } from './session/memory-backend.js';
import { createSessionMiddleware } from './session/session.js';
import { createRefreshedWrites } from './tokens/refreshed-writes.js';
import { createRevoker, type Revoker } from './tokens/revocation.js';
import { createSealer } from './tokens/seal.js';
import { createTokenStore } from './tokens/token-store.js';

export interface AppDeps {
  config: Config;
  provider: Provider;
  logger: Logger;
  /** Sessions, tokens and refresh locks; default: in-process (one instance, development). */
  sessions?: SessionBackend;
  /** Revokes ended sessions' tokens in the background; default: four tries over about 7 s. */
  revoker?: Revoker;
  /** Counters and timings for /metrics; default: a registry of the app's own, without process metrics. */
  metrics?: Metrics;
  /** codeflow's own key (private_key_jwt): its public half is served at /.well-known/jwks.json. */
  clientKey?: ClientKey;
  /** The embedded provider's sign-out page, offered on /sessions to show back-channel logout. */
  devProviderSignOutUrl?: string;
  /** Epoch seconds; tests move time. */
  now?: () => number;
  isShuttingDown?: () => boolean;
}

const root = (dir: string) => fileURLToPath(new URL(`../${dir}`, import.meta.url));

/** Builds the app: no I/O, no listening, so tests can make as many as they like. */
export function createApp(deps: AppDeps): express.Express {
  const { config, provider, logger } = deps;
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  const backend = deps.sessions ?? memoryBackend();
  const revoker = deps.revoker ?? createRevoker(provider);
  const metrics =
    deps.metrics ??
    createMetrics({
      defaultMetrics: false,
      sessionsActive: () => backend.sessionsActive?.(),
      revocations: () => revoker.stats(),
    });
  const sessions = timedBackend(backend, metrics);
  const tokens = createTokenStore(sessions.tokens, createSealer(config.session.secrets));
  const { endSession, endIndexed } = createSessionEnder(sessions, tokens, revoker, (reason, n) =>
    metrics.signOut(SIGN_OUT_KINDS[reason], n),
  );

  const { csrfSynchronisedProtection, generateToken } = csrfSync({
    // 256 random bits, as hex; csrf-sync's default of 1,024 made it most of a session's bytes.
    size: 32,
    // The token comes from the form body only; csrf-sync then compares it with the session's copy
    // (none when the session has just ended: the form has expired).
    getTokenFromState: (req) => req.session?.csrfToken,
    getTokenFromRequest: (req) =>
      (req.body as { _csrf?: unknown } | undefined)?._csrf as string | undefined,
  });
  const csrfToken = (req: express.Request) => generateToken(req);
  const csp = cspDirectives(config, provider);
  const flow = createFlowRecorder(sessions.flow, config.session.maxAgeSeconds * 1000);
  const dpop = createDPoPHandles();
  const stepUp: AuthRequirement = {
    acrValues: config.stepUp.acrValues,
    maxAgeSeconds: config.stepUp.maxAgeSeconds,
  };
  const auth = createAuthHandlers({
    config,
    provider,
    now,
    tokens,
    index: sessions.index,
    endSession,
    revoker,
    flow,
    csrfToken,
    policyPostingTo: memoized((origin) =>
      contentSecurityPolicy({ ...csp, formAction: ["'self'", origin] }),
    ),
  });
  const sessionsPages = createSessionsPages({
    index: sessions.index,
    endIndexed,
    csrfToken,
    providerSignOutUrl: deps.devProviderSignOutUrl,
  });
  const backchannelLogout = createBackchannelLogout({
    provider,
    clientId: config.oidc.clientId,
    algorithm: config.oidc.idTokenAlg,
    now,
    timeoutMs: config.httpTimeoutMs,
    remember: (key, ttlMs) => sessions.remember(key, ttlMs),
    endSessions: async ({ iss, sid, sub }, log) => {
      const found = sid
        ? (await sessions.index.byProviderSession(iss, sid)).filter((s) => !sub || s.sub === sub)
        : await sessions.index.list({ iss, sub: sub! });
      return endIndexed(found, 'back-channel', log);
    },
    outcome: (outcome) => metrics.backchannelLogout(outcome),
  });
  const pages = createPages({
    provider,
    now,
    refreshSkewSeconds: config.refreshSkewSeconds,
    maxAgeSeconds: config.session.maxAgeSeconds,
    tokens,
    lock: sessions.lock,
    inFlight: new Map(),
    endSession,
    revoker,
    refreshedWrites: createRefreshedWrites(tokens, revoker),
    onRefresh: (outcome) => metrics.refresh(outcome),
    flow,
    dpop,
    apiUrl: config.apiUrl,
    stepUp: { requirement: stepUp, apiUrl: config.stepUp.apiUrl },
    api: {
      authScheme: config.api.authScheme,
      timeoutMs: config.httpTimeoutMs,
      retry: { ...DEFAULT_RETRY_POLICY, budgetMs: config.api.retryBudgetMs },
    },
    csrfToken,
  });
  const readyz = createReadyz({
    provider,
    isShuttingDown: deps.isShuttingDown ?? (() => false),
    sessions,
    isProduction: config.isProduction,
  });
  // With Redis, the counts are shared: the limit holds across every instance.
  const limit = (name: string, perMinute: number) =>
    rateLimit(perMinute, logger, sessions.rateLimitStore?.(name));
  const signInLimit = limit('login', config.rateLimitPerMinute);
  const callbackLimit = limit('callback', config.rateLimitPerMinute);
  // A provider ending many sessions at once sends many logout tokens: more room than a person needs.
  const backchannelLimit = limit('backchannel-logout', config.rateLimitPerMinute * 10);
  const form = express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 });

  const app = express();
  app.disable('x-powered-by');
  if (config.trustProxy !== undefined) app.set('trust proxy', config.trustProxy);
  // Repeated query keys stay strings or arrays; never objects (?state[x]=1).
  app.set('query parser', 'simple');
  app.set('view engine', 'ejs');
  // Compiled once, not on every render (Express caches only when NODE_ENV=production by default,
  // and ejs recompiling each page cost the dashboard a fifth of its CPU). `npm run dev` restarts
  // on template changes instead.
  app.set('view cache', true);
  app.set('views', root('views'));

  app.use(requestLogger(app, logger, randomUUID));
  if (!config.trustProxy) app.use(warnOnUntrustedForwarding(logger));
  app.use(
    precomputedHeaders(
      helmet({
        contentSecurityPolicy: { directives: csp },
        xFrameOptions: { action: 'deny' },
        // HSTS means something only over https; on a plain-http development URL it is just noise.
        strictTransportSecurity: config.appBaseUrl.protocol === 'https:',
      }),
    ),
  );
  // Static files under their own prefix: no other request looks at the disk.
  app.use('/static', express.static(root('public'), { index: false, maxAge: '1h' }));
  // Browsers and bots ask for /favicon.ico whatever the page says: point them at ours.
  app.get('/favicon.ico', (_req, res) => res.redirect(301, '/static/favicon.svg'));
  // private_key_jwt: the public key, for providers that fetch it (a jwks_uri) rather than hold a copy.
  const jwks = JSON.stringify({ keys: deps.clientKey ? [deps.clientKey.publicJwk] : [] });
  app.get('/.well-known/jwks.json', (_req, res) => {
    if (!deps.clientKey) return void res.status(404).json({ error: 'not_found' });
    res.set('Cache-Control', 'public, max-age=300').type('application/json').send(jwks);
  });
  app.get('/healthz', healthz);
  app.get('/readyz', readyz);
  app.get(
    '/metrics',
    metricsEndpoint({ metrics, token: config.metricsToken, isProduction: config.isProduction }),
  );
  // Server to server, from the provider: no cookie, no session, no CSRF token (the logout token's
  // signature is what is checked).
  app.post('/backchannel-logout', backchannelLimit, ...backchannelLogout);

  // Everything below may show personal data: never cached, by the browser or anyone between.
  app.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  app.use(createSessionMiddleware(config, sessions, now));
  app.use(endExpiredSessions(now, config.session.maxAgeSeconds, endSession));

  // The route table.
  app.get('/', pages.home);
  // HEAD must not start a sign-in (a link checker would fill the store): only GET does.
  app.head('/login', methodNotAllowed('GET'));
  app.get('/login', signInLimit, counted(auth.login, metrics));
  app.get('/callback', callbackLimit, counted(auth.callback, metrics));
  app.get('/dashboard', requireUser, pages.dashboard);
  app.get('/me', requireUser, pages.me);
  app.get('/dashboard/flow', requireUser, pages.flow);
  // Step-up: a session whose sign-in is weaker or older than this page needs signs in again first.
  app.get('/dashboard/sensitive', requireSignIn(stepUp, now), requireUser, pages.sensitive);
  app.get('/sessions', requireUser, sessionsPages.sessions);
  app.post('/sessions/end', requireUser, form, csrfSynchronisedProtection, sessionsPages.endOne);
  app.post(
    '/sessions/end-others',
    requireUser,
    form,
    csrfSynchronisedProtection,
    sessionsPages.endOthers,
  );
  app.post('/refresh', requireUser, form, csrfSynchronisedProtection, pages.refreshNow);
  app.post('/logout', form, csrfSynchronisedProtection, auth.logout);

  app.use(notFound);
  app.use(errorHandler);
  return app;
}

/** How each way a session ends is counted. */
const SIGN_OUT_KINDS: Record<EndReason, SignOutKind> = {
  'sign-out': 'user',
  'other-session': 'other_session',
  'back-channel': 'back_channel',
  'max-age': 'expired',
  'refresh-rejected': 'refresh_rejected',
  'tokens-missing': 'tokens_missing',
  'other-account': 'other_account',
};

/**
 * A step of the sign-in (/login, /callback), with each sign-in counted by outcome and, for a
 * failure at either step, by its error kind.
 */
function counted(
  step: (req: express.Request, res: express.Response) => Promise<void>,
  metrics: Metrics,
): express.RequestHandler {
  return async (req, res) => {
    try {
      await step(req, res);
      // A redirect to returnTo is a sign-in; the Back button onto a used callback is not counted.
      if (res.locals.signedIn) metrics.signIn('success', 'ok');
    } catch (err) {
      metrics.signIn('failure', err instanceof AppError ? err.kind : 'internal');
      throw err;
    }
  };
}

function memoized(make: (key: string) => string): (key: string) => string {
  const made = new Map<string, string>();
  return (key) => made.get(key) ?? made.set(key, make(key)).get(key)!;
}

/**
 * A strict CSP: only our own script and style, no framing, no <base>, no plugins. Forms may post
 * to the provider's origin because a form whose answer redirects to a sign-in goes there, and
 * Chrome applies form-action to redirects after a form submission. The sign-out page adds the
 * end-session endpoint's origin (from the provider's metadata), which may be another one.
 */
function cspDirectives(config: Config, provider: Provider) {
  // Fixed for the life of the app, so helmet builds the header once, not per response.
  const providerOrigin = new URL(provider.status().issuer).origin;
  return {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    fontSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'none'"],
    frameAncestors: ["'none'"],
    formAction: ["'self'", providerOrigin],
    upgradeInsecureRequests: config.appBaseUrl.protocol === 'https:' ? [] : null,
  };
}

function methodNotAllowed(allow: string): express.RequestHandler {
  return (_req, res) => void res.status(405).set('Allow', allow).end();
}
