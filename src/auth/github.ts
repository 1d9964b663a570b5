import * as client from 'openid-client';
import { AppError } from '../errors.js';
import type { SessionUser } from '../session/session.js';
import { providerTrouble } from './oauth-errors.js';

/**
 * GitHub speaks plain OAuth 2.0: no discovery, no ID token, no userinfo. Its endpoints are fixed
 * paths under GITHUB_URL (github.com, or a GitHub Enterprise Server), the person comes from its
 * REST API (GITHUB_API_URL), and state and PKCE go through openid-client's plain OAuth path.
 */
export function githubMetadata(githubUrl: URL): client.ServerMetadata {
  return {
    issuer: githubUrl.href,
    authorization_endpoint: new URL('login/oauth/authorize', githubUrl).href,
    token_endpoint: new URL('login/oauth/access_token', githubUrl).href,
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
  };
}

/** GitHub's names for the RFC 6749 §5.2 errors. */
const GITHUB_ERRORS: Record<string, string> = {
  bad_verification_code: 'invalid_grant',
  bad_refresh_token: 'invalid_grant',
  incorrect_client_credentials: 'invalid_client',
};

/**
 * GitHub answers a refused code or refresh token with 200 and `{"error": ...}` in the body, where
 * RFC 6749 §5.2 says 400: this turns such an answer into the 400 the library expects, so it is
 * read as the OAuth error it is (invalid_grant, and so on) rather than as a malformed response.
 */
export function githubTokenErrors(
  base: client.CustomFetch,
  tokenEndpoint: string,
): client.CustomFetch {
  return async (url, options) => {
    const response = await base(url, options);
    if (url !== tokenEndpoint || response.status !== 200) return response;
    const body = (await response
      .clone()
      .json()
      .catch(() => undefined)) as { error?: unknown } | undefined;
    if (typeof body?.error !== 'string') return response;
    const error = GITHUB_ERRORS[body.error] ?? body.error;
    return Response.json({ ...body, error }, { status: 400 });
  };
}

/** What codeflow keeps of a GitHub account, and the claims the access rules read. */
export interface GitHubPerson {
  user: SessionUser;
  /** `email` is the primary address; `email_verified` GitHub's own `verified` flag for it. */
  claims: { sub: string; email?: string; email_verified?: boolean };
}

interface GitHubEmail {
  email?: unknown;
  primary?: unknown;
  verified?: unknown;
}

/**
 * The signed-in person, from GET /user (id, login, name) and GET /user/emails (the primary
 * address and whether GitHub verified it; this needs the `user:email` scope). The subject is the
 * numeric id: a login can be renamed and then taken by someone else.
 */
export async function githubPerson(
  oidc: client.Configuration,
  accessToken: string,
  apiUrl: URL,
): Promise<GitHubPerson> {
  const profile = (await getJson(oidc, accessToken, new URL('user', apiUrl))) as {
    id?: unknown;
    login?: unknown;
    name?: unknown;
  };
  if (typeof profile.id !== 'number' && typeof profile.id !== 'string') {
    throw new AppError('provider_bad_response', 'GitHub did not say who you are. Start again.');
  }
  const emails = await getJson(oidc, accessToken, new URL('user/emails', apiUrl));
  const primary = Array.isArray(emails)
    ? (emails as GitHubEmail[]).find((e) => e.primary === true && typeof e.email === 'string')
    : undefined;
  const sub = String(profile.id);
  const user: SessionUser = { iss: oidc.serverMetadata().issuer, sub };
  const name = typeof profile.name === 'string' && profile.name ? profile.name : profile.login;
  if (typeof name === 'string') user.name = name;
  // Only a verified address is shown as the person's: an unverified one could be anyone's.
  if (primary && primary.verified === true) user.email = String(primary.email);
  return {
    user,
    claims: {
      sub,
      ...(primary && { email: String(primary.email), email_verified: primary.verified === true }),
    },
  };
}

async function getJson(
  oidc: client.Configuration,
  accessToken: string,
  url: URL,
): Promise<unknown> {
  let response: Response;
  try {
    const headers = new Headers({ accept: 'application/vnd.github+json' });
    response = await client.fetchProtectedResource(oidc, accessToken, url, 'GET', null, headers);
  } catch (err) {
    if (err instanceof client.WWWAuthenticateChallengeError) response = err.response;
    else {
      throw (
        providerTrouble(err) ??
        new AppError('provider_unavailable', 'GitHub did not answer. Try again in a minute.', {
          cause: err,
        })
      );
    }
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new AppError('provider_error', 'GitHub refused to say who you are. Start again.', {
      logFields: { githubStatus: response.status, path: url.pathname },
    });
  }
  return response.json().catch(() => {
    throw new AppError('provider_bad_response', 'GitHub sent an answer that could not be read.');
  });
}
