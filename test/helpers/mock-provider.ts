/**
 * A deliberately misbehaving OpenID Provider plus a protected API, for negative tests.
 *
 * With an empty `behaviour` it is a small, correct provider: authorization code + PKCE (S256),
 * client_secret_basic, RS256 ID tokens, rotating refresh tokens with reuse detection, userinfo,
 * revocation and RP-initiated logout. Every field of {@link MockBehaviour} turns one thing wrong,
 * so each field doubles as documentation of an attack or a failure the client must survive.
 *
 * There is no login UI: GET /authorize signs in `behaviour.sub` at once and redirects back.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import express, { type Request, type Response } from 'express';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

/** One request as the mock received it (recorded before any behaviour applies). */
export interface MockRequest {
  method: string;
  path: string;
  /** Query parameters; for a repeated name, the first value. */
  query: Record<string, string>;
  /** Form body parameters (empty for other bodies); for a repeated name, the first value. */
  body: Record<string, string>;
  authorization: string | undefined;
  /** The DPoP proof header (RFC 9449), if the request carried one. */
  dpop: string | undefined;
}

/**
 * What the token endpoint does instead of (or before) its normal work. Scripted outcomes are
 * applied after client authentication and before the grant is looked at, so a scripted failure
 * consumes nothing: the code or refresh token stays usable.
 */
export type MockTokenOutcome =
  /** Normal behaviour. */
  | 'ok'
  /** 400 `{ error: 'invalid_grant' }`, as for an expired or revoked grant. */
  | 'invalid_grant'
  /** 500 with an HTML page (a proxy or framework error page), not JSON. */
  | 'server_error_html'
  /** Never answers; the socket is destroyed by close(). */
  | 'hang'
  /** 503 `{ error: 'temporarily_unavailable' }`. */
  | 'temporarily_unavailable'
  /** Answers normally after a delay. */
  | { delayMs: number };

/** ID token tampering, for both the code and the refresh grant unless noted. */
export interface MockIdTokenTampering {
  /** Wrong issuer (mix-up, or a token from another provider). */
  iss?: string;
  /** Wrong audience: a token minted for another client (token substitution). */
  aud?: string | string[];
  /** Adds an `azp` claim (e.g. another client, with a multi-valued `aud`). */
  azp?: string;
  /** Another subject than the one who signed in (account substitution). */
  sub?: string;
  /** Replaces the nonce (replayed or injected token); `null` omits the claim. */
  nonce?: string | null;
  /** Absolute expiry, epoch seconds (e.g. in the past). */
  exp?: number;
  /** Absolute issued-at, epoch seconds (e.g. in the future). */
  iat?: number;
  /**
   * `'none'`: an unsigned JWT `header.payload.` (signature stripping).
   * `'HS256'`: signed with the client secret (algorithm confusion / unexpected alg).
   */
  alg?: 'none' | 'HS256' | 'RS256';
  /** Signs with a key the JWKS does not publish, still under the current kid (forgery). */
  signWithOtherKey?: boolean;
  /** Replaces the `kid` header (e.g. an unknown kid, forcing a JWKS refetch); `null` omits it. */
  kid?: string | null;
  /** No `id_token` in the token response at all. */
  omit?: boolean;
  /** Claims deleted after every other change (e.g. `['exp']`, `['sub']`, `['iat']`). */
  removeClaims?: string[];
  /**
   * Claims merged over the usual ones (name, email, ...) before any other change, e.g.
   * `{ email_verified: 'true', groups: ['admins'] }`.
   */
  extraClaims?: Record<string, unknown>;
}

/** One scripted answer of the protected API. */
export interface MockApiAnswer {
  status: number;
  headers?: Record<string, string>;
  /** A string or Buffer is sent as is (text/plain unless headers say otherwise); other values as JSON; undefined: no body. */
  body?: unknown;
  /** Waits this long before answering. */
  delayMs?: number;
}

/**
 * How the mock misbehaves. Every field is optional; an absent field means correct behaviour.
 * Tests mutate this object directly between steps; the mock reads it on every request.
 */
export interface MockBehaviour {
  /** The subject signed in by GET /authorize. Default `'user-1'`. */
  sub?: string;
  /** Lifetime of new access tokens in seconds, against the real clock. Default 300; 0 = already expired. */
  accessTokenTtl?: number;

