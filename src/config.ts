import { randomBytes } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';
import { z } from 'zod';
import type { AccessRules } from './auth/access-rules.js';
import { ONE_TIME_CODE_ACR } from './dev-provider/acr.js';

/** Everything codeflow reads from its environment, validated once. */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

export interface Config {
  readonly nodeEnv: string;
  readonly isProduction: boolean;
  readonly port: number;
  /**
   * Listen address of the app and of the embedded provider. In production, by default every
   * interface (Node's default, `::` and with it IPv4), what a reverse proxy or a container's port
   * mapping needs. In development, by default 127.0.0.1: nothing beyond this machine reaches a
   * work in progress, nor the embedded provider, whose demo accounts have published passwords.
   */
  readonly host: string | undefined;
  /** Public URL of the app; the redirect URI is derived from it, never from request headers. */
  readonly appBaseUrl: URL;
  readonly redirectUri: URL;
  readonly postLogoutRedirectUri: URL;
  readonly oidc: {
    /** Unset: the embedded development provider is started and its issuer filled in later. */
    readonly issuer: URL | undefined;
    /** oidc: OpenID Connect with discovery; github: GitHub's plain OAuth 2.0 (see src/auth/github.ts). */
    readonly kind: 'oidc' | 'github';
    readonly clientId: string;
    readonly clientSecret: string;
    /** How codeflow authenticates at the token and revocation endpoints. */
    readonly clientAuth: ClientAuthMethod;
    /** Pushed authorization requests (RFC 9126): auto uses them when the provider offers them. */
    readonly par: 'auto' | 'on' | 'off';
    /** With private_key_jwt: the file holding the private key (PEM PKCS#8, or a private JWK). */
    readonly privateKeyFile: string | undefined;
    readonly scopes: string;
    /** The one ID-token signing algorithm accepted. */
    readonly idTokenAlg: string;
    /** DPoP (RFC 9449): tokens bound to a key per session; on by default with the embedded provider. */
    readonly dpop: boolean;
    /** fapi2: the FAPI 2.0 Security Profile's demands, each turned on and checked at start. */
    readonly profile: 'none' | 'fapi2';
  };
  /**
   * What /dashboard/sensitive asks of the sign-in (step-up): one of `acrValues` (none: any level),
   * within `maxAgeSeconds` of now; and the API it calls (none: it calls nothing).
   */
  readonly stepUp: {
    readonly acrValues: readonly string[];
    readonly maxAgeSeconds: number;
    readonly apiUrl: URL | undefined;
  };
  /** Present when the embedded development provider runs (no OIDC_ISSUER, not production). */
  readonly devProvider:
    | {
        readonly port: number;
        readonly accessTokenTtlSeconds: number;
        /** fapi2: PAR, DPoP, private_key_jwt and PS256 required, as a FAPI 2.0 provider does. */
        readonly profile: 'none' | 'fapi2';
      }
    | undefined;
  /** Unset: the embedded provider's demo API, or the provider's userinfo endpoint. */
  readonly apiUrl: URL | undefined;
  /** With PROVIDER=github: GitHub's web and API roots (github.com, or a GitHub Enterprise Server). */
  readonly github: { readonly url: URL; readonly apiUrl: URL } | undefined;
  readonly session: {
    /** The first signs new cookies; the others still verify old ones (rotation). */
    readonly secrets: readonly string[];
    /** True when no SESSION_SECRET was given and a random one was made for this start. */
    readonly secretGenerated: boolean;
    readonly cookieName: string;
    readonly secureCookie: boolean;
    /** Absolute lifetime of a signed-in session, however active: then sign in again. */
    readonly maxAgeSeconds: number;
  };
  readonly redisUrl: string | undefined;
  /**
   * Express `trust proxy`: a hop count, or a comma-separated list of addresses, subnets and the
   * names loopback, linklocal, uniquelocal; false trusts none. Never true (see parseTrustProxy).
   */
  readonly trustProxy: number | string | false | undefined;
  readonly logLevel: string;
  /** Sign-in starts and finishes per client address per minute, each. */
  readonly rateLimitPerMinute: number;
  /** Timeout of every outbound call: token endpoint, userinfo, revocation, the API. */
  readonly httpTimeoutMs: number;
  /** Refresh this many seconds before the access token expires. */
  readonly refreshSkewSeconds: number;
  readonly api: {
    /** Authorization scheme for API calls: `Bearer`, or e.g. `token` for APIs that want it. */
    readonly authScheme: string;
    /** Total time the dashboard may spend waiting out 429s and 5xx before it gives up. */
    readonly retryBudgetMs: number;
  };
  /** Bearer token GET /metrics asks for; unset, production serves metrics to loopback only. */
  readonly metricsToken?: string;
  /** Who may sign in (internal tools); both lists empty: everyone the provider signs in. */
  readonly accessRules: AccessRules;
}

