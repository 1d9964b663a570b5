import { networkInterfaces } from 'node:os';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import {
  START_TIMEOUT_MS,
  freePort,
  getOnNewConnection,
  logLines,
  spawnServer,
  waitForStdout,
  within,
  type ServerProcess,
} from '../helpers/server-process.js';

/**
 * Where the real process (src/server.ts) listens, and how it fails to start: HOST, and a port
 * that is taken, the app's or the embedded provider's.
 */

const started: ServerProcess[] = [];
const blockers: Server[] = [];

afterAll(async () => {
  // Stopped by their PIDs, whatever a failed test left running.
  for (const app of started) await app.kill();
  for (const blocker of blockers)
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
});

/** A real issuer that is never called: listening and failing to listen need no provider. */
const EXTERNAL_ISSUER = {
  OIDC_ISSUER: 'http://127.0.0.1:9',
  OIDC_CLIENT_ID: 'codeflow',
  OIDC_CLIENT_SECRET: 'notUsedHere', // letters only: no warning about form-encoding
};

function start(env: Record<string, string>): ServerProcess {
  const app = spawnServer({ LOG_LEVEL: 'info', ...env });
  started.push(app);
  return app;
}

/**
 * This machine's addresses other than loopback, as URL hosts. IPv6 link-local ones are left
 * out: they need a zone (`%eth0`) to be reached at all.
 */
function otherAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal && !a.address.startsWith('fe80:'))
    .map((a) => (a!.family === 'IPv6' ? `[${a!.address}]` : a!.address));
}

/** A listener on 127.0.0.1 holding a port, as another program would. */
async function takenPort(): Promise<number> {
  const blocker = createServer();
  blockers.push(blocker);
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  return (blocker.address() as AddressInfo).port;
}

/** The log line a started listener writes, by its message's start. */
function startLine(app: ServerProcess, msg: string): Record<string, unknown> | undefined {
  return logLines(app).find((line) => String(line.msg).startsWith(msg));
}

/** Waits for the exit of a start that cannot happen, and returns its log lines. */
async function failedStart(app: ServerProcess) {
  const exit = await within(app.exited, START_TIMEOUT_MS, 'exit');
  return { exit, lines: logLines(app), output: app.stdout() + app.stderr() };
}

const others = otherAddresses();

describe('the listen address (HOST)', () => {
  it.skipIf(others.length === 0)(
    'with HOST=127.0.0.1, answers on loopback and refuses connections to every other address of the machine',
    async () => {
      const port = await freePort();
      const app = start({ ...EXTERNAL_ISSUER, PORT: String(port), HOST: '127.0.0.1' });
      await waitForStdout(app, 'codeflow listening', START_TIMEOUT_MS);

      expect(startLine(app, 'codeflow listening')).toMatchObject({ host: '127.0.0.1', port });
      expect(await getOnNewConnection(`http://127.0.0.1:${port}/healthz`)).toEqual({
        status: 200,
      });
      for (const address of others) {
        expect(await getOnNewConnection(`http://${address}:${port}/healthz`), address).toEqual({
          error: 'ECONNREFUSED',
        });
      }
    },
    30_000,
  );

  it.skipIf(others.length === 0)(
    'in production with no HOST, answers on every address of the machine (a proxy or a port mapping must reach it)',
    async () => {
      const port = await freePort();
      const app = start({
        ...EXTERNAL_ISSUER,
        PORT: String(port),
        NODE_ENV: 'production',
        SESSION_SECRET: 'a-session-secret-that-is-long-enough-0123456789',
      });
      await waitForStdout(app, 'codeflow listening', START_TIMEOUT_MS);

      expect(startLine(app, 'codeflow listening')).toMatchObject({ host: '::', port });
      for (const address of ['127.0.0.1', ...others]) {
        expect(await getOnNewConnection(`http://${address}:${port}/healthz`), address).toEqual({
          status: 200,
        });
      }
    },
    30_000,
  );

  it.skipIf(others.length === 0)(
    'with the embedded provider and no HOST, the app and the provider answer on loopback only',
    async () => {
      const port = await freePort();
      const providerPort = await freePort();
      const app = start({ PORT: String(port), DEV_PROVIDER_PORT: String(providerPort) });
      await waitForStdout(app, 'codeflow listening', START_TIMEOUT_MS);

      expect(startLine(app, 'embedded development provider started')).toMatchObject({
        host: '127.0.0.1',
        port: providerPort,
      });
      expect(startLine(app, 'codeflow listening')).toMatchObject({ host: '127.0.0.1', port });
      expect(await getOnNewConnection(`http://127.0.0.1:${port}/healthz`)).toEqual({
        status: 200,
      });
      expect(
        await getOnNewConnection(
          `http://127.0.0.1:${providerPort}/.well-known/openid-configuration`,
        ),
      ).toEqual({ status: 200 });
      for (const address of others) {
        for (const url of [
          `http://${address}:${port}/healthz`,
          `http://${address}:${providerPort}/.well-known/openid-configuration`,
        ]) {
          expect(await getOnNewConnection(url), url).toEqual({ error: 'ECONNREFUSED' });
        }
      }
    },
    30_000,
  );
});

describe('a start that cannot happen', () => {
  it('exits 1 with one log line naming the taken port, and no stack trace', async () => {
    const port = await takenPort();
    const app = start({ ...EXTERNAL_ISSUER, PORT: String(port) });
    const { exit, lines, output } = await failedStart(app);

    expect(exit.code).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 60,
      errorCode: 'EADDRINUSE',
      // In development codeflow listens on 127.0.0.1 (HOST's default), and says so.
      msg: `codeflow cannot start: port ${port} on 127.0.0.1 is already in use: stop what listens there, or set another PORT`,
    });
    expect(output).not.toMatch(/^\s+at /m);
  });

  it("exits 1 with one log line naming the embedded provider's taken port, and no stack trace", async () => {
    const providerPort = await takenPort();
    const port = await freePort();
    const app = start({ PORT: String(port), DEV_PROVIDER_PORT: String(providerPort) });
    const { exit, lines, output } = await failedStart(app);

    expect(exit.code).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 60,
      errorCode: 'EADDRINUSE',
      msg: `codeflow cannot start: the embedded provider's port ${providerPort} on 127.0.0.1 is already in use: stop what listens there, or set another DEV_PROVIDER_PORT`,
    });
    expect(output).not.toMatch(/^\s+at /m);
    // The app never got as far as listening.
    expect(await getOnNewConnection(`http://127.0.0.1:${port}/healthz`)).toEqual({
      error: 'ECONNREFUSED',
    });
  });

  it('exits 1 with one log line when HOST is not an address of this machine', async () => {
    // 203.0.113.0/24 is TEST-NET-3 (RFC 5737): never assigned to a real interface.
    const app = start({ ...EXTERNAL_ISSUER, PORT: String(await freePort()), HOST: '203.0.113.7' });
    const { exit, lines, output } = await failedStart(app);

    expect(exit.code).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 60,
      errorCode: 'EADDRNOTAVAIL',
      msg: 'codeflow cannot start: HOST 203.0.113.7 is not an address of this machine',
    });
    expect(output).not.toMatch(/^\s+at /m);
  });
});