  /** Tampers with every ID token issued (see {@link MockIdTokenTampering}). */
  idToken?: MockIdTokenTampering;
  /** ID tokens from the refresh grant carry this sub (the account changed under the session). Wins over `idToken.sub`. */
  refreshIdTokenSub?: string;

  /** Token responses without `expires_in`. */
  omitExpiresIn?: boolean;
  /** Refresh responses without `refresh_token`: no rotation, the old refresh token stays valid. */
  omitRefreshTokenOnRefresh?: boolean;
  /** Refresh responses without `id_token`. */
  omitIdTokenOnRefresh?: boolean;
  /** Replaces `token_type` (e.g. `'BEARER'`, or `'mac'`). */
  tokenType?: string;

  /** Scripted token endpoint outcome, for both grants. */
  token?: MockTokenOutcome;
  /** Scripted outcome for `grant_type=refresh_token` only; wins over `token`. */
  refreshToken?: MockTokenOutcome;
  /**
   * A DPoP nonce that is never good enough (RFC 9449 §8): discovery advertises
   * `dpop_signing_alg_values_supported: ['ES256']`, and the token endpoint answers every request
   * 400 `{ error: 'use_dpop_nonce' }` with a fresh `DPoP-Nonce` header, whatever nonce the proof
   * carries. A client that retries each nonce challenge would loop for ever. Consumes nothing.
   */
  dpopNonceAlways?: boolean;

  /** Authorization response tampering. */
  authorize?: {
    /** The `iss` parameter sent back (mix-up attack); `null` omits it. */
    iss?: string | null;
    /** Redirects back with `error=<this>` (plus error_description and state) instead of a code. */
    error?: string;
  };

  /** Merged over the discovery document (e.g. `{ issuer: 'http://other' }`). */
  metadata?: Record<string, unknown>;
  /** `'down'`: discovery answers 503. */
  discovery?: 'ok' | 'down';
  /** JWKS answers only after this delay. */
  jwksDelayMs?: number;

  /** Userinfo tampering. */
  userinfo?: {
    /** Userinfo answers for another subject than the access token's (token substitution). */
    sub?: string;
  };

  /** Queue of scripted API answers: each API request shifts one, whatever its token. */
  api?: MockApiAnswer[];
  /** Answer to every API request once `api` is empty. */
  apiAlways?: Omit<MockApiAnswer, 'delayMs'>;
}

export interface MockProvider {
  /** E.g. `http://127.0.0.1:PORT` (no trailing slash). */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** `${issuer}/api/resource` */
  apiUrl: string;
  /** Every request received, in order (all endpoints). */
  requests: MockRequest[];
  /** Tests mutate this object directly between steps. */
  behaviour: MockBehaviour;
  /** TCP connections accepted by the server. */
  connections: number;
  /** Every secret issued, so tests can search logs and pages for them. */
  issued: { accessTokens: string[]; refreshTokens: string[]; idTokens: string[]; codes: string[] };
  /** Refresh-token families (grants) revoked, by reuse detection or by POST /revoke. */
  revokedGrants: number;
  /** A new RSA key with a new kid; the JWKS then publishes only the new key. */
  rotateSigningKey(): Promise<void>;
  /**
   * A logout token (Back-Channel Logout 1.0 §2.4) signed like the ID tokens: `claims` are merged
   * over iss, aud, iat (now), jti (random) and the back-channel logout event; a claim set to
   * `undefined` is left out. `alg`, `otherKey` and `kid` tamper as {@link MockIdTokenTampering}
   * does; `typ` defaults to `logout+jwt`, `null` omits it.
   */
  logoutToken(
    claims: Record<string, unknown>,
    options?: {
      alg?: 'none' | 'HS256' | 'RS256';
      otherKey?: boolean;
      typ?: string | null;
      kid?: string | null;
    },
  ): Promise<string>;
  /** Ends hanging and delayed requests, destroys every socket and stops listening. Idempotent. */
  close(): Promise<void>;
  /** Clears `requests` and `behaviour` (in place); keeps keys, issued tokens and their state. */
  reset(): void;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

interface PendingCode {
  used: boolean;
  sub: string;
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
  scope: string;
  redirectUri: string;
}

/** A grant: the refresh tokens and access tokens descending from one authorization code. */
interface Family {
  sub: string;
  scope: string;
  revoked: boolean;
}

const ENDPOINTS = {
  discovery: '/.well-known/openid-configuration',
  authorize: '/authorize',
  token: '/token',
  jwks: '/jwks',
  userinfo: '/userinfo',
  revoke: '/revoke',
  logout: '/logout',
  api: '/api/resource',
} as const;

const INVALID_TOKEN = 'Bearer error="invalid_token"';
const secret = () => randomBytes(32).toString('base64url');
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function newSigningKey(kid: string = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicJwk };
}

