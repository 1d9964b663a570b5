import type { RequestHandler } from 'express';
import type Provider from 'oidc-provider';
import { findAccount } from './accounts.js';

/**
 * GET /api/me: a protected resource that checks the bearer token for real, against the provider's
 * own token store, so an expired or revoked token gets 401 (RFC 6750 §3). It serves two kinds of
 * caller: a person, through codeflow (an access token from the authorization code grant), and a
 * service calling as itself (a token from the client_credentials grant, which names a client and
 * no person).
 */
export function demoApi(provider: Provider): RequestHandler {
  return async (req, res) => {
    const [scheme, value] = (req.get('authorization') ?? '').split(' ');
    const bearer = scheme?.toLowerCase() === 'bearer' && value ? value : undefined;
    const token = bearer ? await provider.AccessToken.find(bearer) : undefined;
    const account = token?.accountId ? findAccount(token.accountId) : undefined;
    res.set('Cache-Control', 'no-store');
    if (token && account) {
      res.json({
        sub: account.id,
        profile: { name: account.name, email: account.email },
        data: account.data,
        scopes: [...(token.scopes ?? [])],
        servedAt: new Date().toISOString(),
      });
      return;
    }
    // Not a person's token: perhaps a service's (the provider keeps the two kinds apart).
    const service = bearer && !token ? await provider.ClientCredentials.find(bearer) : undefined;
    if (service) {
      res.json({
        client: service.clientId,
        scopes: [...(service.scopes ?? [])],
        servedAt: new Date().toISOString(),
      });
      return;
    }
    res
      .status(401)
      .set(
        'WWW-Authenticate',
        'Bearer realm="demo-api", error="invalid_token", error_description="expired, revoked or unknown token"',
      )
      .json({ error: 'invalid_token' });
  };
}
