/**
 * Starting the processes under test: the bench's provider, codeflow (`src/server.ts`, started as
 * `npm run dev` would, its default logging sent to /dev/null) and the bare baseline app.
 */
import { randomBytes } from 'node:crypto';
import { forwardStderr, freePort, spawnTsx, waitForHttp, type Child } from './processes.js';
import { readStats, STATS_PATH } from './provider-stats.js';

export const CLIENT_ID = 'codeflow-bench';
export const CLIENT_SECRET = randomBytes(32).toString('base64url');
export const SESSION_SECRET = randomBytes(32).toString('base64url');

export interface RunningProvider {
  child: Child;
  issuer: URL;
  apiUrl: URL;
}

/**
 * A provider whose one client redirects to `publicUrl`/callback. The dev provider registers a
 * single redirect URI per client, so every codeflow instance of one provider shares that public
 * URL as APP_BASE_URL (codeflow builds redirect URIs from it, never from Host).
 */
export async function startProvider(
  publicUrl: string,
  accessTokenTtlSeconds: number,
): Promise<RunningProvider> {
  const port = await freePort();
  const child = spawnTsx(
    'provider',
    'bench/provider.ts',
    {
      PORT: String(port),
      CLIENT_ID,
      CLIENT_SECRET,
      REDIRECT_URI: new URL('/callback', publicUrl).href,
      ACCESS_TOKEN_TTL: String(accessTokenTtlSeconds),
    },
    ['ignore', 'ignore', 'pipe'],
  );
  // Its errors are worth seeing; oidc-provider's start-up warnings (Node 20, in-memory adapter)
  // are expected here and would only bury them.
  forwardStderr(child, /^oidc-provider WARNING/);
  const issuer = new URL(`http://127.0.0.1:${port}`);
  await waitForHttp(child, new URL(STATS_PATH, issuer).href, (s) => s === 200);
  const { apiUrl } = await readStats(issuer);
  if (!apiUrl) throw new Error('the bench provider did not report its demo API');
  return { child, issuer, apiUrl: new URL(apiUrl) };
}

export interface CodeflowOptions {
  provider: RunningProvider;
  /** APP_BASE_URL; default: this instance's own URL. */
  publicUrl?: string;
  /** A port chosen beforehand (the instance that owns the public URL). */
  port?: number;
  redisUrl?: string;
  /** Extra environment, e.g. REFRESH_SKEW_SECONDS. */
  env?: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof (bench/profile.ts). */
  nodeArgs?: readonly string[];
}

export interface RunningApp {
  child: Child;
  url: string;
}

/** `node --import tsx src/server.ts`, development mode (NODE_ENV unset), LOG_LEVEL default. */
export async function startCodeflow(options: CodeflowOptions): Promise<RunningApp> {
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const child = spawnTsx(
    'codeflow',
    'src/server.ts',
    {
      PORT: String(port),
      APP_BASE_URL: options.publicUrl ?? url,
      OIDC_ISSUER: options.provider.issuer.origin,
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: CLIENT_SECRET,
      API_URL: options.provider.apiUrl.href,
      SESSION_SECRET,
      ...(options.redisUrl && { REDIS_URL: options.redisUrl }),
      ...options.env,
    },
    'ignore',
    options.nodeArgs,
  );
  await waitForHttp(child, `${url}/healthz`, (s) => s === 200);
  return { child, url };
}

/** The baseline app, calling `provider`'s demo API with `accessToken`. */
export async function startBareApp(
  provider: RunningProvider,
  accessToken: string,
): Promise<RunningApp> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawnTsx('bare app', 'bench/bare-app.ts', {
    PORT: String(port),
    SESSION_SECRET,
    ISSUER: provider.issuer.origin,
    API_URL: provider.apiUrl.href,
    ACCESS_TOKEN: accessToken,
  });
  await waitForHttp(child, `${url}/me`, (s) => s === 401);
  return { child, url };
}

/** The bare app's session cookie (its /sign-in puts the fixed user in a new session). */
export async function bareCookie(app: RunningApp): Promise<string> {
  const res = await fetch(`${app.url}/sign-in`, { signal: AbortSignal.timeout(5000) });
  await res.body?.cancel();
  const cookie = res.headers.getSetCookie()[0]?.split(';')[0];
  if (res.status !== 200 || !cookie) throw new Error(`bare /sign-in answered ${res.status}`);
  return cookie;
}
