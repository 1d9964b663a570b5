import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { signInAtMock, startMockHarness, type MockHarness } from '../helpers/mock-harness.js';

/**
 * Every way the provider can fail, told apart: the page a person sees (kind and status), the line
 * the operator reads (kind and the facts to act on), /readyz, and the metric reason. Against the
 * misbehaving provider of our own, and against bare local servers for what lies below HTTP.
 */

const harnesses: Harness[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const json = { Accept: 'application/json' };

/** The log lines at `level` that name `kind`. */
function logged(h: Harness, kind: string, level = 'error') {
  const levels: Record<string, number> = { warn: 40, error: 50 };
  return h.logs.parsed().filter((l) => l.kind === kind && l.level === levels[level]);
}

async function signInFailures(h: Harness, reason: string): Promise<number> {
  const text = (await h.app().get('/metrics').expect(200)).text;
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`codeflow_sign_ins_total{outcome="failure",reason="${reason}"}`));
  return Number(line?.split(' ').at(-1) ?? 0);
}

async function mockHarness(env: Record<string, string> = {}): Promise<MockHarness> {
  const h = await startMockHarness(env);
  harnesses.push(h);
  return h;
}

/** codeflow pointed at `issuer`, a server that is not an OpenID provider. */
async function harnessFor(issuer: string, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({
    OIDC_ISSUER: issuer,
    OIDC_CLIENT_ID: 'codeflow',
    OIDC_CLIENT_SECRET: 'a-client-secret',
    ...env,
  });
  harnesses.push(h);
  return h;
}

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('the provider refuses codeflow’s credentials (401 with a challenge, RFC 6749 §5.2)', () => {
  it('at the code exchange: the credentials page, invalid_client in the log, its own metric reason', async () => {
    const h = await mockHarness({ OIDC_CLIENT_SECRET: 'not-the-secret-the-provider-knows' });
    const res = await signInAtMock(h, h.app().set(json));
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('provider_credentials_refused');
    expect(res.body.title).toBe("The sign-in provider refused this application's credentials");
    expect(res.body.title).not.toMatch(/verification/);
    const [line] = logged(h, 'provider_credentials_refused');
    expect(line?.providerError).toBe('invalid_client');
    expect(JSON.stringify(line)).not.toContain('not-the-secret');
    expect(await signInFailures(h, 'provider_credentials_refused')).toBe(1);
    expect(await signInFailures(h, 'invalid_id_token')).toBe(0);
  });

  it('at refresh: the credentials page, and the person stays signed in (an operator fixes it)', async () => {
    const h = await mockHarness();
    const app = h.app();
    expect((await signInAtMock(h, app)).status).toBe(302);
    const page = await app.get('/dashboard').expect(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;

    const secret = h.mock.clientSecret;
    h.mock.clientSecret = 'rotated-at-the-provider';
    const res = await app.post('/refresh').type('form').set(json).send({ _csrf: csrf });
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('provider_credentials_refused');
    expect(logged(h, 'provider_credentials_refused')[0]?.providerError).toBe('invalid_client');

    h.mock.clientSecret = secret;
    await app.get('/dashboard').expect(200);
    await app.post('/refresh').type('form').send({ _csrf: csrf }).expect(303);
  });
});

describe('discovery fails, each cause in its own words', () => {
  it('an issuer that differs from the configured one: both shown in the log and in /readyz', async () => {
    const h = await mockHarness();
    const discovered = h.mock.issuer.replace('127.0.0.1', 'localhost');
    h.mock.behaviour.metadata = { issuer: discovered };
    const res = await h.app().get('/login').set(json);
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('provider_issuer_mismatch');
    const [line] = logged(h, 'provider_issuer_mismatch', 'warn');
    const configured = new URL(h.mock.issuer).href; // as a URL: with its trailing slash
    expect(line).toMatchObject({ configuredIssuer: configured, discoveredIssuer: discovered });
    const ready = await h.app().get('/readyz');
    expect(ready.body.provider).toBe('unreachable');
    expect(ready.body.providerProblem).toEqual({
      kind: 'provider_issuer_mismatch',
      configuredIssuer: configured,
      discoveredIssuer: discovered,
      hint: expect.stringContaining('OIDC_ISSUER') as unknown,
    });
    expect(await signInFailures(h, 'provider_issuer_mismatch')).toBe(1);
  });

  it('a certificate from an unknown CA: names the TLS error and points to NODE_EXTRA_CA_CERTS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'codeflow-tls-'));
    try {
      const made = spawnSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      ]); // prettier-ignore
      expect(made.status, String(made.stderr)).toBe(0);
      const tls = createHttpsServer(
        { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
        (_req, res) => res.end('{}'),
      );
      const port = await listen(tls as unknown as Server);
      const h = await harnessFor(`https://127.0.0.1:${port}`);
      const res = await h.app().get('/login').set(json);
      expect(res.status).toBe(502);
      expect(res.body.error).toBe('provider_tls');
      const [line] = logged(h, 'provider_tls', 'warn');
      expect(line?.tlsError).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO/);
      expect(line?.hint).toContain('NODE_EXTRA_CA_CERTS');
      expect((await h.app().get('/readyz')).body.providerProblem.kind).toBe('provider_tls');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a refused connection', async () => {
    const closed = createHttpServer();
    const port = await listen(closed);
    closed.close();
    servers.splice(servers.indexOf(closed), 1);
    const h = await harnessFor(`http://127.0.0.1:${port}`);
    const res = await h.app().get('/login').set(json);
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('provider_refused');
    expect(res.headers['retry-after']).toBeDefined();
    expect(logged(h, 'provider_refused', 'warn')[0]?.networkError).toBe('ECONNREFUSED');
    expect((await h.app().get('/readyz')).body.providerProblem.kind).toBe('provider_refused');
    expect(await signInFailures(h, 'provider_refused')).toBe(1);
  });

  it('a provider that never answers: a timeout, after HTTP_TIMEOUT_MS', async () => {
    const port = await listen(createHttpServer(() => undefined));
    const h = await harnessFor(`http://127.0.0.1:${port}`, { HTTP_TIMEOUT_MS: '300' });
    const started = performance.now();
    const res = await h.app().get('/login').set(json);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(res.status).toBe(504);
    expect(res.body.error).toBe('provider_timeout');
    expect((await h.app().get('/readyz')).body.providerProblem.kind).toBe('provider_timeout');
  });

  it('an answer that is not JSON (a login page, a proxy)', async () => {
    const port = await listen(
      createHttpServer((_req, res) => {
        res.setHeader('Content-Type', 'text/html');
        res.end('<html><body>Please sign in</body></html>');
      }),
    );
    const h = await harnessFor(`http://127.0.0.1:${port}`);
    const res = await h.app().get('/login').set(json);
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('provider_bad_response');
    expect((await h.app().get('/readyz')).body.providerProblem.kind).toBe('provider_bad_response');
  });
});

afterAll(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});