/** Thrown by {@link loadConfig} with every problem found, one per line. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const MIN_SECRET_LENGTH = 32;
const MIN_METRICS_TOKEN_LENGTH = 16;
const blankToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalString = z.preprocess(blankToUndefined, z.string().trim().optional());
const optionalPort = z.preprocess(
  blankToUndefined,
  z.coerce.number().int().min(0).max(65535).optional(),
);

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const schema = z.object({
  NODE_ENV: z.preprocess(blankToUndefined, z.string().default('development')),
  PORT: z.preprocess(blankToUndefined, z.coerce.number().int().min(0).max(65535).default(3000)),
  HOST: z.preprocess(
    blankToUndefined,
    z
      .string()
      .trim()
      .refine(
        (host) => isIP(host) !== 0 || HOST_NAME.test(host),
        'not an IP address or a host name (e.g. 127.0.0.1, ::, localhost; IPv6 without brackets)',
      )
      .optional(),
  ),
  APP_BASE_URL: optionalString,
  PROVIDER: z.preprocess(
    blankToUndefined,
    z.enum(['oidc', 'github'], { error: 'oidc or github' }).default('oidc'),
  ),
  GITHUB_URL: optionalString,
  GITHUB_API_URL: optionalString,
  OIDC_ISSUER: optionalString,
  DEV_PROVIDER_PORT: optionalPort,
  DEV_ACCESS_TOKEN_TTL: z.preprocess(blankToUndefined, z.coerce.number().int().min(1).default(300)),
  OIDC_CLIENT_ID: optionalString,
  OIDC_CLIENT_SECRET: optionalString,
  OIDC_CLIENT_AUTH: z.preprocess(
    blankToUndefined,
    z
      .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt'], {
        error: 'one of client_secret_basic, client_secret_post, private_key_jwt',
      })
      .optional(),
  ),
  OIDC_CLIENT_PRIVATE_KEY_FILE: optionalString,
  OIDC_PAR: z.preprocess(
    blankToUndefined,
    z.enum(['auto', 'on', 'off'], { error: 'auto, on or off' }).optional(),
  ),
  OIDC_DPOP: z.preprocess(
    blankToUndefined,
    z.enum(['on', 'off'], { error: 'on or off' }).optional(),
  ),
  OIDC_PROFILE: z.preprocess(
    blankToUndefined,
    z.enum(['none', 'fapi2'], { error: 'none or fapi2' }).optional(),
  ),
  DEV_PROVIDER_PROFILE: z.preprocess(
    blankToUndefined,
    z.enum(['none', 'fapi2'], { error: 'none or fapi2' }).optional(),
  ),
  STEP_UP_ACR_VALUES: z.preprocess(
    blankToUndefined,
    z
      .string()
      .trim()
      .regex(/^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/, 'acr values separated by single spaces')
      .optional(),
  ),
  STEP_UP_MAX_AGE_SECONDS: z.preprocess(
    blankToUndefined,
    z.coerce.number().int().min(60).max(86_400).default(600),
  ),
  STEP_UP_API_URL: optionalString,
  OIDC_SCOPES: z.preprocess(
    blankToUndefined,
    z.string().default('openid profile email offline_access'),
  ),
  // Asymmetric algorithms only: HS* would make the client secret a signing key, and "none" is no signature.
  OIDC_ID_TOKEN_ALG: z.preprocess(
    blankToUndefined,
    z
      .enum([
        'RS256',
        'RS384',
        'RS512',
        'PS256',
        'PS384',
        'PS512',
        'ES256',
        'ES384',
        'ES512',
        'EdDSA',
      ])
      .optional(),
  ),
  API_URL: optionalString,
  SESSION_SECRET: optionalString,
  REDIS_URL: optionalString,
  SESSION_MAX_AGE_SECONDS: z.preprocess(
    blankToUndefined,
    z.coerce
      .number()
      .int()
      .min(60)
      .default(12 * 3600),
  ),
  TRUST_PROXY: optionalString,
  LOG_LEVEL: z.preprocess(blankToUndefined, z.enum(LOG_LEVELS).default('info')),
  HTTP_TIMEOUT_MS: z.preprocess(blankToUndefined, z.coerce.number().int().min(100).default(5000)),
  RATE_LIMIT_PER_MINUTE: z.preprocess(
    blankToUndefined,
    z.coerce.number().int().min(1).default(300),
  ),
  REFRESH_SKEW_SECONDS: z.preprocess(blankToUndefined, z.coerce.number().int().min(0).default(60)),
  API_AUTH_SCHEME: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*$/)
      .default('Bearer'),
  ),
  API_RETRY_BUDGET_MS: z.preprocess(blankToUndefined, z.coerce.number().int().min(0).default(5000)),
  METRICS_TOKEN: optionalString,
  ALLOWED_EMAIL_DOMAINS: optionalString,
  ALLOWED_GROUPS: optionalString,
  ALLOWED_GROUPS_CLAIM: z.preprocess(
    blankToUndefined,
    z.string().trim().regex(/^\S+$/, 'one claim name, without spaces').optional(),
  ),
});

/** Loopback hosts are the only ones allowed to speak plain http (development and tests). */
export function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname.endsWith('.localhost') ||
    hostname === '[::1]' ||
    /^127(\.\d{1,3}){3}$/.test(hostname)
  );
}