/** First string value per name, from a parsed query or urlencoded body. */
function flatten(params: unknown): Record<string, string> {
  if (params === null || typeof params !== 'object') return {};
  const entries: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(params)) {
    const first: unknown = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') entries.push([name, first]);
  }
  return Object.fromEntries(entries);
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and base64-encoded. */
function basicCredentials(header: string | undefined): { id: string[]; secret: string[] } | null {
  const match = /^Basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  const both = (raw: string) => {
    try {
      return [raw, decodeURIComponent(raw.replace(/\+/g, ' '))];
    } catch {
      return [raw];
    }
  };
  return { id: both(decoded.slice(0, colon)), secret: both(decoded.slice(colon + 1)) };
}

function bearer(req: Request): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')?.[1];
}

export async function startMockProvider(options: {
  redirectUri: string;
  postLogoutRedirectUri: string;
}): Promise<MockProvider> {
  let signingKey = await newSigningKey();
  let otherKey: SigningKey | undefined; // generated on first use: never published
  const codes = new Map<string, PendingCode>();
  const families = new Map<string, Family>();
  const refreshTokens = new Map<string, { familyId: string; consumed: boolean }>();
  const accessTokens = new Map<string, { familyId: string; expiresAt: number; revoked: boolean }>();
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();
  let served = 0;
  let closing: Promise<void> | undefined;

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const mock: MockProvider = {
    issuer,
    clientId: 'mock-client',
    clientSecret: secret(),
    apiUrl: `${issuer}${ENDPOINTS.api}`,
    requests: [],
    behaviour: {},
    connections: 0,
    issued: { accessTokens: [], refreshTokens: [], idTokens: [], codes: [] },
    revokedGrants: 0,
    rotateSigningKey: async () => {
      signingKey = await newSigningKey();
    },
    logoutToken: (claims, options = {}) => {
      const all: Record<string, unknown> = {
        iss: issuer,
        aud: mock.clientId,
        iat: Math.floor(Date.now() / 1000),
        jti: randomUUID(),
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
        ...claims,
      };
      for (const [name, value] of Object.entries(all)) if (value === undefined) delete all[name];
      const typ = options.typ === null ? undefined : (options.typ ?? 'logout+jwt');
      return signJwt(
        all,
        { alg: options.alg, kid: options.kid, signWithOtherKey: options.otherKey },
        typ,
      );
    },
    close: () => (closing ??= close()),
    reset: () => {
      mock.requests.length = 0;
      for (const key of Object.keys(mock.behaviour))
        delete mock.behaviour[key as keyof MockBehaviour];
    },
  };

  server.on('connection', (socket: Socket) => {
    mock.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function close(): Promise<void> {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    for (const res of hanging) res.destroy();
    hanging.clear();
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** A delay that close() cancels (the waiting handler then simply never resumes). */
  function wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });
  }

  function hang(res: Response): void {
    hanging.add(res);
    res.on('close', () => hanging.delete(res));
  }

  function validAccessToken(req: Request): { sub: string } | undefined {
    const token = bearer(req);
    const entry = token === undefined ? undefined : accessTokens.get(token);
    if (!entry || entry.revoked || Date.now() >= entry.expiresAt) return undefined;
    const family = families.get(entry.familyId);
    if (!family || family.revoked) return undefined;
    return { sub: family.sub };
  }

  function revokeFamily(familyId: string): void {
    const family = families.get(familyId);
    if (!family || family.revoked) return;
    family.revoked = true;
    mock.revokedGrants++;
  }

  /** RFC 6749 §5.2: invalid_client, with the challenge for the scheme we accept. */
  function rejectClient(res: Response): void {
    res.status(401).set('WWW-Authenticate', 'Basic realm="mock"').json({ error: 'invalid_client' });
  }

  function clientAuthenticated(req: Request): boolean {
    const credentials = basicCredentials(req.get('authorization'));
    return (
      credentials !== null &&
      credentials.id.includes(mock.clientId) &&
      credentials.secret.includes(mock.clientSecret)
    );
  }

  async function signIdToken(claims: Record<string, unknown>): Promise<string> {
    return signJwt(claims, mock.behaviour.idToken ?? {});
  }

  /** Signs with the current key, or as `tampering` says; `typ` goes in the header when given. */
  async function signJwt(
    claims: Record<string, unknown>,
    tampering: Pick<MockIdTokenTampering, 'alg' | 'kid' | 'signWithOtherKey'>,
    typ?: string,
  ): Promise<string> {
    const alg = tampering.alg ?? 'RS256';
    const header: { alg: string; kid?: string; typ?: string } = { alg };
    if (alg === 'RS256') header.kid = signingKey.kid;
    if (tampering.kid === null) delete header.kid;
    else if (tampering.kid !== undefined) header.kid = tampering.kid;
    if (typ !== undefined) header.typ = typ;

    if (alg === 'none') return `${b64url(header)}.${b64url(claims)}.`;
    const jwt = new SignJWT(claims).setProtectedHeader(header);
    if (alg === 'HS256') return jwt.sign(new TextEncoder().encode(mock.clientSecret));
    if (tampering.signWithOtherKey) {
      otherKey ??= await newSigningKey('never-published');
      return jwt.sign(otherKey.privateKey);
    }
    return jwt.sign(signingKey.privateKey);
  }

  async function idTokenFor(
    grant: 'authorization_code' | 'refresh_token',
    sub: string,
    nonce: string | undefined,
  ): Promise<string | undefined> {
    const b = mock.behaviour;
    const tampering = b.idToken ?? {};
    if (tampering.omit || (grant === 'refresh_token' && b.omitIdTokenOnRefresh)) return undefined;
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: issuer,
      sub,
      aud: mock.clientId,
      iat: now,
      exp: now + 3600,
      name: 'Mock User',
      email: 'user@example.com',
      ...tampering.extraClaims,
    };
    if (nonce !== undefined) claims.nonce = nonce;
    if (tampering.iss !== undefined) claims.iss = tampering.iss;
    if (tampering.aud !== undefined) claims.aud = tampering.aud;
    if (tampering.azp !== undefined) claims.azp = tampering.azp;
    if (tampering.sub !== undefined) claims.sub = tampering.sub;
    if (grant === 'refresh_token' && b.refreshIdTokenSub !== undefined) {
      claims.sub = b.refreshIdTokenSub;
    }
    if (tampering.nonce === null) delete claims.nonce;
    else if (tampering.nonce !== undefined) claims.nonce = tampering.nonce;
    if (tampering.exp !== undefined) claims.exp = tampering.exp;
    if (tampering.iat !== undefined) claims.iat = tampering.iat;
    for (const name of tampering.removeClaims ?? []) delete claims[name];
    const idToken = await signIdToken(claims);
    mock.issued.idTokens.push(idToken);
    return idToken;
  }

  function issueAccessToken(familyId: string): string {
    const token = secret();
    const ttl = mock.behaviour.accessTokenTtl ?? 300;
    accessTokens.set(token, { familyId, expiresAt: Date.now() + ttl * 1000, revoked: false });
    mock.issued.accessTokens.push(token);
    return token;
  }

  function issueRefreshToken(familyId: string): string {
    const token = secret();
    refreshTokens.set(token, { familyId, consumed: false });
    mock.issued.refreshTokens.push(token);
    return token;
  }

  function tokenResponse(
    res: Response,
    family: Family,
    tokens: { accessToken: string; refreshToken: string | undefined; idToken: string | undefined },
  ): void {
    const b = mock.behaviour;
    const body: Record<string, unknown> = {
      access_token: tokens.accessToken,
      token_type: b.tokenType ?? 'Bearer',
      expires_in: b.accessTokenTtl ?? 300,
    };
    if (b.omitExpiresIn) delete body.expires_in;
    if (tokens.refreshToken !== undefined) body.refresh_token = tokens.refreshToken;
    if (tokens.idToken !== undefined) body.id_token = tokens.idToken;
    body.scope = family.scope;
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json(body);
  }

  const invalidGrant = (res: Response, description: string) =>
    res.status(400).json({ error: 'invalid_grant', error_description: description });

  /** Applies a scripted outcome; true when it answered (or hung) instead of the real endpoint. */
  async function scripted(outcome: MockTokenOutcome | undefined, res: Response): Promise<boolean> {
    if (outcome === undefined || outcome === 'ok') return false;
    if (typeof outcome === 'object') {
      await wait(outcome.delayMs);
      return false;
    }
    switch (outcome) {
      case 'invalid_grant':
        invalidGrant(res, 'scripted by the mock');
        return true;
      case 'server_error_html':
        res
          .status(500)
          .type('html')
          .send('<!doctype html><title>500</title><h1>Internal Server Error</h1>');
        return true;
      case 'temporarily_unavailable':
        res
          .status(503)
          .json({ error: 'temporarily_unavailable', error_description: 'scripted by the mock' });
        return true;
      case 'hang':
        hang(res);
        return true;
    }
  }

  function sendApiAnswer(res: Response, answer: Omit<MockApiAnswer, 'delayMs'>): void {
    res.status(answer.status);
    if (answer.headers) res.set(answer.headers);
    if (answer.body === undefined) res.end();
    else if (typeof answer.body === 'string' || Buffer.isBuffer(answer.body)) {
      if (!res.get('content-type')) res.type('text/plain');
      res.send(answer.body);
    } else res.json(answer.body);
  }

  app.use(express.urlencoded({ extended: false }));
  app.use((req, _res, next) => {
    mock.requests.push({
      method: req.method,
      path: req.path,
      query: flatten(req.query),
      body: flatten(req.body),
      authorization: req.get('authorization'),
      dpop: req.get('dpop'),
    });
    next();
  });

  app.get(ENDPOINTS.discovery, (_req, res) => {
    if (mock.behaviour.discovery === 'down') {
      res.status(503).type('text/plain').send('discovery is down');
      return;
    }
    res.json({
      issuer,
      authorization_endpoint: `${issuer}${ENDPOINTS.authorize}`,
      token_endpoint: `${issuer}${ENDPOINTS.token}`,
      jwks_uri: `${issuer}${ENDPOINTS.jwks}`,
      userinfo_endpoint: `${issuer}${ENDPOINTS.userinfo}`,
      revocation_endpoint: `${issuer}${ENDPOINTS.revoke}`,
      end_session_endpoint: `${issuer}${ENDPOINTS.logout}`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      authorization_response_iss_parameter_supported: true,
      ...(mock.behaviour.dpopNonceAlways && { dpop_signing_alg_values_supported: ['ES256'] }),
      ...mock.behaviour.metadata,
    });
  });

  app.get(ENDPOINTS.jwks, async (_req, res) => {
    if (mock.behaviour.jwksDelayMs) await wait(mock.behaviour.jwksDelayMs);
    res.json({ keys: [signingKey.publicJwk] });
  });

  app.get(ENDPOINTS.authorize, (req, res) => {
    const q = flatten(req.query);
    if (q.client_id !== mock.clientId) {
      res.status(400).json({ error: 'invalid_client', error_description: 'unknown client_id' });
      return;
    }
    if (q.redirect_uri !== options.redirectUri) {
      res
        .status(400)
        .json({ error: 'invalid_request', error_description: 'redirect_uri is not registered' });
      return;
    }
    const b = mock.behaviour;
    const back = new URL(q.redirect_uri);
    if (b.authorize?.error !== undefined) {
      back.searchParams.set('error', b.authorize.error);
      back.searchParams.set('error_description', 'scripted by the mock');
    } else {
      const code = secret();
      codes.set(code, {
        used: false,
        sub: b.sub ?? 'user-1',
        nonce: q.nonce,
        codeChallenge: q.code_challenge,
        codeChallengeMethod: q.code_challenge_method,
        scope: q.scope ?? 'openid',
        redirectUri: q.redirect_uri,
      });
      mock.issued.codes.push(code);
      back.searchParams.set('code', code);
    }
    if (q.state !== undefined) back.searchParams.set('state', q.state);
    const iss = b.authorize?.iss === undefined ? issuer : b.authorize.iss;
    if (iss !== null) back.searchParams.set('iss', iss);
    res.redirect(302, back.href);
  });

  app.post(ENDPOINTS.token, async (req, res) => {
    if (!clientAuthenticated(req)) return void rejectClient(res);
    const form = flatten(req.body);
    const b = mock.behaviour;
    if (b.dpopNonceAlways) {
      res
        .status(400)
        .set({ 'DPoP-Nonce': secret(), 'Cache-Control': 'no-store' })
        .json({ error: 'use_dpop_nonce', error_description: 'scripted by the mock' });
      return;
    }
    const outcome = form.grant_type === 'refresh_token' ? (b.refreshToken ?? b.token) : b.token;
    if (await scripted(outcome, res)) return;

    if (form.grant_type === 'authorization_code') {
      const pending = form.code === undefined ? undefined : codes.get(form.code);
      if (!pending) return void invalidGrant(res, 'unknown code');
      if (pending.used) return void invalidGrant(res, 'code already used');
      pending.used = true; // single use, even when one of the checks below fails
      if (form.redirect_uri !== pending.redirectUri) {
        return void invalidGrant(res, 'redirect_uri does not match');
      }
      // PKCE (RFC 7636): S256 only; a verifier without a challenge is a downgrade, refused too.
      if (pending.codeChallenge !== undefined) {
        const computed =
          form.code_verifier === undefined
            ? undefined
            : createHash('sha256').update(form.code_verifier).digest('base64url');
        if (pending.codeChallengeMethod !== 'S256' || computed !== pending.codeChallenge) {
          return void invalidGrant(res, 'PKCE verification failed');
        }
      } else if (form.code_verifier !== undefined) {
        return void invalidGrant(res, 'code_verifier without code_challenge');
      }
      const familyId = randomUUID();
      const family: Family = { sub: pending.sub, scope: pending.scope, revoked: false };
      families.set(familyId, family);
      const accessToken = issueAccessToken(familyId);
      const refreshToken = issueRefreshToken(familyId);
      const idToken = await idTokenFor('authorization_code', pending.sub, pending.nonce);
      tokenResponse(res, family, { accessToken, refreshToken, idToken });
      return;
    }

    if (form.grant_type === 'refresh_token') {
      const entry =
        form.refresh_token === undefined ? undefined : refreshTokens.get(form.refresh_token);
      const family = entry && families.get(entry.familyId);
      if (!entry || !family) return void invalidGrant(res, 'unknown refresh token');
      if (family.revoked) return void invalidGrant(res, 'grant revoked');
      if (entry.consumed) {
        // Reuse of a rotated refresh token: someone else holds a copy. Kill the whole grant.
        revokeFamily(entry.familyId);
        return void invalidGrant(res, 'refresh token reuse detected');
      }
      let refreshToken: string | undefined;
      if (!b.omitRefreshTokenOnRefresh) {
        entry.consumed = true;
        refreshToken = issueRefreshToken(entry.familyId);
      }
      const accessToken = issueAccessToken(entry.familyId);
      const idToken = await idTokenFor('refresh_token', family.sub, undefined);
      tokenResponse(res, family, { accessToken, refreshToken, idToken });
      return;
    }

    res.status(400).json({ error: 'unsupported_grant_type' });
  });

  app.get(ENDPOINTS.userinfo, (req, res) => {
    const holder = validAccessToken(req);
    if (!holder) {
      res.status(401).set('WWW-Authenticate', INVALID_TOKEN).end();
      return;
    }
    res.json({
      sub: mock.behaviour.userinfo?.sub ?? holder.sub,
      name: 'Mock User',
      email: 'user@example.com',
    });
  });

  app.post(ENDPOINTS.revoke, (req, res) => {
    if (!clientAuthenticated(req)) return void rejectClient(res);
    const token = flatten(req.body).token;
    if (token === undefined) {
      res.status(400).json({ error: 'invalid_request', error_description: 'token is required' });
      return;
    }
    const refresh = refreshTokens.get(token);
    if (refresh) revokeFamily(refresh.familyId);
    const access = accessTokens.get(token);
    if (access) access.revoked = true;
    // RFC 7009 §2.2: 200 whether or not the token was known.
    res.status(200).end();
  });

  app.get(ENDPOINTS.logout, (_req, res) => {
    res.type('text/plain').send('logged out');
  });

  app.all(ENDPOINTS.api, async (req, res) => {
    const b = mock.behaviour;
    const next = b.api?.shift();
    if (next) {
      if (next.delayMs) await wait(next.delayMs);
      sendApiAnswer(res, next);
      return;
    }
    if (b.apiAlways) {
      sendApiAnswer(res, b.apiAlways);
      return;
    }
    const holder = validAccessToken(req);
    if (!holder) {
      res.status(401).set('WWW-Authenticate', INVALID_TOKEN).json({ error: 'invalid_token' });
      return;
    }
    res.json({ ok: true, sub: holder.sub, served: ++served });
  });

  return mock;
}
