import { execFile } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEMO_SETTINGS,
  renewalTime,
  ServiceClient,
  serviceSettings,
  type ServiceSettings,
} from '../../examples/service-client.js';
import { DEMO_SERVICE_CLIENT } from '../../src/dev-provider/dev-provider.js';
import { startHarness, type Harness } from '../helpers/harness.js';

/**
 * examples/service-client.ts against the real embedded provider: its demo service client, the
 * client_credentials grant, and the demo API looking the token up in the provider's store.
 */

const tokenCalls = (h: Harness) =>
  h.providerRequests.filter(
    (r) => r.route === 'token' && r.params.grant_type === 'client_credentials',
  );
const issuedToken = (h: Harness) =>
  (tokenCalls(h).at(-1)?.body as { access_token: string }).access_token;

/** The example's demo client, pointed at this harness's provider (its port is a free one). */
function settingsFor(h: Harness): ServiceSettings {
  const dev = h.runtime.devProvider!;
  return { ...DEMO_SETTINGS, issuer: dev.issuer, apiUrl: dev.apiUrl };
}

/** A ServiceClient whose fetch records every API answer's status, in order. */
function serviceClient(h: Harness) {
  const apiStatuses: number[] = [];
  const apiUrl = h.runtime.devProvider!.apiUrl.href;
  const recording: client.CustomFetch = async (url, init) => {
    const response = await fetch(url, init);
    if (url === apiUrl) apiStatuses.push(response.status);
    return response;
  };
  return { service: new ServiceClient(settingsFor(h), { fetch: recording }), apiStatuses };
}

const tsx = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));
const script = fileURLToPath(new URL('../../examples/service-client.ts', import.meta.url));

describe('the service client with 300 s tokens', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('uses the demo client the embedded provider registers', () => {
    expect(DEMO_SETTINGS).toMatchObject(DEMO_SERVICE_CLIENT);
  });

  it("refuses the grant to codeflow's own client: only the service client may use it", async () => {
    const { clientId, clientSecret } = h.runtime.config.oidc;
    const codeflow = new ServiceClient({ ...settingsFor(h), clientId, clientSecret });
    const before = tokenCalls(h).length;
    // oidc-provider says invalid_request here (RFC 6749 §5.2 would say unauthorized_client).
    await expect(codeflow.get()).rejects.toMatchObject({
      error_description: 'requested grant type is not allowed for this client',
    });
    expect(tokenCalls(h).slice(before)).toMatchObject([{ status: 400 }]);
  });

  it('asks for one token for ten API calls, over kept-alive connections', async () => {
    const port = h.runtime.devProvider!.issuer.port;
    let connections = 0;
    const onConnected = (message: unknown) => {
      const { connectParams } = message as { connectParams: { port: string } };
      if (String(connectParams.port) === port) connections++;
    };
    diagnosticsChannel.subscribe('undici:client:connected', onConnected);
    const before = tokenCalls(h).length;
    try {
      const { service, apiStatuses } = serviceClient(h);
      for (let call = 0; call < 10; call++) {
        const response = await service.get();
        expect(await response.json()).toMatchObject({
          client: 'codeflow-service',
          scopes: ['api:read'],
        });
      }
      expect(apiStatuses).toEqual(Array(10).fill(200));
    } finally {
      diagnosticsChannel.unsubscribe('undici:client:connected', onConnected);
    }
    const calls = tokenCalls(h).slice(before);
    expect(calls).toHaveLength(1);
    // client_secret_basic, as registered: the secret in the Authorization header, not the body.
    expect(calls[0]!.authorization).toMatch(/^Basic /);
    expect(calls[0]!.params.client_secret).toBeUndefined();
    expect(calls[0]!.params.scope).toBe('api:read');
    // Discovery, the token and ten API calls: a new connection each would be 12. undici may
    // open a second one while the first is still being handed back to its pool.
    expect(connections).toBeLessThanOrEqual(2);
  });

  it('has 20 concurrent callers on an empty cache share one token request', async () => {
    const { service, apiStatuses } = serviceClient(h);
    const before = tokenCalls(h).length;
    h.providerDelay.tokenMs = 200; // the callers arrive while the token request is in flight
    try {
      const responses = await Promise.all(Array.from({ length: 20 }, () => service.get()));
      expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    } finally {
      h.providerDelay.tokenMs = 0;
    }
    expect(tokenCalls(h).length - before).toBe(1);
    expect(apiStatuses).toHaveLength(20);
  });

  it('renews once and retries once when the API answers 401 for a revoked token', async () => {
    const { service, apiStatuses } = serviceClient(h);
    expect((await service.get()).status).toBe(200);
    const before = tokenCalls(h).length;
    const provider = h.runtime.devProvider!.provider;
    await (await provider.ClientCredentials.find(issuedToken(h)))!.destroy();

    const response = await service.get();

    expect(response.status).toBe(200);
    expect(apiStatuses).toEqual([200, 401, 200]);
    expect(tokenCalls(h).length - before).toBe(1);
  });

  it('fails after one retry, not in a loop, when the API refuses every token', async () => {
    const { service, apiStatuses } = serviceClient(h);
    const provider = h.runtime.devProvider!.provider;
    // Every token the provider issues is revoked the moment it is stored.
    const revoke = (token: { destroy(): Promise<void> }) => void token.destroy();
    provider.on('client_credentials.saved', revoke);
    const before = tokenCalls(h).length;
    try {
      await expect(service.get()).rejects.toThrow(/refused a new token: Bearer .*invalid_token/);
    } finally {
      provider.off('client_credentials.saved', revoke);
    }
    expect(apiStatuses).toEqual([401, 401]);
    expect(tokenCalls(h).length - before).toBe(2); // the first token and one renewal
  });

  it('runs as npm run example:service, printing what the API said and never the token', async () => {
    const before = tokenCalls(h).length;
    const dev = h.runtime.devProvider!;
    const { stdout } = await promisify(execFile)(tsx, [script], {
      env: {
        ...process.env,
        SERVICE_ISSUER: dev.issuer.href,
        SERVICE_CLIENT_ID: DEMO_SERVICE_CLIENT.clientId,
        SERVICE_CLIENT_SECRET: DEMO_SERVICE_CLIENT.clientSecret,
        SERVICE_API_URL: dev.apiUrl.href,
        SERVICE_SCOPE: DEMO_SERVICE_CLIENT.scope,
      },
      timeout: 20_000,
    });
    expect(stdout.match(/^call \d: 200/gm)).toHaveLength(3);
    expect(stdout).toContain("client: 'codeflow-service'");
    expect(tokenCalls(h).length - before).toBe(1);
    expect(stdout).not.toContain(issuedToken(h));
  });

  it('fails at start naming the missing variable, before any token request', async () => {
    const before = tokenCalls(h).length;
    const run = promisify(execFile)(tsx, [script], {
      env: { ...process.env, SERVICE_ISSUER: h.runtime.devProvider!.issuer.href },
      timeout: 20_000,
    });
    await expect(run).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining(
        'SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET, SERVICE_API_URL not set',
      ),
    });
    expect(tokenCalls(h).length).toBe(before);
  });
});

