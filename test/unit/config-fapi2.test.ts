import { describe, expect, it } from 'vitest';
import { FAPI2_ALGORITHMS, loadConfig } from '../../src/config.js';
import { configProblems } from '../helpers/config-problems.js';

/**
 * loadConfig's high-assurance rules: OIDC_PROFILE=fapi2 decides the defaults of PAR, DPoP, client
 * authentication and the ID-token algorithm, and refuses a setting that contradicts it; the
 * embedded provider's profile and codeflow's follow each other; DPoP's default follows the provider.
 */

/** Read by runtime.ts at start, never by loadConfig: a relative name is enough here. */
const KEY = { OIDC_CLIENT_PRIVATE_KEY_FILE: 'keys/client.pem' };
const external = {
  OIDC_ISSUER: 'https://login.example.com',
  OIDC_CLIENT_ID: 'codeflow',
  APP_BASE_URL: 'https://app.example.com',
};
const github = { PROVIDER: 'github', OIDC_CLIENT_ID: 'codeflow', OIDC_CLIENT_SECRET: 'shh' };

const problems = configProblems;

describe('OIDC_PROFILE=fapi2', () => {
  it.each([
    ['the embedded provider', {}],
    ['an external issuer (no client secret needed)', external],
  ])('with %s: PAR on, DPoP, private_key_jwt and PS256 by default', (_name, env) => {
    const config = loadConfig({ ...env, ...KEY, OIDC_PROFILE: 'fapi2' });
    expect(config.oidc).toMatchObject({
      profile: 'fapi2',
      par: 'on',
      dpop: true,
      clientAuth: 'private_key_jwt',
      idTokenAlg: 'PS256',
      privateKeyFile: 'keys/client.pem',
    });
  });

  it('allows only PS256, ES256 and EdDSA to sign', () => {
    expect([...FAPI2_ALGORITHMS]).toEqual(['PS256', 'ES256', 'EdDSA']);
  });

  it.each(['PS256', 'ES256', 'EdDSA'])('accepts OIDC_ID_TOKEN_ALG=%s', (alg) => {
    expect(
      loadConfig({ ...KEY, OIDC_PROFILE: 'fapi2', OIDC_ID_TOKEN_ALG: alg }).oidc.idTokenAlg,
    ).toBe(alg);
  });

  it.each(['RS256', 'RS512', 'PS384', 'ES384', 'ES512'])(
    'refuses OIDC_ID_TOKEN_ALG=%s, naming the variable and the profile',
    (alg) => {
      expect(problems({ ...KEY, OIDC_PROFILE: 'fapi2', OIDC_ID_TOKEN_ALG: alg })).toEqual([
        `OIDC_ID_TOKEN_ALG: ${alg} is not allowed with OIDC_PROFILE=fapi2 (only PS256, ES256, EdDSA may sign)`,
      ]);
    },
  );

  it.each([
    ['OIDC_PAR', 'off'],
    ['OIDC_PAR', 'auto'],
    ['OIDC_DPOP', 'off'],
    ['OIDC_CLIENT_AUTH', 'client_secret_basic'],
    ['OIDC_CLIENT_AUTH', 'client_secret_post'],
  ])('refuses %s=%s, naming the variable and the profile', (variable, value) => {
    const found = problems({ ...KEY, OIDC_PROFILE: 'fapi2', [variable]: value });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(
      new RegExp(`^${variable}: ${value} is not allowed with OIDC_PROFILE=fapi2 \\(`),
    );
  });

  it('takes the settings that agree with it', () => {
    const config = loadConfig({
      ...KEY,
      OIDC_PROFILE: 'fapi2',
      OIDC_PAR: 'on',
      OIDC_DPOP: 'on',
      OIDC_CLIENT_AUTH: 'private_key_jwt',
    });
    expect(config.oidc).toMatchObject({ par: 'on', dpop: true, clientAuth: 'private_key_jwt' });
  });

  it('reports every contradiction at once', () => {
    const found = problems({
      ...KEY,
      OIDC_PROFILE: 'fapi2',
      OIDC_PAR: 'off',
      OIDC_DPOP: 'off',
      OIDC_CLIENT_AUTH: 'client_secret_post',
      OIDC_ID_TOKEN_ALG: 'RS256',
    });
    expect(found.map((p) => p.split(':')[0]).sort()).toEqual([
      'OIDC_CLIENT_AUTH',
      'OIDC_DPOP',
      'OIDC_ID_TOKEN_ALG',
      'OIDC_PAR',
    ]);
    expect(found.every((p) => p.includes('OIDC_PROFILE=fapi2'))).toBe(true);
  });

  it('needs a key file, and says so naming the profile', () => {
    const found = problems({ OIDC_PROFILE: 'fapi2' });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(
      /^OIDC_CLIENT_PRIVATE_KEY_FILE: required with OIDC_PROFILE=fapi2, which authenticates with private_key_jwt only/,
    );
  });

  it('is refused with PROVIDER=github', () => {
    expect(problems({ ...github, ...KEY, OIDC_PROFILE: 'fapi2' })).toContain(
      'OIDC_PROFILE: fapi2 needs an OpenID provider; GitHub is not one',
    );
  });

  it('refuses a value other than none or fapi2', () => {
    expect(problems({ OIDC_PROFILE: 'fapi1' })).toEqual(['OIDC_PROFILE: none or fapi2']);
    expect(problems({ DEV_PROVIDER_PROFILE: 'FAPI2' })).toEqual([
      'DEV_PROVIDER_PROFILE: none or fapi2',
    ]);
  });
});

