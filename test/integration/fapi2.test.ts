import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  exportJWK,
  exportPKCS8,
  generateKeyPair,
  jwtVerify,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClientKey } from '../../src/auth/client-key.js';
import { startHarness, type Harness, type ProviderRequest } from '../helpers/harness.js';
import { startMockHarness, type MockHarness } from '../helpers/mock-harness.js';
import { startMockProvider, type MockProvider } from '../helpers/mock-provider.js';
import {
  START_TIMEOUT_MS,
  freePort,
  logLines,
  spawnServer,
  within,
  type ServerProcess,
} from '../helpers/server-process.js';
import { signIn } from '../helpers/sign-in.js';
import { configProblems } from '../helpers/config-problems.js';

/**
 * OIDC_PROFILE=fapi2 (the FAPI 2.0 Security Profile): PAR, PKCE S256, private_key_jwt with a
 * FAPI-allowed algorithm, DPoP, RFC 9207 `iss` and PS256/ES256/EdDSA ID tokens. Against the
 * embedded oidc-provider in its own FAPI 2.0 profile, the whole session works; a setting that
 * contradicts the profile stops the start, naming the variable; a provider that lacks what the
 * profile requires fails the provider check.
 */

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const dir = mkdtempSync(join(tmpdir(), 'codeflow-fapi2-'));
const open: Array<Harness | MockHarness> = [];
const started: ServerProcess[] = [];
afterAll(async () => {
  // Stopped by their PIDs, whatever a failed test left running.
  for (const app of started) await app.kill();
  for (const h of open) await h.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A private key in a PEM PKCS#8 file, made with jose as an operator's tooling would. */
async function keyFile(kind: 'ec' | 'rsa'): Promise<string> {
  const { privateKey } =
    kind === 'ec'
      ? await generateKeyPair('ES256', { extractable: true })
      : await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const file = join(dir, `${kind}-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(file, await exportPKCS8(privateKey), { mode: 0o600 });
  return file;
}

async function harness(
  env: Record<string, string>,
  options: Parameters<typeof startHarness>[1] = {},
): Promise<Harness> {
  const h = await startHarness(env, options);
  open.push(h);
  return h;
}

/** A POST codeflow sent to the provider: where, its form, and whether it had an Authorization header. */
interface Sent {
  url: string;
  form: URLSearchParams;
  authorization: boolean;
}

/**
 * codeflow's outbound fetch, recording each POST as sent. oidc-provider keeps only the
 * authorization parameters of a pushed request (not the client assertion) in `ctx.oidc.params`,
 * so the harness's record cannot show how the push was authenticated; the provider's 201 says
 * it accepted it.
 */
function recordingPosts(sent: Sent[]): typeof fetch {
  return async (input, init) => {
    if (init?.method === 'POST') {
      sent.push({
        url: input instanceof Request ? input.url : String(input),
        form: new URLSearchParams(String(init.body)),
        authorization: new Headers(init.headers).has('authorization'),
      });
    }
    return fetch(input, init);
  };
}

function start(env: Record<string, string>): ServerProcess {
  const app = spawnServer({ LOG_LEVEL: 'info', ...env });
  started.push(app);
  return app;
}

/** The requests the embedded provider received at one route, since `from`. */
const at = (h: Harness, route: string, from = 0) =>
  h.providerRequests.slice(from).filter((r) => r.route === route);

/** Waits (bounded: 10 s) until the embedded provider has answered a request at `route`. */
async function waitFor(h: Harness, route: string, from: number): Promise<ProviderRequest[]> {
  for (let i = 0; i < 200; i++) {
    const seen = at(h, route, from);
    if (seen.length > 0) return seen;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no ${route} request reached the provider within 10 s`);
}

const problems = configProblems;

describe('OIDC_PROFILE=fapi2 against the embedded provider in its FAPI 2.0 profile', () => {
  it.each([
    ['a P-256 key', 'ES256', 'ec'],
    ['an RSA key (2048 bits)', 'PS256', 'rsa'],
  ] as const)(
    'with %s: the whole session works, pushed, key-authenticated (%s) and DPoP-bound',
    async (_name, assertionAlg, kind) => {
      const sent: Sent[] = [];
      const h = await harness(
        { OIDC_PROFILE: 'fapi2', OIDC_CLIENT_PRIVATE_KEY_FILE: await keyFile(kind) },
        { providerFetch: recordingPosts(sent) },
      );
      expect(h.runtime.config.oidc).toMatchObject({
        profile: 'fapi2',
        clientAuth: 'private_key_jwt',
        idTokenAlg: 'PS256',
        dpop: true,
        par: 'on',
      });
      expect(h.runtime.config.devProvider?.profile).toBe('fapi2');
      const issuer = h.runtime.devProvider!.issuer.origin;
      const clientId = h.runtime.config.oidc.clientId;
      const published = (await h.app().get('/.well-known/jwks.json').expect(200)).body;
      const keys = createLocalJWKSet(published);

      /** A client assertion as FAPI 2.0 wants it: this key, this algorithm, for this issuer. */
      const expectAssertion = async (call: Pick<ProviderRequest, 'authorization' | 'params'>) => {
        expect(call.authorization).toBeUndefined(); // no Authorization: Basic
        expect(call.params.client_secret).toBeUndefined();
        expect(call.params.client_assertion_type).toBe(ASSERTION_TYPE);
        const assertion = String(call.params.client_assertion);
        expect(decodeProtectedHeader(assertion)).toMatchObject({
          alg: assertionAlg,
          kid: published.keys[0].kid,
        });
        const { payload } = await jwtVerify(assertion, keys, { algorithms: [assertionAlg] });
        expect(payload).toMatchObject({ iss: clientId, sub: clientId, aud: issuer });
      };
      const expectProof = (call: ProviderRequest) => {
        expect(call.dpop).toBeDefined();
        expect(decodeProtectedHeader(call.dpop!)).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256' });
      };

      // Sign-in: the browser carries only a reference to the pushed request.
      const app = h.app();
      const { authorizationUrl, response } = await signIn(h, app);
      expect(response.status).toBe(302);
      expect([...authorizationUrl.searchParams.keys()].sort()).toEqual([
        'client_id',
        'request_uri',
      ]);
      const pushed = at(h, 'pushed_authorization_request');
      expect(pushed).toHaveLength(1);
      expect(pushed[0]!.status).toBe(201);
      expect(pushed[0]!.authorization).toBeUndefined();
      expect(pushed[0]!.params.code_challenge_method).toBe('S256');
      const parEndpoint = (await h.runtime.provider.getConfiguration()).serverMetadata()
        .pushed_authorization_request_endpoint;
      const pushes = sent.filter((r) => r.url === parEndpoint);
      expect(pushes).toHaveLength(1);
      await expectAssertion({
        authorization: pushes[0]!.authorization ? 'present' : undefined,
        params: Object.fromEntries(pushes[0]!.form),
      });

      // The code exchange: a proof, an assertion, a DPoP token and a PS256 ID token.
      const exchange = at(h, 'token');
      expect(exchange.map((r) => `${String(r.params.grant_type)} ${r.status}`)).toEqual([
        'authorization_code 200',
      ]);
      expectProof(exchange[0]!);
      await expectAssertion(exchange[0]!);
      const issued = exchange[0]!.body as Record<string, string>;
      expect(issued.token_type).toBe('DPoP');
      expect(decodeProtectedHeader(issued.id_token!).alg).toBe('PS256');

      // The dashboard's API call: the demo API takes the bound token only with a valid proof.
      const page = await app.get('/dashboard').expect(200);
      expect(page.text).toMatch(/answered <span class="status ok">200<\/span>/);
      expect(page.text).toMatch(/id="dpop-binding">yes: token type <code>DPoP<\/code>/);

      // "Refresh now": the refresh_token grant, with a proof and an assertion.
      const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
      const beforeRefresh = h.providerRequests.length;
      await app.post('/refresh').type('form').send({ _csrf: csrf }).expect(303);
      const refresh = at(h, 'token', beforeRefresh);
      expect(refresh.map((r) => `${String(r.params.grant_type)} ${r.status}`)).toEqual([
        'refresh_token 200',
      ]);
      expectProof(refresh[0]!);
      await expectAssertion(refresh[0]!);
      expect((refresh[0]!.body as Record<string, string>).token_type).toBe('DPoP');
      const after = await app.get('/dashboard').expect(200);
      expect(after.text).toMatch(/id="refresh-count">1/);
      expect(after.text).toMatch(/answered <span class="status ok">200<\/span>/);

      // Sign-out: the signing-out page now, the revocation in the background.
      const beforeLogout = h.providerRequests.length;
      const out = await app.post('/logout').type('form').send({ _csrf: csrf }).expect(200);
      expect(out.text).toContain('You are signed out here.');
      expect(out.text).toContain('id="end-session"');
      const revocations = await waitFor(h, 'revocation', beforeLogout);
      for (const revocation of revocations) {
        expect(revocation.status).toBe(200);
        await expectAssertion(revocation);
        expectProof(revocation);
      }
      await app.get('/me').set('Accept', 'application/json').expect(401);
    },
  );
});

describe('a setting that contradicts OIDC_PROFILE=fapi2 stops the start', () => {
  let key: string;
  beforeAll(async () => {
    key = await keyFile('ec');
  });

  /** What contradicts the profile, the variable the refusal must name, and the rest of the env. */
  const REFUSED = [
    ['no key file', 'OIDC_CLIENT_PRIVATE_KEY_FILE', {}, false],
    ['OIDC_ID_TOKEN_ALG=RS256', 'OIDC_ID_TOKEN_ALG', { OIDC_ID_TOKEN_ALG: 'RS256' }, true],
    ['OIDC_PAR=off', 'OIDC_PAR', { OIDC_PAR: 'off' }, true],
    ['OIDC_DPOP=off', 'OIDC_DPOP', { OIDC_DPOP: 'off' }, true],
    [
      'OIDC_CLIENT_AUTH=client_secret_basic',
      'OIDC_CLIENT_AUTH',
      { OIDC_CLIENT_AUTH: 'client_secret_basic' },
      true,
    ],
  ] as const;
  const envOf = (extra: Record<string, string>, withKey: boolean): Record<string, string> => ({
    OIDC_PROFILE: 'fapi2',
    ...(withKey && { OIDC_CLIENT_PRIVATE_KEY_FILE: key }),
    ...extra,
  });

  it.each(REFUSED)(
    'with %s: a ConfigError naming %s and fapi2',
    (_what, variable, extra, withKey) => {
      const found = problems(envOf(extra, withKey));
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(new RegExp(`^${variable}: .*OIDC_PROFILE=fapi2`));
    },
  );

  it('PROVIDER=github: a ConfigError naming OIDC_PROFILE and fapi2', () => {
    const found = problems({
      PROVIDER: 'github',
      OIDC_PROFILE: 'fapi2',
      OIDC_CLIENT_ID: 'codeflow',
      OIDC_CLIENT_PRIVATE_KEY_FILE: key,
    });
    expect(found).toContain('OIDC_PROFILE: fapi2 needs an OpenID provider; GitHub is not one');
  });

  it.each(REFUSED.slice(0, 2))(
    'a real start with %s exits 1 with one line naming %s',
    async (_what, variable, extra, withKey) => {
      const app = start({
        PORT: String(await freePort()),
        DEV_PROVIDER_PORT: String(await freePort()),
        ...envOf(extra, withKey),
      });
      const exit = await within(app.exited, START_TIMEOUT_MS, 'the refused start to exit');
      expect(exit.code).toBe(1);
      const listed = app
        .stderr()
        .split('\n')
        .filter((line) => line.startsWith('  - '));
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatch(new RegExp(`^  - ${variable}: .*OIDC_PROFILE=fapi2`));
      expect(app.stderr()).not.toMatch(/^\s+at /m); // no stack trace
      expect(app.stdout()).not.toContain('listening');
    },
  );

  it('a key file holding a JWK with "alg":"RS256" is refused, by loadClientKey and by a real start', async () => {
    const { privateKey } = await generateKeyPair('RS256', {
      extractable: true,
      modulusLength: 2048,
    });
    const file = join(dir, 'rs256.jwk');
    writeFileSync(file, JSON.stringify({ ...(await exportJWK(privateKey)), alg: 'RS256' }), {
      mode: 0o600,
    });
    // Without the profile the same file is a good key: the refusal is the profile's.
    expect((await loadClientKey(file, false)).alg).toBe('RS256');
    await expect(loadClientKey(file, true)).rejects.toThrow(
      /^OIDC_CLIENT_PRIVATE_KEY_FILE: a RS256 key is not allowed with OIDC_PROFILE=fapi2/,
    );

    const app = start({
      PORT: String(await freePort()),
      DEV_PROVIDER_PORT: String(await freePort()),
      OIDC_PROFILE: 'fapi2',
      OIDC_CLIENT_PRIVATE_KEY_FILE: file,
    });
    const exit = await within(app.exited, START_TIMEOUT_MS, 'the refused start to exit');
    expect(exit.code).toBe(1);
    const fatal = logLines(app).filter((l) => l.level === 60);
    expect(fatal).toHaveLength(1);
    expect(String(fatal[0]!.msg)).toMatch(
      /^codeflow cannot start: OIDC_CLIENT_PRIVATE_KEY_FILE: a RS256 key is not allowed with OIDC_PROFILE=fapi2/,
    );
    expect(app.stdout()).not.toContain('codeflow listening');
  });
});

describe('the embedded provider in FAPI 2.0 (DEV_PROVIDER_PROFILE=fapi2), codeflow not (OIDC_PROFILE=none)', () => {
  it('fails the provider check on client authentication before anyone signs in', async () => {
    const h = await harness({ DEV_PROVIDER_PROFILE: 'fapi2', OIDC_PROFILE: 'none' });
    expect(h.runtime.config.oidc.profile).toBe('none');
    expect(h.runtime.config.oidc.clientAuth).toBe('client_secret_basic');
    expect(h.runtime.config.devProvider?.profile).toBe('fapi2');
    await h.runtime.provider.getConfiguration(); // discovery, as the start does
    const ready = (await h.app().get('/readyz').expect(200)).body;
    expect(ready.providerCheck.verdict).toBe('fail');
    const gap = (ready.providerCheck.gaps as string[]).find((g) =>
      g.startsWith('client authentication:'),
    );
    expect(gap).toMatch(
      /^client authentication: codeflow uses client_secret_basic; the provider accepts /,
    );
    expect(gap).not.toMatch(/accepts .*client_secret_basic/);
    expect(h.providerRequests.filter((r) => r.route === 'token')).toHaveLength(0);
  });

  it('a real start is refused, naming OIDC_CLIENT_AUTH', async () => {
    const port = await freePort();
    const app = start({
      PORT: String(port),
      APP_BASE_URL: `http://127.0.0.1:${port}`,
      DEV_PROVIDER_PORT: String(await freePort()),
      DEV_PROVIDER_PROFILE: 'fapi2',
      OIDC_PROFILE: 'none',
    });
    const exit = await within(app.exited, START_TIMEOUT_MS, 'the refused start to exit');
    expect(exit.code).toBe(1);
    const fatal = logLines(app).filter((l) => l.level === 60);
    expect(fatal).toHaveLength(1);
    expect(String(fatal[0]!.msg)).toMatch(
      /^codeflow cannot start: OIDC_CLIENT_AUTH: codeflow uses client_secret_basic; the provider accepts /,
    );
  });
});

describe('OIDC_PROFILE=fapi2 against a provider without what the profile requires', () => {
  /** What a FAPI 2.0 provider advertises beyond the mock's defaults (PAR endpoint aside). */
  const FAPI2_METADATA = {
    id_token_signing_alg_values_supported: ['PS256'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['ES256', 'PS256'],
    dpop_signing_alg_values_supported: ['ES256'],
  };
  const mocks: MockProvider[] = [];
  afterAll(async () => {
    for (const mock of mocks) await mock.close();
  });

  /** Everything FAPI 2.0 needs of the provider's metadata, but for what `metadata` overrides. */
  async function checkAgainst(metadata: Record<string, unknown>) {
    const h = await startMockHarness(
      { OIDC_PROFILE: 'fapi2', OIDC_CLIENT_PRIVATE_KEY_FILE: await keyFile('ec') },
      { metadata: { ...FAPI2_METADATA, ...metadata } },
    );
    open.push(h);
    // Discovery is lazy: the PAR endpoint, which names the mock's origin, is in before it runs.
    h.mock.behaviour.metadata!.pushed_authorization_request_endpoint ??= `${h.mock.issuer}/par`;
    await h.runtime.provider.getConfiguration();
    return (await h.app().get('/readyz').expect(200)).body.providerCheck as {
      verdict: string;
      gaps: string[];
    };
  }

  it('passes a provider that has it all (the control)', async () => {
    const check = await checkAgainst({});
    expect(check.verdict).toBe('ok');
    expect(check.gaps.filter((g) => /^(RFC 9207 iss|PKCE):/.test(g))).toEqual([]);
  });

  it('fails one that does not send RFC 9207 iss', async () => {
    const check = await checkAgainst({ authorization_response_iss_parameter_supported: false });
    expect(check.verdict).toBe('fail');
    const gap = check.gaps.find((g) => g.startsWith('RFC 9207 iss:'));
    expect(gap).toContain('FAPI 2.0');
  });

  it('fails one without S256 in code_challenge_methods_supported', async () => {
    const check = await checkAgainst({ code_challenge_methods_supported: ['plain'] });
    expect(check.verdict).toBe('fail');
    const gap = check.gaps.find((g) => g.startsWith('PKCE:'));
    expect(gap).toContain('FAPI 2.0');
  });

  it('a real start against the one without RFC 9207 iss is refused, naming OIDC_PROFILE', async () => {
    const mock = await startMockProvider({
      redirectUri: 'http://127.0.0.1:3999/callback',
      postLogoutRedirectUri: 'http://127.0.0.1:3999/',
    });
    mocks.push(mock);
    mock.behaviour.metadata = {
      ...FAPI2_METADATA,
      pushed_authorization_request_endpoint: `${mock.issuer}/par`,
      authorization_response_iss_parameter_supported: false,
    };
    const app = start({
      PORT: String(await freePort()),
      APP_BASE_URL: 'http://127.0.0.1:3999',
      OIDC_ISSUER: mock.issuer,
      OIDC_CLIENT_ID: mock.clientId,
      OIDC_PROFILE: 'fapi2',
      OIDC_CLIENT_PRIVATE_KEY_FILE: await keyFile('ec'),
    });
    const exit = await within(app.exited, START_TIMEOUT_MS, 'the refused start to exit');
    expect(exit.code).toBe(1);
    const fatal = logLines(app).filter((l) => l.level === 60);
    expect(fatal).toHaveLength(1);
    expect(String(fatal[0]!.msg)).toMatch(
      /^codeflow cannot start: OIDC_PROFILE: FAPI 2.0 requires `iss` in the authorization response \(RFC 9207\)/,
    );
  });
});
