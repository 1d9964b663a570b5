import type { RequestHandler } from 'express';
import type Provider from 'oidc-provider';
import { findAccount } from './accounts.js';

/**
 * GET /api/me: a protected resource that checks the bearer token for real, against the provider's
 * own token store, so an expired or revoked token gets 401 (RFC 6750 §3).
 */
export function demoApi(provider: Provider): RequestHandler {
  return async (req, res) => {
    const [scheme, value] = (req.get('authorization') ?? '').split(' ');
    const token =
      scheme?.toLowerCase() === 'bearer' && value
        ? await provider.AccessToken.find(value)
        : undefined;
    const account = token?.accountId ? findAccount(token.accountId) : undefined;
    res.set('Cache-Control', 'no-store');
    if (!token || !account) {
      res
        .status(401)
        .set(
          'WWW-Authenticate',
          'Bearer realm="demo-api", error="invalid_token", error_description="expired, revoked or unknown token"',
        )
        .json({ error: 'invalid_token' });
      return;
    }
    res.json({
      sub: account.id,
      profile: { name: account.name, email: account.email },
      data: account.data,
      scopes: [...(token.scopes ?? [])],
      servedAt: new Date().toISOString(),
    });
  };
}