/**
 * Validates the environment and returns the frozen configuration.
 * Pure: the environment is a parameter, so tests pass plain objects.
 * @throws {ConfigError} listing every problem at once.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // Two phases, one report: the schema's problems (types, ranges) and the checks below (URLs,
  // secrets, what production requires) are collected together, so one failed start lists them all.
  const { e, problems } = parseVariables(env);
  const isProduction = e.NODE_ENV === 'production';

  const url = (name: string, value: string | undefined): URL | undefined => {
    if (value === undefined) return undefined;
    let parsedUrl: URL;
    try {
      parsedUrl = new URL(value);
    } catch {
      problems.push(`${name}: not a URL (${JSON.stringify(value)})`);
      return undefined;
    }
    if (parsedUrl.protocol === 'http:' && !isLoopbackHost(parsedUrl.hostname)) {
      problems.push(`${name}: plain http is allowed only for loopback hosts; use https`);
    } else if (parsedUrl.protocol !== 'http:' && parsedUrl.protocol !== 'https:') {
      problems.push(`${name}: must be an http(s) URL`);
    }
    return parsedUrl;
  };

  const appBaseUrl = url('APP_BASE_URL', e.APP_BASE_URL ?? `http://localhost:${e.PORT}`);
  if (appBaseUrl && (appBaseUrl.pathname !== '/' || appBaseUrl.search || appBaseUrl.hash)) {
    problems.push(
      'APP_BASE_URL: must be an origin such as https://app.example.com (codeflow serves from /)',
    );
  }
  const github = e.PROVIDER === 'github' ? githubUrls(e, url, problems) : undefined;
  const issuer = github?.url ?? url('OIDC_ISSUER', e.OIDC_ISSUER);
  // GitHub's API for a person is /user, with the scheme GitHub documents.
  const apiUrl = url('API_URL', e.API_URL) ?? (github && new URL('user', github.apiUrl));
  const scopes =
    github && env.OIDC_SCOPES?.trim()
      ? e.OIDC_SCOPES
      : github
        ? 'read:user user:email'
        : e.OIDC_SCOPES;

  if (isProduction && !issuer && !e.OIDC_ISSUER) {
    problems.push(
      'OIDC_ISSUER: required when NODE_ENV=production (the embedded provider is for development)',
    );
  }
  const external = Boolean(e.OIDC_ISSUER) || Boolean(github);
  if (external && !e.OIDC_CLIENT_ID)
    problems.push('OIDC_CLIENT_ID: required with OIDC_ISSUER or PROVIDER=github');
  const high = highAssurance(e, !external, Boolean(github), problems);
  const keyAuth = high.clientAuth === 'private_key_jwt';
  if (external && !keyAuth && !e.OIDC_CLIENT_SECRET) {
    problems.push(
      'OIDC_CLIENT_SECRET: required with OIDC_ISSUER (codeflow is a confidential client), unless OIDC_CLIENT_AUTH=private_key_jwt',
    );
  }
  if (keyAuth && github) {
    problems.push(
      'OIDC_CLIENT_AUTH: GitHub takes a client secret (client_secret_basic or client_secret_post)',
    );
  }
  if (keyAuth && !e.OIDC_CLIENT_PRIVATE_KEY_FILE) {
    problems.push(
      high.profile === 'fapi2'
        ? 'OIDC_CLIENT_PRIVATE_KEY_FILE: required with OIDC_PROFILE=fapi2, which authenticates with private_key_jwt only (a PEM PKCS#8 private key or a private JWK; P-256 or RSA)'
        : 'OIDC_CLIENT_PRIVATE_KEY_FILE: required with OIDC_CLIENT_AUTH=private_key_jwt (a PEM PKCS#8 private key or a private JWK)',
    );
  }
  const stepUpApiUrl = url('STEP_UP_API_URL', e.STEP_UP_API_URL);

  const secrets = e.SESSION_SECRET?.split(/\s+/).filter(Boolean) ?? [];
  if (isProduction && secrets.length === 0) {
    problems.push(
      `SESSION_SECRET: required when NODE_ENV=production (at least ${MIN_SECRET_LENGTH} characters)`,
    );
  }
  secrets.forEach((secret, i) => {
    if (secret.length < MIN_SECRET_LENGTH) {
      problems.push(
        `SESSION_SECRET: value ${i + 1} is shorter than ${MIN_SECRET_LENGTH} characters`,
      );
    }
  });

  if (e.REDIS_URL && !/^rediss?:\/\//.test(e.REDIS_URL)) {
    problems.push('REDIS_URL: must start with redis:// or rediss://');
  }

  const trustProxy = parseTrustProxy(e.TRUST_PROXY, problems);

  if (e.METRICS_TOKEN !== undefined && e.METRICS_TOKEN.length < MIN_METRICS_TOKEN_LENGTH) {
    problems.push(`METRICS_TOKEN: at least ${MIN_METRICS_TOKEN_LENGTH} characters`);
  }

  const accessRules = parseAccessRules({ ...e, OIDC_SCOPES: scopes }, problems, e.PROVIDER);

  if (problems.length > 0 || !appBaseUrl) throw new ConfigError(problems);

  const embedded = !issuer;
  const secureCookie = appBaseUrl.protocol === 'https:';
  const base = appBaseUrl.origin;

  return Object.freeze({
    nodeEnv: e.NODE_ENV,
    isProduction,
    port: e.PORT,
    host: e.HOST ?? (isProduction ? undefined : '127.0.0.1'),
    appBaseUrl: new URL(base),
    redirectUri: new URL('/callback', base),
    postLogoutRedirectUri: new URL('/', base),
    oidc: Object.freeze({
      issuer,
      kind: e.PROVIDER,
      clientId: e.OIDC_CLIENT_ID ?? 'codeflow-dev',
      // The embedded provider is in this process: a fresh random secret per start, never a fixed one.
      clientSecret: e.OIDC_CLIENT_SECRET ?? randomBytes(32).toString('base64url'),
      clientAuth: high.clientAuth,
      par: high.par,
      privateKeyFile: e.OIDC_CLIENT_PRIVATE_KEY_FILE,
      scopes,
      idTokenAlg: high.idTokenAlg,
      dpop: high.dpop,
      profile: high.profile,
    }),
    devProvider: embedded
      ? Object.freeze({
          port: e.DEV_PROVIDER_PORT ?? (e.PORT === 0 ? 0 : e.PORT + 1),
          accessTokenTtlSeconds: e.DEV_ACCESS_TOKEN_TTL,
          profile: e.DEV_PROVIDER_PROFILE ?? high.profile,
        })
      : undefined,
    stepUp: Object.freeze({
      // The embedded provider's one-time-code level, so the demo shows a step-up; with another
      // provider, only what STEP_UP_ACR_VALUES names (its own level names).
      acrValues: Object.freeze(
        e.STEP_UP_ACR_VALUES?.split(' ') ?? (embedded ? [ONE_TIME_CODE_ACR] : []),
      ),
      maxAgeSeconds: e.STEP_UP_MAX_AGE_SECONDS,
      apiUrl: stepUpApiUrl,
    }),
    apiUrl,
    github: github && Object.freeze(github),
    session: Object.freeze({
      secrets: Object.freeze(
        secrets.length > 0 ? secrets : [randomBytes(32).toString('base64url')],
      ),
      secretGenerated: secrets.length === 0,
      // __Host- binds the cookie to this exact origin (Secure, Path=/, no Domain); browsers accept it only over https.
      cookieName: secureCookie ? '__Host-codeflow.sid' : 'codeflow.sid',
      secureCookie,
      maxAgeSeconds: e.SESSION_MAX_AGE_SECONDS,
    }),
    redisUrl: e.REDIS_URL,
    trustProxy,
    logLevel: e.LOG_LEVEL,
    httpTimeoutMs: e.HTTP_TIMEOUT_MS,
    refreshSkewSeconds: e.REFRESH_SKEW_SECONDS,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    api: Object.freeze({
      // GitHub documents `Authorization: token <token>` for its REST API.
      authScheme: github && !env.API_AUTH_SCHEME?.trim() ? 'token' : e.API_AUTH_SCHEME,
      retryBudgetMs: e.API_RETRY_BUDGET_MS,
    }),
    metricsToken: e.METRICS_TOKEN,
    accessRules,
  });
}

/** What FAPI 2.0 allows to sign ID tokens and client assertions (FAPI 2.0 Security Profile §5.4). */
export const FAPI2_ALGORITHMS = ['PS256', 'ES256', 'EdDSA'] as const;

