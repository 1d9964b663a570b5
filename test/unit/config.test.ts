import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../helpers/config-problems.js';

const secret = 's'.repeat(32);
const real = {
  OIDC_ISSUER: 'https://login.example.com',
  OIDC_CLIENT_ID: 'codeflow',
  OIDC_CLIENT_SECRET: 'shh',
  APP_BASE_URL: 'https://app.example.com',
};

const problems = configProblems;

describe('loadConfig', () => {
  it('runs the embedded demo with nothing set', () => {
    const config = loadConfig({});
    expect(config.appBaseUrl.href).toBe('http://localhost:3000/');
    expect(config.redirectUri.href).toBe('http://localhost:3000/callback');
    expect(config.oidc.issuer).toBeUndefined();
    expect(config.devProvider).toEqual({
      port: 3001,
      accessTokenTtlSeconds: 300,
      profile: 'none',
    });
    // The demo binds its tokens (DPoP): its demo API checks the proofs.
    expect(config.oidc.dpop).toBe(true);
    expect(config.oidc.profile).toBe('none');
    expect(config.session.secretGenerated).toBe(true);
    expect(config.session.cookieName).toBe('codeflow.sid');
    expect(config.session.secureCookie).toBe(false);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('makes a different random client secret and session secret on every start, never a fixed one', () => {
    const a = loadConfig({});
    const b = loadConfig({});
    expect(a.oidc.clientSecret).not.toBe(b.oidc.clientSecret);
    expect(a.session.secrets[0]).not.toBe(b.session.secrets[0]);
    expect(a.session.secrets[0]!.length).toBeGreaterThanOrEqual(32);
  });

  it('refuses to start in production without an issuer or a session secret, naming each variable', () => {
    const found = problems({ NODE_ENV: 'production' });
    expect(found.some((p) => p.startsWith('OIDC_ISSUER'))).toBe(true);
    expect(found.some((p) => p.startsWith('SESSION_SECRET'))).toBe(true);
  });

  it('reports every problem at once', () => {
    const found = problems({
      NODE_ENV: 'production',
      OIDC_ISSUER: 'http://login.example.com',
      SESSION_SECRET: 'short',
      APP_BASE_URL: 'http://app.example.com',
      API_URL: 'not a url',
    });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^APP_BASE_URL: plain http/),
        expect.stringMatching(/^OIDC_ISSUER: plain http/),
        expect.stringMatching(/^API_URL: not a URL/),
        expect.stringMatching(/^SESSION_SECRET: value 1 is shorter than 32/),
        expect.stringMatching(/^OIDC_CLIENT_ID: required/),
        expect.stringMatching(/^OIDC_CLIENT_SECRET: required/),
      ]),
    );
  });

  it('reports schema problems and the checks after the schema together', () => {
    const found = problems({
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      SESSION_SECRET: 'short',
      NODE_ENV: 'production',
      APP_BASE_URL: 'http://app.example.com',
      TRUST_PROXY: 'true',
    });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: /),
        expect.stringMatching(/^LOG_LEVEL: /),
        expect.stringMatching(/^SESSION_SECRET: value 1 is shorter than 32/),
        expect.stringMatching(/^OIDC_ISSUER: required when NODE_ENV=production/),
        expect.stringMatching(/^APP_BASE_URL: plain http/),
        expect.stringMatching(/^TRUST_PROXY: "true" trusts every hop/),
      ]),
    );
    expect(found).toHaveLength(6);
  });

  it.each([
    ['http://localhost:8080', true],
    ['http://127.0.0.1:8080', true],
    ['http://[::1]:8080', true],
    ['http://app.localhost', true],
    ['http://10.0.0.5', false],
    ['http://example.com', false],
    ['https://example.com', true],
    ['ftp://example.com', false],
  ])('accepts %s as APP_BASE_URL: %s', (url, ok) => {
    expect(problems({ APP_BASE_URL: url })).toHaveLength(ok ? 0 : 1);
  });

  it('uses a __Host- prefixed Secure cookie when the base URL is https', () => {
    const config = loadConfig({ ...real, SESSION_SECRET: secret });
    expect(config.session.cookieName).toBe('__Host-codeflow.sid');
    expect(config.session.secureCookie).toBe(true);
    expect(config.devProvider).toBeUndefined();
  });

  it('accepts a production configuration and rotates several session secrets, first one first', () => {
    const config = loadConfig({
      ...real,
      NODE_ENV: 'production',
      SESSION_SECRET: `${secret} ${'o'.repeat(40)}`,
    });
    expect(config.session.secrets).toEqual([secret, 'o'.repeat(40)]);
    expect(config.session.secretGenerated).toBe(false);
    expect(config.isProduction).toBe(true);
  });

  it.each(['https://example.com/auth', 'https://example.com/?x=1', 'https://example.com/#top'])(
    'refuses the base URL %s, which is not a bare origin',
    (url) => {
      expect(problems({ APP_BASE_URL: url })).toEqual([
        expect.stringMatching(/^APP_BASE_URL: must be an origin/),
      ]);
    },
  );

  it('accepts a base URL with a trailing slash', () => {
    expect(loadConfig({ APP_BASE_URL: 'https://example.com/' }).redirectUri.href).toBe(
      'https://example.com/callback',
    );
  });

  it.each([
    ['1', 1],
    ['2', 2],
    ['loopback', 'loopback'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['10.0.0.0/8, 192.168.0.1', '10.0.0.0/8,192.168.0.1'],
    ['loopback, fc00::/7, 172.16.0.0/255.240.0.0', 'loopback,fc00::/7,172.16.0.0/255.240.0.0'],
    ['false', false],
    [' false ', false],
  ])('reads TRUST_PROXY=%j as %j', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }).trustProxy).toStrictEqual(expected);
  });

  it('leaves TRUST_PROXY unset when it is not given or blank', () => {
    expect(loadConfig({}).trustProxy).toBeUndefined();
    expect(loadConfig({ TRUST_PROXY: ' ' }).trustProxy).toBeUndefined();
  });

  it.each(['true', 'TRUE', ' true '])(
    'refuses TRUST_PROXY=%j, which would let any client choose its own address',
    (value) => {
      expect(problems({ TRUST_PROXY: value })).toEqual([
        `TRUST_PROXY: ${JSON.stringify(value.trim())} trusts every hop, so any client could choose its own address with X-Forwarded-For (and escape rate limits); give the number of proxies in front of codeflow (e.g. 1) or their addresses/subnets`,
      ]);
    },
  );

  it.each([
    ['proxy.example.com', '"proxy.example.com"'],
    ['Loopback', '"Loopback"'],
    ['10.0.0.0/33', '"10.0.0.0/33"'],
    ['10.0.0.0/0', '"10.0.0.0/0"'],
    ['10.0.0.0/255.0.255.0', '"10.0.0.0/255.0.255.0"'],
    ['10.0.0.1, true', '"true"'],
    ['10.0.0.1,', '""'],
  ])('refuses TRUST_PROXY=%j, naming %s', (value, named) => {
    expect(problems({ TRUST_PROXY: value })).toEqual([
      `TRUST_PROXY: not a hop count, an IP address or subnet, or one of loopback, linklocal, uniquelocal: ${named}`,
    ]);
  });

  it('listens on loopback only in development, and on every interface in production', () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ ...real, SESSION_SECRET: secret }).host).toBe('127.0.0.1');
    expect(
      loadConfig({ ...real, NODE_ENV: 'production', SESSION_SECRET: secret }).host,
    ).toBeUndefined();
    expect(loadConfig({ HOST: ' ' }).host).toBe('127.0.0.1');
  });

  it.each([
    '127.0.0.1',
    '0.0.0.0',
    '::',
    '::1',
    'fd00::2',
    'localhost',
    'app-1.internal',
    'Host.Example.COM',
  ])('accepts HOST=%j as given', (host) => {
    expect(loadConfig({ HOST: host }).host).toBe(host);
    expect(loadConfig({ ...real, HOST: host }).host).toBe(host);
  });

  it.each([
    '[::1]',
    '127.0.0.1:3000',
    'http://localhost',
    '-bad.example',
    'under_score',
    'a..b',
    'x'.repeat(64),
  ])('refuses HOST=%j, which is neither an IP address nor a host name', (host) => {
    expect(problems({ HOST: host })).toEqual([
      'HOST: not an IP address or a host name (e.g. 127.0.0.1, ::, localhost; IPv6 without brackets)',
    ]);
  });

  it('reports a bad HOST together with the other problems', () => {
    const found = problems({ HOST: '[::1]', PORT: 'eighty', TRUST_PROXY: 'true' });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^HOST: /),
        expect.stringMatching(/^PORT: /),
        expect.stringMatching(/^TRUST_PROXY: /),
      ]),
    );
    expect(found).toHaveLength(3);
  });

  it('accepts a METRICS_TOKEN of 16 characters or more, and leaves it unset when blank', () => {
    expect(loadConfig({ METRICS_TOKEN: 'm'.repeat(16) }).metricsToken).toBe('m'.repeat(16));
    expect(loadConfig({}).metricsToken).toBeUndefined();
    expect(loadConfig({ METRICS_TOKEN: ' ' }).metricsToken).toBeUndefined();
  });

  it('refuses a METRICS_TOKEN shorter than 16 characters', () => {
    expect(problems({ METRICS_TOKEN: 'm'.repeat(15) })).toEqual([
      'METRICS_TOKEN: at least 16 characters',
    ]);
  });

  it('sets no access rule by default, and reads the groups claim as groups', () => {
    expect(loadConfig({}).accessRules).toEqual({
      emailDomains: [],
      groups: [],
      groupsClaim: 'groups',
    });
    expect(loadConfig({ ALLOWED_EMAIL_DOMAINS: ' ', ALLOWED_GROUPS: '' }).accessRules).toEqual(
      loadConfig({}).accessRules,
    );
  });

  it.each([
    ['example.com', ['example.com']],
    ['Example.COM, corp.example.org', ['example.com', 'corp.example.org']],
    [
      'example.com corp.example.org\texample.net',
      ['example.com', 'corp.example.org', 'example.net'],
    ],
    [' example.com,,example.com , ', ['example.com']],
  ])('reads ALLOWED_EMAIL_DOMAINS=%j as %j', (value, expected) => {
    expect(loadConfig({ ALLOWED_EMAIL_DOMAINS: value }).accessRules.emailDomains).toEqual(expected);
  });

  it.each([
    ['@example.com', '"@example.com"'],
    ['*.example.com', '"*.example.com"'],
    ['alice@example.com', '"alice@example.com"'],
    ['https://example.com', '"https://example.com"'],
    ['example.com.', '"example.com."'],
    ['example.com, 10.0.0.1, -bad.example', '"10.0.0.1", "-bad.example"'],
  ])('refuses ALLOWED_EMAIL_DOMAINS=%j, naming %s', (value, named) => {
    expect(problems({ ALLOWED_EMAIL_DOMAINS: value })).toEqual([
      `ALLOWED_EMAIL_DOMAINS: not a domain name (give example.com, without @ or *; list each subdomain itself): ${named}`,
    ]);
  });

  it('reads ALLOWED_GROUPS as comma-separated names, spaces inside kept, case kept', () => {
    const config = loadConfig({
      ALLOWED_GROUPS: ' admins, Release Managers ,admins,',
      ALLOWED_GROUPS_CLAIM: ' https://example.com/roles ',
    });
    expect(config.accessRules).toEqual({
      emailDomains: [],
      groups: ['admins', 'Release Managers'],
      groupsClaim: 'https://example.com/roles',
    });
    expect(Object.isFrozen(config.accessRules.groups)).toBe(true);
  });

  it('refuses a rule that lists nothing, rather than admitting everyone', () => {
    expect(problems({ ALLOWED_EMAIL_DOMAINS: ',', ALLOWED_GROUPS: ' , ' })).toEqual([
      'ALLOWED_EMAIL_DOMAINS: lists no domain (leave it empty for no rule)',
      'ALLOWED_GROUPS: lists no group (leave it empty for no rule)',
    ]);
  });

  it('refuses ALLOWED_GROUPS_CLAIM without ALLOWED_GROUPS, and a claim name with spaces', () => {
    expect(problems({ ALLOWED_GROUPS_CLAIM: 'roles' })).toEqual([
      'ALLOWED_GROUPS_CLAIM: has no effect without ALLOWED_GROUPS',
    ]);
    expect(problems({ ALLOWED_GROUPS: 'admins', ALLOWED_GROUPS_CLAIM: 'groups roles' })).toEqual([
      'ALLOWED_GROUPS_CLAIM: one claim name, without spaces',
    ]);
  });

  it('refuses ALLOWED_EMAIL_DOMAINS when OIDC_SCOPES does not ask for the email', () => {
    expect(
      problems({ ALLOWED_EMAIL_DOMAINS: 'example.com', OIDC_SCOPES: 'openid profile' }),
    ).toEqual([
      'ALLOWED_EMAIL_DOMAINS: needs the email scope in OIDC_SCOPES (without it the provider sends no email, and no one could sign in)',
    ]);
    expect(problems({ ALLOWED_GROUPS: 'admins', OIDC_SCOPES: 'openid groups' })).toEqual([]);
  });

  it('rejects an unknown LOG_LEVEL and a non-numeric PORT', () => {
    const found = problems({ LOG_LEVEL: 'loud', PORT: 'eighty' });
    expect(found).toHaveLength(2);
  });

  it('PROVIDER=github: github.com by default, GitHub Enterprise Server by GITHUB_URL, its own defaults', () => {
    const github = { PROVIDER: 'github', OIDC_CLIENT_ID: 'Iv1.x', OIDC_CLIENT_SECRET: 'secret' };
    const dotcom = loadConfig(github);
    expect(dotcom.oidc.kind).toBe('github');
    expect(dotcom.oidc.issuer?.href).toBe('https://github.com/');
    expect(dotcom.github?.apiUrl.href).toBe('https://api.github.com/');
    expect(dotcom.apiUrl?.href).toBe('https://api.github.com/user');
    expect(dotcom.oidc.scopes).toBe('read:user user:email');
    expect(dotcom.api.authScheme).toBe('token');
    expect(dotcom.devProvider).toBeUndefined();

    const ghe = loadConfig({ ...github, GITHUB_URL: 'https://ghe.example.com' });
    expect(ghe.github?.url.href).toBe('https://ghe.example.com/');
    expect(ghe.github?.apiUrl.href).toBe('https://ghe.example.com/api/v3/');
    expect(loadConfig({ ...github, OIDC_SCOPES: 'read:user' }).oidc.scopes).toBe('read:user');
    expect(loadConfig({ ...github, API_AUTH_SCHEME: 'Bearer' }).api.authScheme).toBe('Bearer');
    expect(problems({ PROVIDER: 'github' })).toEqual([
      'OIDC_CLIENT_ID: required with OIDC_ISSUER or PROVIDER=github',
      'OIDC_CLIENT_SECRET: required with OIDC_ISSUER (codeflow is a confidential client), unless OIDC_CLIENT_AUTH=private_key_jwt',
    ]);
  });
});
