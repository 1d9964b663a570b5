import { existsSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig } from './config.js';
import { pino } from 'pino';
import { createLogger, type Logger } from './log.js';
import { createRuntime } from './runtime.js';

/** Provider-check findings that no sign-in could get past, and the setting that decides each. */
const SETTING_OF: Record<string, string> = {
  'client authentication': 'OIDC_CLIENT_AUTH',
  PAR: 'OIDC_PAR',
  DPoP: 'OIDC_DPOP',
  // Every sign-in would fail at the ID token's signature check.
  'ID-token algorithm': 'OIDC_ID_TOKEN_ALG',
  // Failures only with OIDC_PROFILE=fapi2, which makes them requirements.
  'RFC 9207 iss': 'OIDC_PROFILE',
  PKCE: 'OIDC_PROFILE',
};

/** Seconds a shutdown may take before in-flight requests are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  // Buffered and written in the background, so a slow terminal or pipe never holds up a request
  // (shutdown flushes what is buffered).
  const logger = createLogger(config.logLevel, pino.destination({ dest: 1, sync: false }));
  if (config.session.secretGenerated) {
    logger.warn(
      'SESSION_SECRET is not set: using a random one, so sessions end when the app restarts',
    );
  }

  let shuttingDown = false;
  let runtime;
  try {
    runtime = await createRuntime(config, logger, { isShuttingDown: () => shuttingDown });
  } catch (err) {
    // Only the embedded provider listens before the app does: a taken port here is its own.
    return cannotStart(logger, err, 'DEV_PROVIDER_PORT');
  }
  const server = createServer();
  // Keep-alive clients (browsers, load balancers) hold idle sockets open, and server.close() waits
  // for every socket: so from shutdown on, each response says Connection: close and its socket
  // ends with it. Registered before the app, which may answer synchronously.
  const unanswered = new Set<ServerResponse>();
  server.on('request', (_req, res) => {
    if (shuttingDown) return void res.setHeader('Connection', 'close');
    unanswered.add(res);
    res.once('close', () => unanswered.delete(res));
  });
  server.on('request', runtime.app);
  // Above a typical load balancer's idle timeout (60 s), so it never reuses a socket we just closed.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.once('error', (err) => cannotStart(logger, err, 'PORT'));
  // HOST undefined: every interface, as Node does without a host.
  server.listen(config.port, config.host, () => {
    const bound = server.address() as AddressInfo;
    logger.info(
      {
        url: runtime.config.appBaseUrl.href,
        issuer: runtime.config.oidc.issuer?.href,
        host: bound.address,
        port: bound.port,
      },
      `codeflow listening on ${runtime.config.appBaseUrl.href} (bound to ${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port})`,
    );
    // The provider is discovered now, in the background (the app serves its other pages meanwhile,
    // and a provider that is down is tried again later). If it cannot do what the configuration
    // asks (client authentication, PAR, DPoP, the ID-token algorithm, FAPI 2.0's demands), no
    // sign-in could ever work: refuse to go on, and say why.
    void runtime.provider.getConfiguration().then(
      () => {
        const failed = runtime.provider.status().check?.findings.filter((f) => f.level === 'fail');
        // Every setting at fault, in one line, in SETTING_OF's order.
        const refused = Object.entries(SETTING_OF).flatMap(([topic, setting]) =>
          (failed ?? []).filter((f) => f.topic === topic).map((f) => `${setting}: ${f.says}`),
        );
        if (refused.length === 0) return;
        logger.fatal(`codeflow cannot start: ${refused.join('; ')}`);
        logger.flush(() => process.exit(1));
      },
      () => undefined,
    );
  });

  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    for (const res of unanswered) if (!res.headersSent) res.setHeader('Connection', 'close');
    const force = setTimeout(() => {
      logger.warn('shutdown grace period over: closing remaining connections');
      server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    server.close(() => {
      void runtime.close().then(() => {
        logger.info('shut down');
        // The log is written in the background: let it finish, so the last lines arrive in order.
        logger.flush(() => process.exit(0));
      });
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
}

/**
 * One line saying why the process cannot start (never a stack trace), then exit code 1.
 * `portVariable` names the setting of the listener that failed: the app's, or the embedded provider's.
 */
function cannotStart(
  logger: Logger,
  err: unknown,
  portVariable: 'PORT' | 'DEV_PROVIDER_PORT',
): void {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string; hostname?: string };
  const anywhere = e.address === undefined || e.address === '::' || e.address === '0.0.0.0';
  const whose = portVariable === 'PORT' ? 'port' : "the embedded provider's port";
  const where = `${whose} ${e.port ?? '?'}${anywhere ? '' : ` on ${e.address}`}`;
  const reason =
    e.code === 'EADDRINUSE'
      ? `${where} is already in use: stop what listens there, or set another ${portVariable}`
      : e.code === 'EACCES'
        ? `${where} may not be opened by this user: set ${portVariable} above 1023`
        : e.code === 'EADDRNOTAVAIL'
          ? `HOST ${e.address ?? '?'} is not an address of this machine`
          : e.syscall === 'getaddrinfo'
            ? `HOST ${e.hostname ?? '?'} does not resolve (${e.code ?? 'lookup failed'})`
            : String(e.message);
  logger.fatal({ errorCode: e.code }, `codeflow cannot start: ${reason}`);
  logger.flush(() => process.exit(1));
}

void main();