/**
 * PAR, DPoP, client authentication and the ID-token algorithm, with OIDC_PROFILE=fapi2 deciding
 * the defaults and refusing what the profile forbids: a team turns on one variable, and a setting
 * that contradicts it is named at start instead of failing at the first sign-in.
 */
function highAssurance(
  e: z.infer<typeof schema>,
  embedded: boolean,
  github: boolean,
  problems: string[],
): {
  profile: 'none' | 'fapi2';
  par: 'auto' | 'on' | 'off';
  dpop: boolean;
  clientAuth: ClientAuthMethod;
  idTokenAlg: string;
} {
  if (e.DEV_PROVIDER_PROFILE !== undefined && !embedded) {
    problems.push(
      'DEV_PROVIDER_PROFILE: only for the embedded provider (without OIDC_ISSUER); use OIDC_PROFILE for yours',
    );
  }
  // The embedded provider in its FAPI 2.0 profile takes only a FAPI 2.0 client: codeflow follows.
  const profile = e.OIDC_PROFILE ?? (embedded ? (e.DEV_PROVIDER_PROFILE ?? 'none') : 'none');
  if (profile === 'none') {
    if (e.OIDC_DPOP === 'on' && github) {
      problems.push('OIDC_DPOP: GitHub does not bind tokens to keys (no DPoP); leave it off');
    }
    return {
      profile,
      par: e.OIDC_PAR ?? 'auto',
      // The embedded provider's demo API checks DPoP proofs, so the demo shows binding at work.
      dpop: (e.OIDC_DPOP ?? (embedded ? 'on' : 'off')) === 'on',
      clientAuth: e.OIDC_CLIENT_AUTH ?? 'client_secret_basic',
      idTokenAlg: e.OIDC_ID_TOKEN_ALG ?? 'RS256',
    };
  }
  const refuse = (variable: string, value: string, why: string) =>
    problems.push(`${variable}: ${value} is not allowed with OIDC_PROFILE=fapi2 (${why})`);
  if (github) problems.push('OIDC_PROFILE: fapi2 needs an OpenID provider; GitHub is not one');
  if (e.OIDC_PAR !== undefined && e.OIDC_PAR !== 'on')
    refuse('OIDC_PAR', e.OIDC_PAR, 'the authorization request must be pushed, RFC 9126');
  if (e.OIDC_DPOP === 'off')
    refuse('OIDC_DPOP', 'off', 'access tokens must be sender-constrained, RFC 9449');
  if (e.OIDC_CLIENT_AUTH !== undefined && e.OIDC_CLIENT_AUTH !== 'private_key_jwt')
    refuse('OIDC_CLIENT_AUTH', e.OIDC_CLIENT_AUTH, 'only private_key_jwt or mutual TLS');
  const alg = e.OIDC_ID_TOKEN_ALG;
  if (alg !== undefined && !(FAPI2_ALGORITHMS as readonly string[]).includes(alg))
    refuse('OIDC_ID_TOKEN_ALG', alg, `only ${FAPI2_ALGORITHMS.join(', ')} may sign`);
  return {
    profile,
    par: 'on',
    dpop: true,
    clientAuth: 'private_key_jwt',
    idTokenAlg: alg ?? 'PS256',
  };
}

