import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type * as client from 'openid-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createMetrics,
  metricsEndpoint,
  timedBackend,
  timedFetch,
  type ProviderEndpoint,
} from '../../src/metrics.js';
import { memoryBackend } from '../../src/session/memory-backend.js';

/** The exposition's lines, so a test can ask for one exactly. */
async function scrape(metrics: ReturnType<typeof createMetrics>): Promise<string[]> {
  return (await metrics.registry.metrics()).split('\n');
}

describe('createMetrics', () => {
  it('counts each sign-in failure under its reason', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.signIn('failure', 'state_mismatch');
    metrics.signIn('failure', 'state_mismatch');
    metrics.signIn('success', 'ok');
    const lines = await scrape(metrics);
    expect(lines).toContain('codeflow_sign_ins_total{outcome="failure",reason="state_mismatch"} 2');
    expect(lines).toContain('codeflow_sign_ins_total{outcome="success",reason="ok"} 1');
  });

  it('shows every known label set at zero before anything happened', async () => {
    const lines = await scrape(createMetrics({ defaultMetrics: false }));
    expect(lines).toEqual(
      expect.arrayContaining([
        'codeflow_sign_ins_total{outcome="success",reason="ok"} 0',
        ...['refreshed', 'joined', 'raced', 'invalid_grant', 'provider_unavailable', 'failed'].map(
          (outcome) => `codeflow_refreshes_total{outcome="${outcome}"} 0`,
        ),
        ...[
          'user',
          'other_session',
          'back_channel',
          'expired',
          'refresh_rejected',
          'other_account',
          'tokens_missing',
        ].map((kind) => `codeflow_sign_outs_total{kind="${kind}"} 0`),
        ...['accepted', 'rejected', 'unavailable'].map(
          (outcome) => `codeflow_backchannel_logouts_total{outcome="${outcome}"} 0`,
        ),
        'codeflow_token_revocations_total{outcome="revoked"} 0',
      ]),
    );
  });

  it('adds several sign-outs at once, and ignores a count below one rather than throw', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.signOut('other_session', 3);
    metrics.signOut('other_session', 0);
    metrics.signOut('other_session', -1);
    metrics.signOut('user');
    metrics.refresh('joined');
    metrics.backchannelLogout('rejected');
    const lines = await scrape(metrics);
    expect(lines).toContain('codeflow_sign_outs_total{kind="other_session"} 3');
    expect(lines).toContain('codeflow_sign_outs_total{kind="user"} 1');
    expect(lines).toContain('codeflow_refreshes_total{outcome="joined"} 1');
    expect(lines).toContain('codeflow_backchannel_logouts_total{outcome="rejected"} 1');
  });

  it("reads the revoker's totals on every scrape, as a counter", async () => {
    const totals = { revoked: 4, failedAttempts: 2, gaveUp: 1, unsupported: 3 };
    const metrics = createMetrics({ defaultMetrics: false, revocations: () => totals });
    let lines = await scrape(metrics);
    expect(lines).toContain('# TYPE codeflow_token_revocations_total counter');
    expect(lines).toContain('codeflow_token_revocations_total{outcome="revoked"} 4');
    expect(lines).toContain('codeflow_token_revocations_total{outcome="failed_attempt"} 2');
    expect(lines).toContain('codeflow_token_revocations_total{outcome="gave_up"} 1');
    expect(lines).toContain('codeflow_token_revocations_total{outcome="unsupported"} 3');

    totals.revoked = 9;
    lines = await scrape(metrics);
    expect(lines).toContain('codeflow_token_revocations_total{outcome="revoked"} 9');
  });

  it('reports active sessions when the store can tell, and no sample when it cannot', async () => {
    let active: number | undefined = 7;
    const metrics = createMetrics({ defaultMetrics: false, sessionsActive: () => active });
    expect(await scrape(metrics)).toContain('codeflow_sessions_active 7');
    active = undefined;
    const lines = await scrape(metrics);
    expect(lines).toContain('# TYPE codeflow_sessions_active gauge');
    expect(lines.filter((line) => line.startsWith('codeflow_sessions_active'))).toEqual([]);
    expect(
      (await createMetrics({ defaultMetrics: false }).registry.metrics()).includes(
        'sessions_active',
      ),
    ).toBe(false);
  });

  it('keeps each registry apart and adds process metrics unless told not to', async () => {
    const a = createMetrics();
    const b = createMetrics({ defaultMetrics: false });
    a.signIn('failure', 'csrf');
    expect(await a.registry.metrics()).toMatch(/^process_cpu_user_seconds_total /m);
    expect(await a.registry.metrics()).toMatch(/^nodejs_/m);
    expect(await b.registry.metrics()).not.toMatch(/^process_|^nodejs_/m);
    expect(await b.registry.metrics()).not.toContain('reason="csrf"');
  });
});

