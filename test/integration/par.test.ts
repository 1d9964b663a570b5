import { afterAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { signIn } from '../helpers/sign-in.js';

/**
 * Pushed authorization requests (RFC 9126, OIDC_PAR): against the embedded oidc-provider
 * configured to require them, the authorization request goes to the provider over the back
 * channel, authenticated, and the browser's URL carries only client_id and request_uri.
 */

const open: Harness[] = [];
afterAll(async () => {
  for (const h of open) await h.close();
});
async function harness(env: Record<string, string>, par: 'off' | 'on' | 'required') {
  const h = await startHarness(env, { devProviderPar: par });
  open.push(h);
  return h;
}

describe('OIDC_PAR', () => {
  it('auto, against a provider that requires PAR: pushed, authenticated, and the URL holds none of it', async () => {
    const h = await harness({}, 'required');
    const app = h.app();
    const { authorizationUrl, response } = await signIn(h, app);
    expect(response.status).toBe(302);
    await app.get('/dashboard').expect(200);

    expect([...authorizationUrl.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    for (const name of ['redirect_uri', 'scope', 'state', 'nonce', 'code_challenge']) {
      expect(authorizationUrl.href).not.toContain(`${name}=`);
    }
    const pushed = h.providerRequests.filter((r) => r.route === 'pushed_authorization_request');
    expect(pushed).toHaveLength(1);
    expect(pushed[0]!.status).toBe(201);
    expect(pushed[0]!.authorization).toMatch(/^Basic /);
    expect(pushed[0]!.params).toMatchObject({
      redirect_uri: `${h.baseUrl}/callback`,
      scope: 'openid profile email offline_access',
      code_challenge_method: 'S256',
    });
    expect(String(pushed[0]!.params.state)).toMatch(/.{20,}/);
    expect(String(pushed[0]!.params.code_challenge)).toMatch(/.{40,}/);
    // The panel says so.
    const flow = (await app.get('/dashboard/flow').expect(200)).text;
    expect(flow).toContain('pushed (PAR)');
  });

  it('off, against a provider that requires it: the provider check fails, naming OIDC_PAR', async () => {
    const h = await harness({ OIDC_PAR: 'off' }, 'required');
    const login = await h.app().get('/login').expect(302);
    expect(new URL(login.headers.location as string).searchParams.get('state')).toMatch(/.{20,}/);
    const ready = (await h.app().get('/readyz')).body;
    expect(ready.providerCheck.verdict).toBe('fail');
    expect(ready.providerCheck.gaps).toContain(
      'PAR: the provider requires pushed authorization requests, and OIDC_PAR=off',
    );
  });

  it('on, against a provider that does not offer it: the provider check fails', async () => {
    const h = await harness({ OIDC_PAR: 'on' }, 'off');
    await h.app().get('/readyz');
    await h.app().get('/login'); // discovers
    const ready = (await h.app().get('/readyz')).body;
    expect(ready.providerCheck.gaps).toContain(
      'PAR: OIDC_PAR=on, but the provider has no pushed authorization request endpoint',
    );
  });

  it('auto, against a provider that only offers it: pushed too', async () => {
    const h = await harness({}, 'on');
    const { authorizationUrl, response } = await signIn(h, h.app());
    expect(response.status).toBe(302);
    expect(authorizationUrl.searchParams.has('request_uri')).toBe(true);
    expect(authorizationUrl.searchParams.has('state')).toBe(false);
  });
});
