import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { startMockProvider, type MockProvider } from '../helpers/mock-provider.js';

/**
 * Multi-tenant Microsoft Entra ID: the metadata's issuer is a template,
 * `https://login.microsoftonline.com/{tenantid}/v2.0`, and each ID token's `iss` names the person's
 * own tenant, which must match its `tid` claim. The misbehaving provider of our own plays Entra:
 * codeflow's requests to login.microsoftonline.com are routed to it (the host name matters: it is
 * how openid-client recognises Entra).
 */

const ENTRA = 'https://login.microsoftonline.com';
const BASE_URL = 'http://127.0.0.1:3997';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';

let mock: MockProvider;
let h: Harness;
beforeAll(async () => {
  mock = await startMockProvider({
    redirectUri: `${BASE_URL}/callback`,
    postLogoutRedirectUri: `${BASE_URL}/`,
  });
  const onEntra = (path: string) => `${ENTRA}${path}`;
  mock.behaviour.metadata = {
    issuer: `${ENTRA}/{tenantid}/v2.0`,
    authorization_endpoint: onEntra('/authorize'),
    token_endpoint: onEntra('/token'),
    jwks_uri: onEntra('/jwks'),
    userinfo_endpoint: onEntra('/userinfo'),
    revocation_endpoint: undefined,
    end_session_endpoint: onEntra('/logout'),
    authorization_response_iss_parameter_supported: false,
  };
  mock.behaviour.authorize = { iss: null };
  h = await startHarness(
    {
      APP_BASE_URL: BASE_URL,
      OIDC_ISSUER: `${ENTRA}/organizations/v2.0`,
      OIDC_CLIENT_ID: mock.clientId,
      OIDC_CLIENT_SECRET: mock.clientSecret,
      OIDC_CLIENT_AUTH: 'client_secret_basic',
      API_URL: mock.apiUrl,
    },
    {
      // login.microsoftonline.com, as codeflow names it, answered by the mock.
      providerFetch: (url, init) => {
        const path = new URL(url).pathname.replace(/^\/organizations\/v2\.0(?=\/\.well-known)/, '');
        return fetch(
          url.startsWith(ENTRA) ? `${mock.issuer}${path}${new URL(url).search}` : url,
          init,
        );
      },
    },
  );
});
afterAll(async () => {
  await h?.close();
  await mock?.close();
});

/** /login, then the mock's authorize (it answers at once), then /callback. */
async function signIn(app: ReturnType<Harness['app']>) {
  const login = await app.get('/login').expect(302);
  const authorize = new URL(login.headers.location as string);
  expect(authorize.origin).toBe(ENTRA);
  const back = await fetch(`${mock.issuer}${authorize.pathname}${authorize.search}`, {
    redirect: 'manual',
  });
  const callback = new URL(back.headers.get('location')!);
  return app.get(callback.pathname + callback.search).set('Accept', 'application/json');
}

describe('multi-tenant Entra ID', () => {
  it('admits an ID token whose issuer names the tenant in its tid', async () => {
    mock.behaviour.idToken = { iss: `${ENTRA}/${TENANT}/v2.0`, extraClaims: { tid: TENANT } };
    const app = h.app();
    const res = await signIn(app);
    expect(res.status).toBe(302);
    const me = await app.get('/me').set('Accept', 'application/json').expect(200);
    expect(me.body.iss).toBe(`${ENTRA}/${TENANT}/v2.0`);
    // The provider check knows the template for what it is.
    const ready = (await h.app().get('/readyz').expect(200)).body;
    expect(ready.providerCheck.verdict).toBe('ok');
  });

  it('refuses an ID token whose issuer names another tenant than its tid', async () => {
    mock.behaviour.idToken = {
      iss: `${ENTRA}/00000000-0000-0000-0000-000000000000/v2.0`,
      extraClaims: { tid: TENANT },
    };
    const app = h.app();
    const res = await signIn(app);
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('invalid_id_token');
    await app.get('/me').set('Accept', 'application/json').expect(401);
  });
});
