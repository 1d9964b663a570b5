import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionIdOf, startHarness, type Harness } from '../helpers/harness.js';
import { signIn } from '../helpers/sign-in.js';

/**
 * GET /metrics after a scripted run: each thing done once moves its counter by exactly one, and
 * nothing else moves; the exposition holds no token and no cookie; METRICS_TOKEN guards it.
 */

/** The Prometheus text exposition as `name{labels}` -> value; comments (# HELP, # TYPE) skipped. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    // `name{a="x",b="y"} 1.5` or `name 1.5`; prom-client writes no timestamps.
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

/** Every series whose name starts with `prefix` and whose value changed, with the change. */
function moved(
  before: Map<string, number>,
  after: Map<string, number>,
  prefix: string,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [series, value] of after) {
    const delta = value - (before.get(series) ?? 0);
    if (series.startsWith(prefix) && delta !== 0) out[series] = delta;
  }
  return out;
}

const csrfTokenOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];

describe('/metrics after a scripted run', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  const scrape = async () => {
    const res = await h.app().get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers['cache-control']).toBe('no-store');
    return res.text;
  };

  it('moves each counter by exactly what was done: a sign-in, a failed callback, a refresh, a sign-out', async () => {
    const before = parseExposition(await scrape());
    // Counters that start at zero are there from the first scrape.
    expect(before.get('codeflow_sign_ins_total{outcome="success",reason="ok"}')).toBe(0);
    expect(before.get('codeflow_refreshes_total{outcome="refreshed"}')).toBe(0);
    expect(before.get('codeflow_sign_outs_total{kind="user"}')).toBe(0);
    expect(before.get('codeflow_sessions_active')).toBe(0);

    // One successful sign-in.
    const app = h.app();
    const { response, callbackUrl } = await signIn(h, app);
    expect(response.status).toBe(302);
    const dashboard = await app.get('/dashboard').expect(200);
    const cookie = dashboard.request.cookies;
    const csrf = csrfTokenOf(dashboard.text)!;
    expect(csrf).toBeTruthy();
    const signedIn = parseExposition(await scrape());
    expect(signedIn.get('codeflow_sessions_active')).toBe(1);

    // One failed callback: a browser with no pending sign-in comes back with an unknown state.
    const failed = await h
      .app()
      .get('/callback?code=x&state=unknown')
      .set('Accept', 'application/json')
      .expect(400);
    expect(failed.body.error).toBe('transaction_not_found');

    // One "Refresh now".
    await app.post('/refresh').type('form').send({ _csrf: csrf }).expect(303);
    expect((await app.get('/dashboard').expect(200)).text).toContain('Alice Liddell');

    // One sign-out; its refresh token is revoked in the background.
    await app.post('/logout').type('form').send({ _csrf: csrf }).expect(200);
    await app.get('/dashboard').expect(302);
    await h.runtime.revoker.settle(10_000);
    expect(h.runtime.revoker.stats().pending).toBe(0);

    const text = await scrape();
    const after = parseExposition(text);
    expect(movedCounters(before, after)).toEqual({
      'codeflow_sign_ins_total{outcome="success",reason="ok"}': 1,
      'codeflow_sign_ins_total{outcome="failure",reason="transaction_not_found"}': 1,
      'codeflow_refreshes_total{outcome="refreshed"}': 1,
      'codeflow_sign_outs_total{kind="user"}': 1,
      'codeflow_token_revocations_total{outcome="revoked"}': 1,
    });
    // The token endpoint was called twice (the code, then the refresh), each answered; the
    // revocation endpoint once.
    const providerCalls = moved(before, after, 'codeflow_provider_request_duration_seconds_count');
    expect(
      providerCalls[
        'codeflow_provider_request_duration_seconds_count{endpoint="token",outcome="ok"}'
      ],
    ).toBe(2);
    expect(
      providerCalls[
        'codeflow_provider_request_duration_seconds_count{endpoint="revocation",outcome="ok"}'
      ],
    ).toBe(1);
    expect(Object.keys(providerCalls).filter((s) => s.includes('outcome="error"'))).toEqual([]);
    // What the provider saw agrees.
    expect(
      h.providerRequests.filter((r) => r.route === 'token').map((r) => r.params.grant_type),
    ).toEqual(['authorization_code', 'refresh_token']);
    expect(after.get('codeflow_sessions_active')).toBe(0);
    // Store calls were timed too.
    expect(
      Object.keys(moved(before, after, 'codeflow_store_request_duration_seconds_count')).length,
    ).toBeGreaterThan(0);

    // No line of the exposition holds a token the provider issued, the code, the CSRF token, the
    // session cookie or the session id.
    const issued = h.providerRequests
      .filter((r) => r.route === 'token')
      .flatMap((r) => {
        const body = r.body as Record<string, unknown>;
        return [body.access_token, body.refresh_token, body.id_token];
      })
      .filter((v): v is string => typeof v === 'string');
    expect(issued.length).toBe(6);
    const secrets = [
      ...issued,
      callbackUrl.searchParams.get('code')!,
      csrf,
      decodeURIComponent(cookie.replace(/^codeflow\.sid=/, '')),
      cookie.replace(/^codeflow\.sid=/, ''),
      sessionIdOf(cookie),
    ];
    for (const line of text.split('\n')) {
      for (const secret of secrets) expect(line.includes(secret)).toBe(false);
    }
  });
});

/** The codeflow counters (`*_total`) that moved, with how much. */
function movedCounters(before: Map<string, number>, after: Map<string, number>) {
  const all = moved(before, after, 'codeflow_');
  return Object.fromEntries(
    Object.entries(all).filter(([s]) => /^codeflow_\w+_total[{ ]/.test(`${s} `)),
  );
}

describe('/metrics with METRICS_TOKEN set', () => {
  const token = `metrics-${randomBytes(16).toString('hex')}`;
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ METRICS_TOKEN: token });
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each([
    ['no Authorization header', undefined],
    ['a wrong bearer token', `Bearer ${randomBytes(16).toString('hex')}`],
    ['the token one character short', `Bearer ${token.slice(0, -1)}`],
    ['the token under another scheme', `Basic ${token}`],
    ['the token without a scheme', token],
  ])('refuses a scrape with %s: 401, no metrics', async (_case, authorization) => {
    const req = h.app().get('/metrics');
    if (authorization !== undefined) req.set('Authorization', authorization);
    const res = await req.expect(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(res.body).toEqual({ error: 'unauthorized' });
    expect(res.text).not.toContain('codeflow_');
  });

  it('serves the metrics to the right bearer token, and never logs the token', async () => {
    const res = await h.app().get('/metrics').set('Authorization', `Bearer ${token}`).expect(200);
    expect(res.text).toContain('codeflow_sign_ins_total{outcome="success",reason="ok"} 0');
    // prom-client's default process metrics are there in the runtime's registry.
    expect(res.text).toMatch(/^process_cpu_seconds_total /m);
    expect(h.logs.lines.length).toBeGreaterThan(0);
    expect(h.logs.text()).not.toContain(token);
    expect(h.logs.text()).not.toContain(token.slice(8));
  });
});