describe('timedFetch', () => {
  let server: Server;
  let origin: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      res.statusCode = req.url === '/broken' ? 500 : 200;
      res.end('answer');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const classify = (url: string): ProviderEndpoint =>
    new URL(url).pathname === '/token' ? 'token' : 'other';

  it('times a call under the endpoint its URL names, with outcome ok for any HTTP answer', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const timed = timedFetch(fetch, classify, metrics);
    const response = await timed(`${origin}/token`, { method: 'POST' });
    expect(await response.text()).toBe('answer');
    expect((await timed(new URL(`${origin}/broken`))).status).toBe(500);
    const lines = await scrape(metrics);
    expect(lines).toContain(
      'codeflow_provider_request_duration_seconds_count{endpoint="token",outcome="ok"} 1',
    );
    expect(lines).toContain(
      'codeflow_provider_request_duration_seconds_count{endpoint="other",outcome="ok"} 1',
    );
  });

  it("fits openid-client's customFetch and passes its options through", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const customFetch: client.CustomFetch = timedFetch<client.CustomFetch>(
      fetch,
      classify,
      metrics,
    );
    const response = await customFetch(`${origin}/token`, {
      body: 'grant_type=refresh_token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      method: 'POST',
      redirect: 'manual',
    });
    expect(response.status).toBe(200);
    expect(await scrape(metrics)).toContain(
      'codeflow_provider_request_duration_seconds_count{endpoint="token",outcome="ok"} 1',
    );
  });

  it('counts a refused connection as an error and still rejects', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const metrics = createMetrics({ defaultMetrics: false });
    const timed = timedFetch(fetch, classify, metrics);
    await expect(timed(`http://127.0.0.1:${port}/token`)).rejects.toThrow();
    const lines = await scrape(metrics);
    expect(lines).toContain(
      'codeflow_provider_request_duration_seconds_count{endpoint="token",outcome="error"} 1',
    );
    expect(lines.some((line) => line.includes('outcome="ok"'))).toBe(false);
  });
});

describe('timedBackend', () => {
  it('times each store call under its path and keeps everything else the backend has', async () => {
    const backend = memoryBackend();
    const metrics = createMetrics({ defaultMetrics: false });
    const timed = timedBackend(backend, metrics);
    try {
      await timed.setSession('sid', '{"a":1}', 60_000);
      expect(await timed.getSession('sid')).toBe('{"a":1}');
      expect(await timed.tokens.read('sid')).toBeUndefined();
      const release = await timed.lock.acquire('sid');
      expect(typeof release).toBe('function');
      expect(timed.kind).toBe('memory');
      expect(timed.bytesStored()).toBe(backend.bytesStored());
      expect(timed.bytesStored()).toBeGreaterThan(0);

      const lines = await scrape(metrics);
      for (const operation of ['getSession', 'setSession', 'tokens.read', 'lock.acquire']) {
        expect(lines).toContain(
          `codeflow_store_request_duration_seconds_count{operation="${operation}",outcome="ok"} 1`,
        );
      }
      expect(lines.some((line) => line.includes('operation="bytesStored"'))).toBe(false);
    } finally {
      await timed.close();
    }
    // Closing is no store request.
    expect((await metrics.registry.metrics()).includes('operation="close"')).toBe(false);
  });

  it('counts a failed call as an error and passes the rejection on', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const failure = new Error('store down');
    const timed = timedBackend(
      {
        kind: 'redis' as const,
        index: {
          list(this: { prefix: string }, person: string) {
            return this.prefix === 'p:' ? Promise.reject(failure) : Promise.resolve([person]);
          },
          prefix: 'p:',
        },
      },
      metrics,
    );
    await expect(timed.index.list('alice')).rejects.toBe(failure);
    expect(await scrape(metrics)).toContain(
      'codeflow_store_request_duration_seconds_count{operation="index.list",outcome="error"} 1',
    );
  });
});

describe('metricsEndpoint', () => {
  const token = 't'.repeat(32);
  function appWith(options: { token?: string; isProduction: boolean }) {
    const metrics = createMetrics({ defaultMetrics: false });
    const app = express();
    app.get('/metrics', metricsEndpoint({ metrics, ...options }));
    return app;
  }

  it('with a token, refuses a request without one, naming the scheme', async () => {
    const res = await request(appWith({ token, isProduction: true })).get('/metrics');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="metrics"');
    expect(res.body).toEqual({ error: 'unauthorized' });
  });

  it.each([
    ['a wrong token', `Bearer ${'x'.repeat(32)}`],
    ['a prefix of the token', `Bearer ${token.slice(1)}`],
    ['the token under another scheme', `Basic ${token}`],
  ])('with a token, refuses %s', async (_name, authorization) => {
    const res = await request(appWith({ token, isProduction: false }))
      .get('/metrics')
      .set('Authorization', authorization);
    expect(res.status).toBe(401);
  });

  it('with a token, answers the right one with the exposition, never cached', async () => {
    const res = await request(appWith({ token, isProduction: true }))
      .get('/metrics')
      .set('Authorization', `Bearer ${token}`)
      // A token holder may sit behind a proxy: the token is enough.
      .set('X-Forwarded-For', '1.2.3.4');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).toContain('codeflow_sign_ins_total');
    expect(res.text).toContain('codeflow_provider_request_duration_seconds');
  });

  it('in production without a token, answers loopback only when no proxy forwarded it', async () => {
    const app = appWith({ isProduction: true });
    expect((await request(app).get('/metrics')).status).toBe(200);
    for (const [name, value] of [
      ['X-Forwarded-For', '1.2.3.4'],
      ['Forwarded', 'for=1.2.3.4'],
    ] as const) {
      const res = await request(app).get('/metrics').set(name, value);
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ error: 'forbidden' });
    }
  });

  it('outside production without a token, is open', async () => {
    const res = await request(appWith({ isProduction: false }))
      .get('/metrics')
      .set('X-Forwarded-For', '1.2.3.4');
    expect(res.status).toBe(200);
  });

  it('answers 503 when collecting fails', async () => {
    const metrics = createMetrics({
      defaultMetrics: false,
      sessionsActive: () => {
        throw new Error('store down');
      },
    });
    const app = express();
    app.get('/metrics', metricsEndpoint({ metrics, isProduction: false }));
    const res = await request(app).get('/metrics');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: 'metrics_unavailable' });
  });
});