/**
 * Phase one: each variable's type, range and default. A variable that fails is reported and then
 * read as if unset, so the checks after this still run on everything else.
 */
function parseVariables(env: Record<string, string | undefined>): {
  e: z.infer<typeof schema>;
  problems: string[];
} {
  const parsed = schema.safeParse(env);
  if (parsed.success) return { e: parsed.data, problems: [] };
  const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  const failed = new Set(parsed.error.issues.map((issue) => issue.path[0]));
  const rest = Object.fromEntries(Object.entries(env).filter(([name]) => !failed.has(name)));
  // Every variable is optional or has a valid default, so without the failed ones this passes.
  return { e: schema.parse(rest), problems };
}

/**
 * ALLOWED_EMAIL_DOMAINS (comma- or space-separated, lower-cased) and ALLOWED_GROUPS (comma-separated:
 * group names may hold spaces). A value that lists nothing is refused rather than read as "no
 * rule", so a stray comma never opens an internal tool to everyone.
 */
function parseAccessRules(
  e: z.infer<typeof schema>,
  problems: string[],
  provider: 'oidc' | 'github',
): AccessRules {
  const emailDomains = [
    ...new Set(
      (e.ALLOWED_EMAIL_DOMAINS ?? '')
        .toLowerCase()
        .split(/[\s,]+/)
        .filter(Boolean),
    ),
  ];
  const groups = [
    ...new Set(
      (e.ALLOWED_GROUPS ?? '')
        .split(',')
        .map((g) => g.trim())
        .filter(Boolean),
    ),
  ];
  if (e.ALLOWED_EMAIL_DOMAINS !== undefined && emailDomains.length === 0) {
    problems.push('ALLOWED_EMAIL_DOMAINS: lists no domain (leave it empty for no rule)');
  }
  if (e.ALLOWED_GROUPS !== undefined && groups.length === 0) {
    problems.push('ALLOWED_GROUPS: lists no group (leave it empty for no rule)');
  }
  // Exact domains only: an entry with @ or a wildcard would never match, and say nothing.
  const bad = emailDomains.filter((d) => !HOST_NAME.test(d) || isIP(d) !== 0);
  if (bad.length > 0) {
    problems.push(
      `ALLOWED_EMAIL_DOMAINS: not a domain name (give example.com, without @ or *; list each subdomain itself): ${bad.map((d) => JSON.stringify(d)).join(', ')}`,
    );
  }
  if (provider === 'github') {
    if (emailDomains.length > 0 && !e.OIDC_SCOPES.split(/\s+/).includes('user:email')) {
      problems.push(
        'ALLOWED_EMAIL_DOMAINS: needs the user:email scope in OIDC_SCOPES (GitHub shows the addresses and whether they are verified only with it)',
      );
    }
    if (groups.length > 0) {
      problems.push(
        'ALLOWED_GROUPS: not supported with PROVIDER=github (GitHub has no groups claim)',
      );
    }
  } else if (emailDomains.length > 0 && !e.OIDC_SCOPES.split(/\s+/).includes('email')) {
    problems.push(
      'ALLOWED_EMAIL_DOMAINS: needs the email scope in OIDC_SCOPES (without it the provider sends no email, and no one could sign in)',
    );
  }
  if (e.ALLOWED_GROUPS_CLAIM !== undefined && e.ALLOWED_GROUPS === undefined) {
    problems.push('ALLOWED_GROUPS_CLAIM: has no effect without ALLOWED_GROUPS');
  }
  return Object.freeze({
    emailDomains: Object.freeze(emailDomains),
    groups: Object.freeze(groups),
    groupsClaim: e.ALLOWED_GROUPS_CLAIM ?? 'groups',
  });
}