describe('the embedded provider and codeflow follow each other', () => {
  it('OIDC_PROFILE=fapi2 puts the embedded provider in FAPI 2.0 too', () => {
    expect(loadConfig({ ...KEY, OIDC_PROFILE: 'fapi2' }).devProvider?.profile).toBe('fapi2');
  });

  it('DEV_PROVIDER_PROFILE=fapi2 makes codeflow a FAPI 2.0 client, key file and all', () => {
    const config = loadConfig({ ...KEY, DEV_PROVIDER_PROFILE: 'fapi2' });
    expect(config.devProvider?.profile).toBe('fapi2');
    expect(config.oidc).toMatchObject({
      profile: 'fapi2',
      par: 'on',
      dpop: true,
      clientAuth: 'private_key_jwt',
      idTokenAlg: 'PS256',
    });
    expect(problems({ DEV_PROVIDER_PROFILE: 'fapi2' })[0]).toMatch(
      /^OIDC_CLIENT_PRIVATE_KEY_FILE: required with OIDC_PROFILE=fapi2/,
    );
  });

  it('OIDC_PROFILE=none keeps codeflow out of the profile of a FAPI 2.0 embedded provider', () => {
    const config = loadConfig({ DEV_PROVIDER_PROFILE: 'fapi2', OIDC_PROFILE: 'none' });
    expect(config.devProvider?.profile).toBe('fapi2');
    expect(config.oidc).toMatchObject({
      profile: 'none',
      clientAuth: 'client_secret_basic',
      idTokenAlg: 'RS256',
      par: 'auto',
    });
  });

  it('neither set: both none', () => {
    const config = loadConfig({});
    expect(config.oidc.profile).toBe('none');
    expect(config.devProvider?.profile).toBe('none');
  });

  it.each(['fapi2', 'none'])(
    'DEV_PROVIDER_PROFILE=%s with OIDC_ISSUER is refused: there is no embedded provider',
    (value) => {
      const found = problems({
        ...external,
        OIDC_CLIENT_SECRET: 'shh',
        DEV_PROVIDER_PROFILE: value,
      });
      expect(found).toEqual([
        'DEV_PROVIDER_PROFILE: only for the embedded provider (without OIDC_ISSUER); use OIDC_PROFILE for yours',
      ]);
    },
  );

  it('with OIDC_ISSUER, OIDC_PROFILE alone decides (no embedded provider to follow)', () => {
    const config = loadConfig({ ...external, OIDC_CLIENT_SECRET: 'shh' });
    expect(config.oidc.profile).toBe('none');
    expect(config.devProvider).toBeUndefined();
  });
});

describe('OIDC_DPOP without a profile', () => {
  it('is on by default with the embedded provider (its demo API checks proofs)', () => {
    expect(loadConfig({}).oidc.dpop).toBe(true);
  });

  it('is off by default with an issuer, and on when asked', () => {
    const env = { ...external, OIDC_CLIENT_SECRET: 'shh' };
    expect(loadConfig(env).oidc.dpop).toBe(false);
    expect(loadConfig({ ...env, OIDC_DPOP: 'on' }).oidc.dpop).toBe(true);
    expect(loadConfig({ OIDC_DPOP: 'off' }).oidc.dpop).toBe(false);
  });

  it('OIDC_DPOP=on with PROVIDER=github is refused', () => {
    expect(problems({ ...github, OIDC_DPOP: 'on' })).toEqual([
      'OIDC_DPOP: GitHub does not bind tokens to keys (no DPoP); leave it off',
    ]);
    expect(loadConfig(github).oidc.dpop).toBe(false);
  });

  it('other defaults without the profile: PAR auto, client_secret_basic, RS256', () => {
    expect(loadConfig({}).oidc).toMatchObject({
      par: 'auto',
      clientAuth: 'client_secret_basic',
      idTokenAlg: 'RS256',
    });
  });
});
