import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { csrfSync } from 'csrf-sync';
import express from 'express';
import type { Store } from 'express-session';
import { DEFAULT_RETRY_POLICY } from './api/retry.js';
import { createSealer } from './session/seal.js';
import { memoryBackend, type SessionBackend } from './session/store.js';
import { TokenGuardStore } from './session/token-guard-store.js';
import helmet from 'helmet';
import { createAuthHandlers } from './auth/login.js';
import type { Provider } from './auth/provider.js';
import type { Config } from './config.js';
import { errorHandler, notFound } from './errors.js';
import { createHttpLogger, type Logger } from './log.js';
import { warnOnUntrustedForwarding } from './proxy-warning.js';
import { signInRateLimit } from './rate-limit.js';
import { createReadyz, healthz } from './routes/health.js';
import { createPages } from './routes/pages.js';
import { requireUser } from './routes/require-user.js';
import { createSessionMiddleware } from './session/session.js';

export interface AppDeps {
  config: Config;
  provider: Provider;
  logger: Logger;
  /** Session store and refresh lock; default: in-process (one instance, development). */
  sessions?: SessionBackend;
  /** Epoch seconds; tests move time. */
  now?: () => number;
  isShuttingDown?: () => boolean;
}

const root = (dir: string) => fileURLToPath(new URL(`../${dir}`, import.meta.url));

/** Builds the app: no I/O, no listening, so tests can make as many as they like. */
export function createApp(deps: AppDeps): express.Express {
  const { config, provider, logger } = deps;
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  const sessions = deps.sessions ?? memoryBackend();
  // Whatever the backing store, a save never rolls tokens back, and a failure is a fast 503.
  const store = new TokenGuardStore(sessions.store, createSealer(config.session.secrets));

  const { csrfSynchronisedProtection, generateToken } = csrfSync({
    // The token comes from the form body only; csrf-sync then compares it with the session's copy.
    getTokenFromRequest: (req) =>
      (req.body as { _csrf?: unknown } | undefined)?._csrf as string | undefined,
  });
  const auth = createAuthHandlers({ config, provider, now });
  const pages = createPages({
    provider,
    now,
    refreshSkewSeconds: config.refreshSkewSeconds,
    lock: sessions.lock,
    inFlight: new Map(),
    apiUrl: config.apiUrl,
    api: {
      authScheme: config.api.authScheme,
      timeoutMs: config.httpTimeoutMs,
      retry: { ...DEFAULT_RETRY_POLICY, budgetMs: config.api.retryBudgetMs },
    },
    csrfToken: (req) => generateToken(req),
  });
  const readyz = createReadyz({
    provider,
    isShuttingDown: deps.isShuttingDown ?? (() => false),
    pingStore: () => pingStore(store),
  });
  const signedIn = requireUser(now, config.session.maxAgeSeconds);
  const signInLimit = signInRateLimit(config.rateLimitPerMinute);
  const callbackLimit = signInRateLimit(config.rateLimitPerMinute);
  const form = express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 });

  const app = express();
  app.disable('x-powered-by');
  if (config.trustProxy !== undefined) app.set('trust proxy', config.trustProxy);
  // Repeated query keys stay strings or arrays; never objects (?state[x]=1).
  app.set('query parser', 'simple');
  app.set('view engine', 'ejs');
  app.set('views', root('views'));

  app.use(createHttpLogger(logger, () => randomUUID()));
  if (config.trustProxy === undefined) app.use(warnOnUntrustedForwarding(logger));
  app.use(
    helmet({
      contentSecurityPolicy: { directives: cspDirectives(config, provider) },
      xFrameOptions: { action: 'deny' },
      // HSTS means something only over https; on a plain-http development URL it is just noise.
      strictTransportSecurity: config.appBaseUrl.protocol === 'https:',
    }),
  );
  app.use(express.static(root('public'), { index: false, maxAge: '1h' }));
  app.get('/healthz', healthz);
  app.get('/readyz', readyz);

  // Everything below may show personal data: never cached, by the browser or anyone between.
  app.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  app.use(createSessionMiddleware(config, store));

  // The route table.
  app.get('/', pages.home);
  app.get('/login', signInLimit, auth.login);
  app.get('/callback', callbackLimit, auth.callback);
  app.get('/dashboard', signedIn, pages.dashboard);
  app.get('/me', signedIn, pages.me);
  app.post('/refresh', signedIn, form, csrfSynchronisedProtection, pages.refreshNow);
  app.post('/logout', form, csrfSynchronisedProtection, auth.logout);

  app.use(notFound);
  app.use(errorHandler);
  return app;
}

/**
 * A strict CSP: only our own script and style, no framing, no <base>, no plugins. Forms may post
 * to the provider's origin because logout redirects there, and Chrome applies form-action to
 * redirects after a form submission.
 */
function cspDirectives(config: Config, provider: Provider) {
  const providerOrigin = () => new URL(provider.status().issuer).origin;
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
    formAction: ["'self'", (_req: unknown, _res: unknown) => providerOrigin()],
    upgradeInsecureRequests: config.appBaseUrl.protocol === 'https:' ? [] : null,
  };
}

/** One read of the store; TokenGuardStore already turns a hang into an error within 2 s. */
function pingStore(store: Store): Promise<void> {
  return new Promise((resolve, reject) =>
    store.get('readyz-probe', (err) => (err ? reject(err) : resolve())),
  );
}
