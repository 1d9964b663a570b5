/**
 * What the bench's provider counts for the bench: refresh grants (the refresh-storm goal) and the
 * lengths of the tokens it last issued (the bytes-per-session goal). Lengths only, never values.
 */
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { DevProviderOptions } from '../src/dev-provider/dev-provider.js';

export const STATS_PATH = '/bench/stats';

export interface TokenLengths {
  accessToken: number;
  refreshToken: number;
  idToken: number;
}

export interface ProviderStats {
  /** The demo API, which the bare app and codeflow's /dashboard call. */
  apiUrl: string;
  /** POST /token with grant_type=refresh_token, whatever the answer: each one spends a token. */
  refreshGrants: number;
  /** The last successful token response (code or refresh grant). */
  lastTokenLengths: TokenLengths;
}

type Middleware = NonNullable<DevProviderOptions['middleware']>[number];

/** Koa middleware for oidc-provider: answers GET /bench/stats, counts token responses. */
export function statsMiddleware(stats: ProviderStats): Middleware {
  return async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === STATS_PATH) {
      ctx.body = stats;
      return;
    }
    await next();
    // Set by oidc-provider's router, so only after next().
    const oidc = (ctx as Partial<KoaContextWithOIDC>).oidc;
    if (ctx.method !== 'POST' || oidc?.route !== 'token') return;
    if (oidc.params?.grant_type === 'refresh_token') stats.refreshGrants += 1;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (ctx.status === 200 && typeof body?.access_token === 'string') {
      const length = (v: unknown) => (typeof v === 'string' ? v.length : 0);
      stats.lastTokenLengths = {
        accessToken: length(body.access_token),
        refreshToken: length(body.refresh_token),
        idToken: length(body.id_token),
      };
    }
  };
}

/** The provider's counters now (the bench reads them before and after each step). */
export async function readStats(issuer: URL): Promise<ProviderStats> {
  const res = await fetch(new URL(STATS_PATH, issuer), { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`provider stats answered ${res.status}`);
  return (await res.json()) as ProviderStats;
}
