import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { signIn } from '../helpers/sign-in.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

function csp(header: string): Map<string, string> {
  return new Map(
    header.split(';').map((d) => {
      const [name, ...values] = d.trim().split(/\s+/);
      return [name!, values.join(' ')];
    }),
  );
}

describe('headers on every page', () => {
  it.each(['/', '/dashboard', '/nope', '/callback?state=x'])(
    '%s has a strict CSP and the hardening headers',
    async (path) => {
      const res = await h.app().get(path);
      const policy = csp(res.headers['content-security-policy'] as string);
      expect(policy.get('default-src')).toBe("'self'");
      expect(policy.get('script-src')).toBe("'self'");
      expect(policy.get('style-src')).toBe("'self'");
      expect(policy.get('frame-ancestors')).toBe("'none'");
      expect(policy.get('base-uri')).toBe("'none'");
      expect(policy.get('object-src')).toBe("'none'");
      expect(policy.get('form-action')).toBe(`'self' ${h.runtime.devProvider!.issuer.origin}`);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-powered-by']).toBeUndefined();
    },
  );

  it('sets no cookie for anonymous pages, and a HttpOnly, SameSite=Lax session cookie on /login', async () => {
    for (const path of ['/', '/healthz', '/static/style.css', '/nope']) {
      expect((await h.app().get(path)).headers['set-cookie'], path).toBeUndefined();
    }
    const login = await h.app().get('/login').expect(302);
    const cookie = String(login.headers['set-cookie']);
    expect(cookie).toMatch(
      /^codeflow\.sid=s%3A[^;]+; Path=\/; Expires=[^;]+; HttpOnly; SameSite=Lax$/,
    );
  });

  it('serves a favicon, and sends /favicon.ico there instead of logging a 404 for every first visit', async () => {
    const ico = await h.app().get('/favicon.ico').expect(301);
    expect(ico.headers.location).toBe('/static/favicon.svg');
    expect(ico.headers['set-cookie']).toBeUndefined();
    const svg = await h.app().get('/static/favicon.svg').expect(200);
    expect(svg.headers['content-type']).toMatch(/^image\/svg\+xml/);
    const home = await h.app().get('/').expect(200);
    expect(home.text).toContain('<link rel="icon" href="/static/favicon.svg"');
    const warned = h.logs
      .parsed()
      .filter((l) => (l.req as { path?: string } | undefined)?.path === '/favicon.ico');
    expect(warned.length).toBeGreaterThan(0);
    expect(warned.every((l) => (l.level as number) < 40)).toBe(true);
  });

  it('answers 404 with a page, and 413 for an oversized form, never 500', async () => {
    const notFound = await h.app().get('/nope').expect(404);
    expect(notFound.text).toContain('Page not found');
    const app = h.app();
    await signIn(h, app);
    await app
      .post('/logout')
      .type('form')
      .send({ _csrf: 'x'.repeat(10_000) })
      .expect(413);
    await app.get('/me').set('Accept', 'application/json').expect(200);
  });

  it('renders provider-supplied text escaped', async () => {
    const res = await h.app().get('/callback?state=<script>alert(1)</script>').expect(400);
    expect(res.text).not.toContain('<script>alert');
  });
});

describe('health', () => {
  it('is alive and ready, with the provider state in the body', async () => {
    await h.app().get('/healthz').expect(200, { status: 'ok' });
    const ready = await h.app().get('/readyz').expect(200);
    expect(ready.body).toMatchObject({ status: 'ready', sessionStore: 'ok' });
    expect(['ready', 'pending']).toContain(ready.body.provider);
  });
});

describe('behind an https proxy', () => {
  let secure: Harness;
  beforeAll(async () => {
    secure = await startHarness({ APP_BASE_URL: 'https://127.0.0.1:8443', TRUST_PROXY: '1' });
  });
  afterAll(async () => {
    await secure?.close();
  });

  it('uses a __Host- prefixed Secure cookie and the configured redirect URI whatever Host says', async () => {
    const res = await secure
      .app()
      .get('/login')
      .set('X-Forwarded-Proto', 'https')
      .set('Host', 'evil.example')
      .set('X-Forwarded-Host', 'evil.example')
      .expect(302);
    expect(String(res.headers['set-cookie'])).toMatch(
      /^__Host-codeflow\.sid=s%3A[^;]+; Path=\/; Expires=[^;]+; HttpOnly; Secure; SameSite=Lax$/,
    );
    const url = new URL(res.headers.location as string);
    expect(url.searchParams.get('redirect_uri')).toBe('https://127.0.0.1:8443/callback');
    expect(res.headers['strict-transport-security']).toMatch(/max-age=\d{8}; includeSubDomains/);
  });
});

describe('when the provider is unreachable', () => {
  let down: Harness;
  beforeAll(async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    down = await startHarness({
      OIDC_ISSUER: `http://127.0.0.1:${port}`,
      OIDC_CLIENT_ID: 'codeflow',
      OIDC_CLIENT_SECRET: 'secret',
    });
  });
  afterAll(async () => {
    await down?.close();
  });

  it('answers /login with a 503 page and Retry-After, and keeps serving everything else', async () => {
    const res = await down.app().get('/login').expect(503);
    expect(res.text).toContain('The sign-in provider refused the connection');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    await down.app().get('/').expect(200);
    await down.app().get('/healthz').expect(200);
    const ready = await down.app().get('/readyz').expect(200);
    expect(ready.body.provider).toBe('unreachable');
    // Backoff: the next attempt within the window fails fast, without a new connection.
    await down.app().get('/login').set('Accept', 'application/json').expect(503);
  });
});
