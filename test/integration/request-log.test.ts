import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import supertest from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { startHarness, TEST_SESSION_SECRET, type Harness } from '../helpers/harness.js';
import { LogCapture } from '../helpers/logs.js';

const completed = (logs: LogCapture) => logs.parsed().filter((l) => l.msg === 'request completed');

/**
 * The app at LOG_LEVEL=info, built like the harness builds it (the harness always logs at debug):
 * config, logger, runtime with the embedded provider, and a server on 127.0.0.1.
 */
describe('request log lines at LOG_LEVEL=info', () => {
  const logs = new LogCapture();
  let server: Server;
  let runtime: Runtime;
  beforeAll(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const config = loadConfig({
      APP_BASE_URL: `http://127.0.0.1:${port}`,
      PORT: String(port),
      DEV_PROVIDER_PORT: '0',
      SESSION_SECRET: TEST_SESSION_SECRET,
      LOG_LEVEL: 'info',
    });
    expect(config.logLevel).toBe('info');
    runtime = await createRuntime(config, createLogger(config.logLevel, logs.stream), {
      devProviderListenHost: '127.0.0.1',
    });
    server.on('request', runtime.app);
  });
  afterAll(async () => {
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await runtime?.close();
  });

  it('writes no line for a quick 200', async () => {
    const before = completed(logs).length;
    await supertest(server).get('/healthz').expect(200);
    await supertest(server).get('/').expect(200);
    expect(completed(logs).length).toBe(before);
  });

  it('writes a warn line for a 404, with the correlation id the page shows and no query string', async () => {
    const before = completed(logs).length;
    const res = await supertest(server).get('/nope?code=secret-code&state=s').expect(404);
    const correlationId = /<code id="correlation-id">([^<]+)<\/code>/.exec(res.text)?.[1];
    expect(correlationId).toMatch(/^[0-9a-f-]{36}$/);

    const lines = completed(logs).slice(before);
    expect(lines).toHaveLength(1);
    const line = lines[0] as {
      level: number;
      req: { id: string; method: string; path: string };
      res: { statusCode: number };
    };
    expect(line.level).toBe(40);
    expect(line.req.id).toBe(correlationId);
    expect(line.req.method).toBe('GET');
    expect(line.req.path).toBe('/nope');
    expect(line.res.statusCode).toBe(404);
    expect(logs.text()).not.toContain('secret-code');
  });
});

describe('request log lines at LOG_LEVEL=debug', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('writes a debug line for every request, a quick 200 included', async () => {
    const before = completed(h.logs).length;
    await h.app().get('/healthz').expect(200);
    const lines = completed(h.logs).slice(before) as Array<{
      level: number;
      req: { path: string; id: string };
      res: { statusCode: number };
      responseTime: number;
    }>;
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe(20);
    expect(lines[0]!.req.path).toBe('/healthz');
    expect(lines[0]!.res.statusCode).toBe(200);
    expect(lines[0]!.responseTime).toBeGreaterThanOrEqual(0);
  });
});
