import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { signIn } from '../helpers/sign-in.js';

/**
 * The real embedded provider rotates refresh tokens on every use and revokes the whole grant when
 * a spent one comes back, like Okta, Auth0 and Entra: any double spend here would end the session.
 */
let h: Harness;
beforeAll(async () => {
  // 4 s: long enough that a storm of 50 dashboards finishes within one token's life on a busy
  // two-core machine (with 2 s, a slow storm legitimately needed a second refresh).
  h = await startHarness({ DEV_ACCESS_TOKEN_TTL: '4', REFRESH_SKEW_SECONDS: '0' });
});
afterAll(async () => {
  await h?.close();
});

const refreshGrants = () =>
  h.providerRequests.filter((r) => r.route === 'token' && r.params.grant_type === 'refresh_token');
const waitForExpiry = () => sleep(4200);

async function signedIn() {
  const app = h.app();
  await signIn(h, app);
  return app;
}

describe('refresh against a rotating provider', () => {
  it('keeps the dashboard working across several access-token lifetimes, one refresh per expiry', async () => {
    const app = await signedIn();
    const before = refreshGrants().length;
    await app.get('/dashboard').expect(200);
    expect(refreshGrants().length).toBe(before);
    for (let lifetime = 1; lifetime <= 2; lifetime++) {
      await waitForExpiry();
      const page = await app.get('/dashboard').expect(200);
      expect(page.text).toMatch(/answered <span class="status ok">200<\/span>/);
      expect(page.text).toContain(
        `<dd id="refresh-count">${lifetime} <span class="muted">(last at`,
      );
      await app.get('/dashboard').expect(200); // still fresh: no second refresh
      expect(refreshGrants().length).toBe(before + lifetime);
    }
    // Each refresh sent the refresh token the previous one issued (rotation kept).
    const [first, second] = refreshGrants().slice(before);
    expect(second!.params.refresh_token).toBe(
      (first!.body as { refresh_token: string }).refresh_token,
    );
    expect(second!.status).toBe(200);
  });

  it('serves 50 concurrent dashboard requests on one expired session with exactly one refresh', async () => {
    const app = await signedIn();
    await app.get('/dashboard').expect(200); // the page once, as a person would see it first
    await waitForExpiry();
    const before = refreshGrants().length;
    const tokenErrorsBefore = h.providerRequests.filter(
      (r) => r.route === 'token' && r.status !== 200,
    ).length;

    const pages = await Promise.all(Array.from({ length: 50 }, () => app.get('/dashboard')));

    expect(pages.map((p) => p.status)).toEqual(Array(50).fill(200));
    for (const page of pages)
      expect(page.text).toMatch(/answered <span class="status ok">200<\/span>/);
    expect(refreshGrants().length - before).toBe(1);
    // No refresh token was spent twice: the provider's reuse detection never fired.
    expect(h.providerRequests.filter((r) => r.route === 'token' && r.status !== 200).length).toBe(
      tokenErrorsBefore,
    );
    // And the session still works afterwards, with the rotated token kept.
    await app.get('/dashboard').expect(200);
    await waitForExpiry();
    await app.get('/dashboard').expect(200);
    expect(refreshGrants().length - before).toBe(2);
    expect(refreshGrants().at(-1)!.status).toBe(200);
  });

  it('refreshes on "Refresh now" (CSRF-checked) and shows the count', async () => {
    const app = await signedIn();
    const atSignIn = refreshGrants().length;
    const page = await app.get('/dashboard').expect(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1];
    await app.post('/refresh').type('form').send({}).expect(403);
    const before = refreshGrants().length;
    const res = await app.post('/refresh').type('form').send({ _csrf: csrf }).expect(303);
    expect(res.headers.location).toBe('/dashboard');
    expect(refreshGrants().length).toBe(before + 1);
    const after = await app.get('/dashboard').expect(200);
    // Tokens live 4 s here, so a slow machine may refresh once more on its own: count them all.
    const made = refreshGrants().length - atSignIn;
    expect(made).toBeGreaterThanOrEqual(1);
    expect(after.text).toContain(`<dd id="refresh-count">${made} <span class="muted">(last at`);
    // Observed, not promised: this provider rotates, and the page says so.
    expect(after.text).toContain('the provider sent a new refresh token');
  });
});
