import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockHarness } from '../helpers/mock-harness.js';
import { startMockProvider, type MockProvider } from '../helpers/mock-provider.js';

/** `npm run check-provider` (src/check-provider.ts), run as a person would: a process, its output, its exit code. */
function checkProvider(env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/check-provider.ts'], {
      env: { PATH: process.env.PATH, LOG_LEVEL: 'error', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

describe('npm run check-provider', () => {
  let mock: MockProvider;
  beforeAll(async () => {
    mock = await startMockProvider({
      redirectUri: 'http://127.0.0.1:3999/callback',
      postLogoutRedirectUri: 'http://127.0.0.1:3999/',
    });
  });
  afterAll(async () => {
    await mock?.close();
  });
  const against = (extra: Record<string, string> = {}) =>
    checkProvider({
      OIDC_ISSUER: mock.issuer,
      OIDC_CLIENT_ID: mock.clientId,
      OIDC_CLIENT_SECRET: mock.clientSecret,
      APP_BASE_URL: 'http://127.0.0.1:3999',
      ...extra,
    });

  it('passes the embedded provider, with nothing missing', async () => {
    const { code, out } = await checkProvider({});
    expect(out).toContain('codeflow can sign people in with this provider');
    expect(out).not.toMatch(/^\s+(warn|FAIL)/m);
    expect(out).toMatch(/ok\s+revocation\s+http:\/\/localhost:\d+\/token\/revocation/);
    expect(code).toBe(0);
  });

  it('names what a provider without a revocation endpoint cannot do, and still passes it', async () => {
    mock.behaviour.metadata = { revocation_endpoint: undefined };
    try {
      const { code, out } = await against();
      expect(out).toMatch(
        /warn\s+revocation\s+the provider has no revocation endpoint: sign-out cannot revoke refresh tokens/,
      );
      expect(out).toContain('codeflow can sign people in with this provider');
      expect(code).toBe(0);
    } finally {
      mock.behaviour.metadata = undefined;
    }
  });

  it('fails a provider that names another issuer, showing both', async () => {
    const other = mock.issuer.replace('127.0.0.1', 'localhost');
    mock.behaviour.metadata = { issuer: other };
    try {
      const { code, out } = await against();
      expect(out).toContain('FAIL  The sign-in provider is not the one configured');
      expect(out).toContain(`configuredIssuer: ${mock.issuer}/`);
      expect(out).toContain(`discoveredIssuer: ${other}`);
      expect(code).toBe(1);
    } finally {
      mock.behaviour.metadata = undefined;
    }
  });

  it('fails an ID-token algorithm the provider does not offer', async () => {
    const { code, out } = await against({ OIDC_ID_TOKEN_ALG: 'ES256' });
    expect(out).toMatch(/FAIL\s+ID-token algorithm\s+codeflow accepts only ES256/);
    expect(code).toBe(1);
  });
});

describe('the running app says the same', () => {
  it('in /readyz and once in the log: the verdict and the gaps, no secret', async () => {
    const h = await startMockHarness();
    try {
      h.mock.behaviour.metadata = { revocation_endpoint: undefined };
      await h.app().get('/login').expect(302);
      await h.app().get('/login').expect(302);
      const ready = (await h.app().get('/readyz').expect(200)).body;
      expect(ready.providerCheck.verdict).toBe('ok');
      expect(ready.providerCheck.gaps).toContain(
        'revocation: the provider has no revocation endpoint: sign-out cannot revoke refresh tokens; they stay valid until they expire',
      );
      expect(JSON.stringify(ready)).not.toContain(h.mock.clientSecret);
      const lines = h.logs.lines.filter((l) => l.includes('provider check'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('sign-out cannot revoke refresh tokens');
    } finally {
      await h.close();
    }
  });
});