// 12 s: renewal is due at 9.6 s and the token ends near 11–12 s (the provider counts whole seconds),
// a window wide enough for a loaded machine's polling.
describe('the service client with 12 s tokens', () => {
  let h: Harness;
  beforeAll(async () => {
    // 8 s, not less: oidc-provider counts a token's life from a whole second, so up to 1 s of it
    // is gone when the answer says expires_in 8; renewal at 80 % still leaves it 0.6 s at least.
    h = await startHarness({ DEV_ACCESS_TOKEN_TTL: '12' });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('renews shortly before the token expires, not after, and no call meets a 401', async () => {
    const { service, apiStatuses } = serviceClient(h);
    const provider = h.runtime.devProvider!.provider;
    const before = tokenCalls(h).length;
    const startedAt = Date.now();
    await service.get();
    const first = await provider.ClientCredentials.find(issuedToken(h));
    const expiresAtMs = first!.exp! * 1000;

    let renewalCallStartedAt: number | undefined;
    for (let call = 0; call < 200 && renewalCallStartedAt === undefined; call++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const callStartedAt = Date.now();
      expect((await service.get()).status).toBe(200);
      if (tokenCalls(h).length - before === 2) renewalCallStartedAt = callStartedAt;
    }

    expect(renewalCallStartedAt).toBeDefined();
    // Due at 80 % of 12 s after it was asked for: 9.6 s, measured here from a little earlier.
    expect(renewalCallStartedAt! - startedAt).toBeGreaterThanOrEqual(9000);
    expect(renewalCallStartedAt!).toBeLessThan(expiresAtMs);
    expect(apiStatuses.every((status) => status === 200)).toBe(true);
  });
});

describe('when the service client renews a token', () => {
  it.each([
    [3600, 3570, '30 s before expiry'],
    [300, 270, '30 s before expiry'],
    [150, 120, 'both rules agree'],
    [60, 48, 'at 80 % of a short lifetime'],
    [8, 6.4, 'at 80 % of a short lifetime'],
  ])('renews a token of %i s at %d s, %s', (expiresIn, dueAfter, _why) => {
    expect(renewalTime(1000, expiresIn)).toBeCloseTo(1000 + dueAfter);
  });

  it('keeps a token without expires_in until the API refuses it', () => {
    expect(renewalTime(1000, undefined)).toBe(Infinity);
  });
});

describe('the service client settings', () => {
  const full = {
    SERVICE_ISSUER: 'https://login.example.com',
    SERVICE_CLIENT_ID: 'reports-job',
    SERVICE_CLIENT_SECRET: 'from-a-secret-store',
    SERVICE_API_URL: 'https://api.example.com/reports',
  };

  it('uses the embedded provider demo client when no variable is set', () => {
    expect(serviceSettings({})).toEqual(DEMO_SETTINGS);
  });

  it('takes every variable when all are set, SERVICE_SCOPE being optional', () => {
    expect(serviceSettings(full)).toEqual({
      issuer: new URL(full.SERVICE_ISSUER),
      clientId: 'reports-job',
      clientSecret: 'from-a-secret-store',
      apiUrl: new URL(full.SERVICE_API_URL),
      scope: undefined,
    });
  });

  it.each([
    ['SERVICE_CLIENT_SECRET', { ...full, SERVICE_CLIENT_SECRET: '' }],
    ['SERVICE_ISSUER, SERVICE_API_URL', { ...full, SERVICE_ISSUER: '', SERVICE_API_URL: '' }],
    [
      'SERVICE_ISSUER, SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET, SERVICE_API_URL',
      { SERVICE_SCOPE: 'api:read' },
    ],
  ])('fails at start naming %s when only some variables are set', (names, env) => {
    expect(() => serviceSettings(env)).toThrow(`service client: ${names} not set`);
  });

  it('fails at start naming a variable that is not a URL', () => {
    expect(() => serviceSettings({ ...full, SERVICE_API_URL: 'api.example.com' })).toThrow(
      'SERVICE_API_URL is not a URL',
    );
  });
});
