/**
 * Sign-ins as a browser does them, with fetch and a cookie jar: through codeflow (/login, the
 * provider's pages, /callback), or at the provider alone with the bench as the client.
 */
import * as client from 'openid-client';
import { CookieJar } from './cookie-jar.js';

export const ACCOUNT = { login: 'alice', password: 'alice-password' };
const MAX_HOPS = 12;

/**
 * Plays the person at the provider from `authorizationUrl`: follows its redirects, fills in the
 * login form, allows the consent, until the provider sends the browser elsewhere. Returns that
 * URL (the redirect URI with code, state and iss). Bounded: at most 12 hops.
 */
export async function authorizeAtProvider(jar: CookieJar, authorizationUrl: URL): Promise<URL> {
  const provider = authorizationUrl.origin;
  let next = authorizationUrl;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    let res = await jar.request(next);
    if (res.status === 200) {
      const html = await res.text();
      const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
      if (!action) throw new Error(`provider page without a form at ${next.pathname}`);
      const target = new URL(action.replaceAll('&amp;', '&'), next);
      res = await jar.request(target, target.pathname.endsWith('/login') ? ACCOUNT : {});
    }
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (!location || res.status < 300 || res.status >= 400) {
      throw new Error(`provider answered ${res.status} at ${next.pathname}`);
    }
    next = new URL(location, next);
    if (next.origin !== provider) return next;
  }
  throw new Error('too many provider redirects');
}

/**
 * A whole sign-in through the codeflow instance at `app`, in a new browser. The provider sends the
 * browser back to the registered redirect URI; the bench delivers it to `app` whatever its origin,
 * so instances behind one public URL (APP_BASE_URL) are reached directly. Returns the Cookie header.
 */
export async function signInThroughApp(app: string): Promise<string> {
  const jar = new CookieJar();
  const login = await jar.request(new URL('/login', app));
  await login.body?.cancel();
  const location = login.headers.get('location');
  if (login.status !== 302 || !location) throw new Error(`GET /login answered ${login.status}`);
  const back = await authorizeAtProvider(jar, new URL(location));
  const callback = await jar.request(new URL(back.pathname + back.search, app));
  await callback.body?.cancel();
  if (callback.status !== 302 && callback.status !== 303) {
    throw new Error(`GET /callback answered ${callback.status}`);
  }
  const cookie = jar.header(app);
  if (!cookie) throw new Error('no session cookie after /callback');
  return cookie;
}

export interface OwnClient {
  config: client.Configuration;
  redirectUri: string;
}

/** The bench as the provider's client, discovered once (codeflow caches its discovery too). */
export async function ownClient(
  issuer: URL,
  clientId: string,
  clientSecret: string,
  redirectUri: string,
): Promise<OwnClient> {
  const config = await client.discovery(
    issuer,
    clientId,
    undefined,
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests] },
  );
  return { config, redirectUri };
}

/**
 * The same sign-in with no app in between: the authorization request (PKCE S256, state, nonce,
 * prompt=consent), the provider's pages, the code exchange with its ID token checks, and userinfo
 * when the ID token does not name the person.
 */
export async function signInAtProvider(own: OwnClient): Promise<client.TokenEndpointResponse> {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorizationUrl = client.buildAuthorizationUrl(own.config, {
    redirect_uri: own.redirectUri,
    scope: 'openid profile email offline_access',
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    prompt: 'consent',
  });
  const back = await authorizeAtProvider(new CookieJar(), authorizationUrl);
  const tokens = await client.authorizationCodeGrant(own.config, back, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  // As any client that shows the person's name must (and codeflow does): when the ID token carries
  // neither name nor email (oidc-provider puts scope claims in userinfo), ask userinfo.
  const claims = tokens.claims();
  if (claims && claims.name === undefined && claims.email === undefined) {
    await client.fetchUserInfo(own.config, tokens.access_token, claims.sub);
  }
  return tokens;
}
