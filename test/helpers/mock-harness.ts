import type supertest from 'supertest';
import { startHarness, type Harness } from './harness.js';
import { startMockProvider, type MockBehaviour, type MockProvider } from './mock-provider.js';

type Agent = ReturnType<typeof supertest.agent>;

/** The public URL the app believes it has; supertest talks to its socket directly. */
const BASE_URL = 'http://127.0.0.1:3999';

export interface MockHarness extends Harness {
  mock: MockProvider;
}

/**
 * codeflow configured against the misbehaving provider as an ordinary external issuer.
 * `behaviour` applies from the provider's first request on, before codeflow's first discovery.
 */
export async function startMockHarness(
  env: Record<string, string> = {},
  behaviour: MockBehaviour = {},
): Promise<MockHarness> {
  const mock = await startMockProvider({
    redirectUri: `${BASE_URL}/callback`,
    postLogoutRedirectUri: `${BASE_URL}/`,
  });
  Object.assign(mock.behaviour, behaviour);
  const h = await startHarness({
    APP_BASE_URL: BASE_URL,
    OIDC_ISSUER: mock.issuer,
    OIDC_CLIENT_ID: mock.clientId,
    OIDC_CLIENT_SECRET: mock.clientSecret,
    API_URL: mock.apiUrl,
    ...env,
  });
  return {
    ...h,
    baseUrl: BASE_URL,
    mock,
    close: async () => {
      await h.close();
      await mock.close();
    },
  };
}

/** /login, the mock's authorize endpoint (no login page: it answers at once), /callback. */
export async function signInAtMock(h: MockHarness, app: Agent): Promise<supertest.Response> {
  const login = await app.get('/login').expect(302);
  const authorize = await fetch(login.headers.location as string, { redirect: 'manual' });
  const callback = new URL(authorize.headers.get('location')!);
  return app.get(callback.pathname + callback.search);
}

/** The requests the mock received at one endpoint since `from`. */
export function received(h: MockHarness, path: string, from = 0) {
  return h.mock.requests.slice(from).filter((r) => r.path === path);
}
