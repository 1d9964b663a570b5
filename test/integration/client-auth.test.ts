import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness, type ProviderRequest } from '../helpers/harness.js';
import { startMockHarness } from '../helpers/mock-harness.js';
import { startMockProvider } from '../helpers/mock-provider.js';
import {
  START_TIMEOUT_MS,
  freePort,
  logLines,
  spawnServer,
  within,
} from '../helpers/server-process.js';
import { signIn } from '../helpers/sign-in.js';

/**
 * OIDC_CLIENT_AUTH against the embedded oidc-provider configured to accept only that method (as a
 * strict provider is): sign-in, a refresh and the sign-out's revocation all authenticate, and the
 * token endpoint received exactly what the method sends.
 */

const dir = mkdtempSync(join(tmpdir(), 'codeflow-client-key-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A private key in a file, as an operator would make one (`openssl genpkey`), PEM or JWK. */
function keyFile(type: 'rsa' | 'ec', format: 'pem' | 'jwk'): string {
  const { privateKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const file = join(dir, `${type}.${format}`);
  writeFileSync(
    file,
    format === 'pem'
      ? privateKey.export({ type: 'pkcs8', format: 'pem' })
      : JSON.stringify(privateKey.export({ format: 'jwk' })),
  );
  return file;
}

/** Sign in, "Refresh now", sign out; returns what the token and revocation endpoints received. */
async function fullSession(h: Harness): Promise<ProviderRequest[]> {
  const app = h.app();
  expect((await signIn(h, app)).response.status).toBe(302);
  const page = await app.get('/dashboard').expect(200);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
  await app.post('/refresh').type('form').send({ _csrf: csrf }).expect(303);
  await app.post('/logout').type('form').send({ _csrf: csrf }).expect(200);
  await h.runtime.revoker.settle(10_000);
  const calls = h.providerRequests.filter((r) => r.route === 'token' || r.route === 'revocation');
  expect(calls.map((r) => `${r.route} ${r.status}`)).toEqual([
    'token 200',
    'token 200',
    'revocation 200',
  ]);
  return calls;
}

describe('client authentication methods, each the only one the provider accepts', () => {
  it('client_secret_basic: the credentials in the Authorization header, none in the body', async () => {
    const h = await startHarness({ OIDC_CLIENT_AUTH: 'client_secret_basic' });
    try {
      for (const call of await fullSession(h)) {
        const basic = Buffer.from(call.authorization!.replace(/^Basic /, ''), 'base64').toString();
        expect(decodeURIComponent(basic.split(':')[0]!)).toBe(h.runtime.config.oidc.clientId);
        expect(call.params.client_secret).toBeUndefined();
        expect(call.params.client_assertion).toBeUndefined();
      }
    } finally {
      await h.close();
    }
  });

  it('client_secret_post: the secret in the body, no Authorization header', async () => {
    const h = await startHarness({ OIDC_CLIENT_AUTH: 'client_secret_post' });
    try {
      for (const call of await fullSession(h)) {
        expect(call.authorization).toBeUndefined();
        expect(call.params.client_id).toBe(h.runtime.config.oidc.clientId);
        expect(call.params.client_secret).toBe(h.runtime.config.oidc.clientSecret);
      }
    } finally {
      await h.close();
    }
  });

  it.each([
    ['an RSA key in PEM', 'rsa', 'pem', 'RS256'],
    ['a P-256 key as a JWK', 'ec', 'jwk', 'ES256'],
  ] as const)(
    'private_key_jwt with %s: a signed assertion, no secret, verifiable with /.well-known/jwks.json',
    async (_name, type, format, alg) => {
      const h = await startHarness({
        OIDC_CLIENT_AUTH: 'private_key_jwt',
        OIDC_CLIENT_PRIVATE_KEY_FILE: keyFile(type, format),
      });
      try {
        const published = await h.app().get('/.well-known/jwks.json').expect(200);
        expect(published.body.keys).toHaveLength(1);
        expect(published.body.keys[0].d).toBeUndefined(); // the public half only
        const keys = createLocalJWKSet(published.body);
        const clientId = h.runtime.config.oidc.clientId;
        const jtis = new Set<string>();
        for (const call of await fullSession(h)) {
          expect(call.authorization).toBeUndefined();
          expect(call.params.client_secret).toBeUndefined();
          expect(call.params.client_assertion_type).toBe(
            'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          );
          const assertion = String(call.params.client_assertion);
          expect(decodeProtectedHeader(assertion)).toMatchObject({
            alg,
            kid: published.body.keys[0].kid,
          });
          const { payload } = await jwtVerify(assertion, keys, { algorithms: [alg] });
          expect(payload).toMatchObject({ iss: clientId, sub: clientId });
          expect(JSON.stringify(payload.aud)).toContain(h.runtime.devProvider!.issuer.origin);
          expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
          jtis.add(String(payload.jti));
        }
        expect(jtis.size).toBe(3); // a fresh assertion per request
      } finally {
        await h.close();
      }
    },
  );

  it('serves no key set without private_key_jwt', async () => {
    const h = await startHarness();
    try {
      await h.app().get('/.well-known/jwks.json').expect(404);
    } finally {
      await h.close();
    }
  });
});

describe('a method the provider does not list', () => {
  it('stops the start with one line naming what the provider accepts', async () => {
    const mock = await startMockProvider({
      redirectUri: 'http://127.0.0.1:3999/callback',
      postLogoutRedirectUri: 'http://127.0.0.1:3999/',
    });
    mock.behaviour.metadata = { token_endpoint_auth_methods_supported: ['client_secret_basic'] };
    const app = spawnServer({
      PORT: String(await freePort()),
      OIDC_ISSUER: mock.issuer,
      OIDC_CLIENT_ID: mock.clientId,
      OIDC_CLIENT_SECRET: mock.clientSecret,
      OIDC_CLIENT_AUTH: 'client_secret_post',
      APP_BASE_URL: 'http://127.0.0.1:3999',
    });
    try {
      const exit = await within(app.exited, START_TIMEOUT_MS, 'the refused start to exit');
      expect(exit.code).toBe(1);
      const fatal = logLines(app).filter((l) => l.level === 60);
      expect(fatal).toHaveLength(1);
      expect(fatal[0]!.msg).toBe(
        'codeflow cannot start: OIDC_CLIENT_AUTH: codeflow uses client_secret_post; the provider accepts client_secret_basic',
      );
    } finally {
      await app.kill();
      await mock.close();
    }
  });
});

describe('a secret that some providers mis-decode', () => {
  it.each([
    ['client_secret_basic', 'warns, naming client_secret_post', 1],
    ['client_secret_post', 'says nothing', 0],
  ] as const)('with %s and a secret holding "-" and "=", %s', async (method, _says, warnings) => {
    const h = await startMockHarness({
      OIDC_CLIENT_AUTH: method,
      OIDC_CLIENT_SECRET: 'abc-def_ghi.jkl~mno+pqr/stu=',
    });
    try {
      const lines = h.logs.lines.filter((l) =>
        l.includes('set OIDC_CLIENT_AUTH=client_secret_post'),
      );
      expect(lines).toHaveLength(warnings);
      expect(h.logs.text()).not.toContain('abc-def_ghi');
    } finally {
      await h.close();
    }
  });
});
