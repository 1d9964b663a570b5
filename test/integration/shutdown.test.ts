import { once } from 'node:events';
import { Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import supertest from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../helpers/mock-provider.js';
import {
  SESSION_SECRET,
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
 * The real process (src/server.ts) as a container orchestrator runs it: started with its
 * environment, stopped with SIGTERM. Everything else in the suite builds the app in-process and
 * never sees server.ts, its signal handlers or its exit code.
 */

interface RunningApp extends ServerProcess {
  port: number;
  baseUrl: string;
  mock: MockProvider;
}

const started: RunningApp[] = [];
const agents: Agent[] = [];
const sockets: Socket[] = [];

afterAll(async () => {
  for (const app of started) {
    // Still running after a failed test: stop it by its PID, hard.
    await app.kill();
    await app.mock.close();
  }
  for (const agent of agents) agent.destroy();
  for (const socket of sockets) socket.destroy();
});

async function startApp(): Promise<RunningApp> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const mock = await startMockProvider({
    redirectUri: `${baseUrl}/callback`,
    postLogoutRedirectUri: `${baseUrl}/`,
  });
  const app: RunningApp = {
    ...spawnServer({
      PORT: String(port),
      APP_BASE_URL: baseUrl,
      OIDC_ISSUER: mock.issuer,
      OIDC_CLIENT_ID: mock.clientId,
      OIDC_CLIENT_SECRET: mock.clientSecret,
      API_URL: mock.apiUrl,
      LOG_LEVEL: 'info',
    }),
    port,
    baseUrl,
    mock,
  };
  started.push(app);
  await waitForStdout(app, 'codeflow listening', START_TIMEOUT_MS);
  return app;
}

/**
 * A keep-alive connection pool like a browser's or a load balancer's: it holds idle connections
 * open long after a response. (supertest opens a fresh, non-keep-alive connection per request by
 * default, and Node's global agent drops idle sockets after 5 s: either would hide a server that
 * waits for its clients to hang up.)
 */
function keepAliveAgent(): Agent {
  const agent = new Agent({ keepAlive: true });
  agents.push(agent);
  return agent;
}

/** Polls (bounded) until `condition` holds. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('graceful shutdown of the real process', () => {
  it('on SIGTERM mid-request, finishes the request, refuses new connections and exits 0 without leaking a secret', async () => {
    const app = await startApp();
    const browser = supertest.agent(app.baseUrl);

    // Sign in over real HTTP: /login, the mock's authorize endpoint (answers at once), /callback.
    const login = await browser.get('/login').expect(302);
    const authorize = await fetch(login.headers.location as string, { redirect: 'manual' });
    const back = new URL(authorize.headers.get('location')!);
    await browser
      .get(back.pathname + back.search)
      .expect(302)
      .expect('Location', '/dashboard');
    const cookie = /codeflow\.sid=([^;]+)/.exec(String(login.headers['set-cookie']))![1]!;

    // A dashboard view that waits 1.5 s on the API, sent the way a browser would (keep-alive).
    app.mock.behaviour.api = [{ status: 200, delayMs: 1500, body: { slowAnswer: 'arrived' } }];
    const apiCalls = () => app.mock.requests.filter((r) => r.path === '/api/resource').length;
    const dashboard = browser
      .get('/dashboard')
      .agent(keepAliveAgent())
      .then((res) => res);
    // Awaited below; should the test fail before that, its rejection must not go unhandled.
    dashboard.catch(() => undefined);
    // SIGTERM only once the request is surely inside the app, waiting on the API.
    await until(() => apiCalls() === 1, 10_000, 'the dashboard to call the API');
    const sigtermAt = Date.now();
    process.kill(app.pid, 'SIGTERM');
    await waitForStdout(app, 'shutting down', 5_000);

    // A new connection must not be served. Closing the listener refuses it: ECONNREFUSED, or
    // ECONNRESET when the kernel had already queued it (the log line can beat server.close() by a
    // few microseconds). Were the listener still accepting, /readyz would have to answer 503 so a
    // load balancer stops sending traffic. Any other answer means the process still takes work.
    const late = await getOnNewConnection(`${app.baseUrl}/readyz`);
    const refused = late.error === 'ECONNREFUSED' || late.error === 'ECONNRESET';
    expect(refused || late.status === 503, JSON.stringify(late)).toBe(true);

    const page = await dashboard;
    expect(page.status).toBe(200);
    expect(page.text).toContain('arrived');
    // The server hangs up after the last response instead of keeping a socket it is about to lose.
    expect(page.headers.connection).toBe('close');

    const exit = await within(app.exited, 10_000 - (Date.now() - sigtermAt), 'exit after SIGTERM');
    expect(exit).toMatchObject({ code: 0, signal: null });
    const messages = logLines(app).map((l) => l.msg);
    expect(messages).toContain('shut down');
    // Nothing had to be cut when the grace period ran out: the drain finished by itself.
    expect(messages).not.toContain('shutdown grace period over: closing remaining connections');

    const { accessTokens, refreshTokens, idTokens, codes } = app.mock.issued;
    expect([accessTokens, refreshTokens, idTokens, codes].map((list) => list.length)).toEqual([
      1, 1, 1, 1,
    ]);
    const secrets = [
      ...accessTokens,
      ...refreshTokens,
      ...idTokens,
      ...codes,
      app.mock.clientSecret,
      SESSION_SECRET,
      decodeURIComponent(cookie),
    ];
    const output = app.stdout() + app.stderr();
    for (const secret of secrets) expect(output.includes(secret), secret).toBe(false);
  }, 60_000);

  it('on SIGTERM while a request is still arriving on an open connection, answers it with Connection: close and exits 0', async () => {
    const app = await startApp();
    // A raw keep-alive connection, so the request can be cut in two around the signal.
    const socket = connect(app.port, '127.0.0.1');
    sockets.push(socket);
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    // A reset shows as a missing answer below, not as an unhandled 'error' event.
    socket.on('error', () => undefined);
    const closed = once(socket, 'close');
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await until(() => received.includes('{"status":"ok"}'), 5_000, 'the first answer');
    const before = received.length;
    // Half a request: the server has started reading it, so it is not an idle connection.
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    await new Promise((r) => setTimeout(r, 500));

    const sigtermAt = Date.now();
    process.kill(app.pid, 'SIGTERM');
    await waitForStdout(app, 'shutting down', 5_000);
    socket.write('\r\n');
    await within(closed, 10_000, 'the server to close the connection');

    const second = received.slice(before);
    expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(second).toMatch(/\r\nConnection: close\r\n/i);
    const exit = await within(app.exited, 10_000 - (Date.now() - sigtermAt), 'exit after SIGTERM');
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(logLines(app).map((l) => l.msg)).not.toContain(
      'shutdown grace period over: closing remaining connections',
    );
  }, 45_000);

  it('on SIGTERM with only an idle keep-alive connection open, exits 0 within 5 s', async () => {
    const app = await startApp();
    // An idle pooled connection, as a load balancer keeps: it must not hold the exit back.
    const agent = keepAliveAgent();
    const health = await supertest(app.baseUrl).get('/healthz').agent(agent).expect(200);
    expect(health.headers.connection).toBe('keep-alive');

    const sigtermAt = Date.now();
    process.kill(app.pid, 'SIGTERM');
    const exit = await within(app.exited, 5_000, 'exit after SIGTERM');
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - sigtermAt).toBeLessThan(5_000);
    expect(logLines(app).map((l) => l.msg)).toContain('shut down');
  }, 45_000);
});
