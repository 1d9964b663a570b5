import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KoaContextWithOIDC } from 'oidc-provider';
import supertest from 'supertest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../src/runtime.js';
import { LogCapture } from './logs.js';

/** One request as the embedded provider saw it, after oidc-provider parsed it. */
export interface ProviderRequest {
  /** As the browser sent it: the embedded provider takes a POST to /session/end as its GET (see dev-provider.ts). */
  method: string;
  path: string;
  route: string | undefined;
  params: Record<string, unknown>;
  authorization: string | undefined;
  /** The DPoP proof the request carried (RFC 9449), if any. */
  dpop: string | undefined;
  status: number;
  /** What the provider answered (the token endpoint's JSON, with the tokens it issued). */
  body: unknown;
}

export interface Harness {
  baseUrl: string;
  server: Server;
  runtime: Runtime;
  logs: LogCapture;
  /** Every request the embedded provider received, in order. */
  providerRequests: ProviderRequest[];
  /**
   * Milliseconds the embedded provider's token endpoint waits (to widen races): `tokenMs` before it
   * handles a request, `tokenAnswerMs` after (the tokens are issued, the answer is held back).
   */
  providerDelay: { tokenMs: number; tokenAnswerMs: number };
  /** How the embedded provider's revocation endpoint misbehaves: answers 500, or never answers. */
  providerFault: { revocation: 'none' | 'error' | 'hang' };
  /** A browser-like cookie jar for the app. */
  app(): ReturnType<typeof supertest.agent>;
  /** A browser-like cookie jar for the provider's origin. */
  providerAgent(): ReturnType<typeof supertest.agent>;
  close(): Promise<void>;
}

export const TEST_SESSION_SECRET = 'test-session-secret-that-is-long-enough-0123456789';

/** Starts codeflow and its embedded provider on free 127.0.0.1 ports, logging into memory. */
export async function startHarness(
  env: Record<string, string> = {},
  options: Pick<
    RuntimeOptions,
    | 'now'
    | 'devProviderHostname'
    | 'sessions'
    | 'revocationRetryDelaysMs'
    | 'providerFetch'
    | 'devProviderPar'
    | 'devProviderDpopNonce'
  > = {},
): Promise<Harness> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;
  const logs = new LogCapture();
  const config = loadConfig({
    APP_BASE_URL: baseUrl,
    PORT: String(port),
    DEV_PROVIDER_PORT: '0',
    SESSION_SECRET: TEST_SESSION_SECRET,
    LOG_LEVEL: 'debug',
    // Every high-assurance switch off unless a test turns it on (the demo's default is DPoP on).
    ...(!env.OIDC_PROFILE && !env.DEV_PROVIDER_PROFILE && { OIDC_DPOP: 'off' }),
    ...env,
  });
  const providerRequests: ProviderRequest[] = [];
  const providerDelay = { tokenMs: 0, tokenAnswerMs: 0 };
  const providerFault: Harness['providerFault'] = { revocation: 'none' };
  const hanging = new Set<() => void>();
  const record = async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    if (ctx.path === '/token' && providerDelay.tokenMs > 0) {
      await new Promise((r) => setTimeout(r, providerDelay.tokenMs));
    }
    if (ctx.path === '/token/revocation' && providerFault.revocation !== 'none') {
      if (providerFault.revocation === 'hang') {
        // Held until the harness closes: the client's own timeout must give up first.
        await new Promise<void>((resolve) => hanging.add(resolve));
      }
      ctx.status = 500;
      ctx.body = { error: 'server_error' };
      providerRequests.push({
        method: ctx.method,
        path: ctx.path,
        route: 'revocation',
        params: {},
        authorization: ctx.get('authorization') || undefined,
        dpop: ctx.get('dpop') || undefined,
        status: 500,
        body: ctx.body,
      });
      return;
    }
    await next();
    if (ctx.path === '/token' && providerDelay.tokenAnswerMs > 0) {
      await new Promise((r) => setTimeout(r, providerDelay.tokenAnswerMs));
    }
    providerRequests.push({
      method: (ctx.req as { codeflowOriginalMethod?: string }).codeflowOriginalMethod ?? ctx.method,
      path: ctx.path,
      route: ctx.oidc?.route,
      params: { ...(ctx.oidc?.params ?? {}) },
      authorization: ctx.get('authorization') || undefined,
      dpop: ctx.get('dpop') || undefined,
      status: ctx.status,
      body: ctx.body,
    });
  };
  const runtime = await createRuntime(config, createLogger('debug', logs.stream), {
    ...options,
    devProviderListenHost: '127.0.0.1',
    devProviderMiddleware: [record as never],
  });
  server.on('request', runtime.app);
  // Redis connects in the background (the app answers 503 until it can): a test starts once it
  // is reachable, or after 5 s (a test of a Redis that is down goes on without it).
  if (config.redisUrl) {
    for (let attempt = 0; attempt < 50; attempt++) {
      if (
        await runtime.sessions.ping().then(
          () => true,
          () => false,
        )
      )
        break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  return {
    baseUrl,
    server,
    runtime,
    logs,
    providerRequests,
    providerDelay,
    providerFault,
    app: () => supertest.agent(server),
    providerAgent: () => supertest.agent(runtime.devProvider!.issuer.origin),
    close: async () => {
      for (const release of hanging) release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await runtime.close();
    },
  };
}

/**
 * A second instance behind the same public URL as `a`, sharing its Redis: it talks to A's embedded
 * provider as an ordinary external issuer (what one instance starts, the other can finish).
 */
export function startSecondInstance(
  a: Harness,
  env: Record<string, string> = {},
): Promise<Harness> {
  return startHarness({
    REDIS_URL: a.runtime.config.redisUrl!,
    APP_BASE_URL: a.baseUrl,
    OIDC_ISSUER: a.runtime.devProvider!.issuer.origin,
    OIDC_CLIENT_ID: a.runtime.config.oidc.clientId,
    OIDC_CLIENT_SECRET: a.runtime.config.oidc.clientSecret,
    API_URL: a.runtime.devProvider!.apiUrl.href,
    OIDC_DPOP: a.runtime.config.oidc.dpop ? 'on' : 'off',
    STEP_UP_ACR_VALUES: a.runtime.config.stepUp.acrValues.join(' '),
    STEP_UP_API_URL: a.runtime.devProvider!.sensitiveApiUrl.href,
    ...env,
  });
}

/** The session id inside a Cookie header `codeflow.sid=s%3A<id>.<signature>`. */
export function sessionIdOf(cookie: string): string {
  const value = decodeURIComponent(/codeflow\.sid=([^;]+)/.exec(cookie)?.[1] ?? '');
  if (!value.startsWith('s:')) throw new Error(`no signed session cookie in "${cookie}"`);
  return value.slice(2, value.lastIndexOf('.'));
}