/**
 * GITHUB_URL (default https://github.com/) and GITHUB_API_URL (default https://api.github.com/ for
 * github.com, else GITHUB_URL + api/v3/, GitHub Enterprise Server's layout), each ending in "/".
 */
function githubUrls(
  e: z.infer<typeof schema>,
  url: (name: string, value: string | undefined) => URL | undefined,
  problems: string[],
): { url: URL; apiUrl: URL } | undefined {
  if (e.OIDC_ISSUER)
    problems.push(
      'OIDC_ISSUER: not used with PROVIDER=github (set GITHUB_URL for GitHub Enterprise Server)',
    );
  const withSlash = (u: URL | undefined) =>
    u && new URL(u.href.endsWith('/') ? u.href : `${u.href}/`);
  const web = withSlash(url('GITHUB_URL', e.GITHUB_URL ?? 'https://github.com/'));
  if (!web) return undefined;
  const defaultApi =
    web.hostname === 'github.com' ? 'https://api.github.com/' : new URL('api/v3/', web).href;
  const api = withSlash(url('GITHUB_API_URL', e.GITHUB_API_URL ?? defaultApi));
  return api && { url: web, apiUrl: api };
}

/** The names Express (proxy-addr) expands to address ranges; it matches them case-sensitively. */
const TRUST_PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Express `trust proxy`: a hop count, false, or a list of addresses, subnets and named ranges.
 * `true` is refused: it trusts every hop, so the client's own X-Forwarded-For decides
 * `req.ip`, and any client could pick a fresh address for each request and escape the
 * per-address sign-in rate limits. The list is checked here because Express would otherwise
 * throw on a bad entry only when the app is built, and without naming the variable.
 */
function parseTrustProxy(value: string | undefined, problems: string[]): Config['trustProxy'] {
  if (value === undefined) return undefined;
  if (value.toLowerCase() === 'false') return false;
  if (value.toLowerCase() === 'true') {
    problems.push(
      `TRUST_PROXY: ${JSON.stringify(value)} trusts every hop, so any client could choose its own address with X-Forwarded-For (and escape rate limits); give the number of proxies in front of codeflow (e.g. 1) or their addresses/subnets`,
    );
    return undefined;
  }
  if (/^\d+$/.test(value)) return Number(value);
  const entries = value.split(',').map((entry) => entry.trim());
  const bad = entries.filter((entry) => !TRUST_PROXY_NAMES.has(entry) && !isAddressOrSubnet(entry));
  if (bad.length > 0) {
    problems.push(
      `TRUST_PROXY: not a hop count, an IP address or subnet, or one of ${[...TRUST_PROXY_NAMES].join(', ')}: ${bad.map((entry) => JSON.stringify(entry)).join(', ')}`,
    );
    return undefined;
  }
  return entries.join(',');
}

/** `10.0.0.1`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `fc00::/7`: what proxy-addr accepts. */
function isAddressOrSubnet(entry: string): boolean {
  const [address = '', range, ...extra] = entry.split('/');
  const version = isIP(address);
  if (version === 0 || extra.length > 0) return false;
  if (range === undefined) return true;
  const bits = version === 4 ? 32 : 128;
  if (/^\d+$/.test(range)) return Number(range) >= 1 && Number(range) <= bits;
  // IPv4 subnets may also be written as a netmask: ones, then zeros.
  if (version !== 4 || !isIPv4(range)) return false;
  const mask = range
    .split('.')
    .map((octet) => Number(octet).toString(2).padStart(8, '0'))
    .join('');
  return /^1+0*$/.test(mask);
}
