/**
 * Child process: the baseline. Express 5 and express-session (MemoryStore) with codeflow's cookie
 * settings, and nothing else: no OAuth, no logging, no helmet, no sealing. It does the same work
 * as codeflow's pages with a fixed user and a fixed token: /me answers the user as JSON, /dashboard
 * calls the same API and renders the same template. codeflow's figures are read as ratios against
 * this app's, measured in the same run.
 *
 * Env: PORT, SESSION_SECRET, API_URL (the demo API), ACCESS_TOKEN (valid for the whole run), ISSUER.
 */
import { fileURLToPath } from 'node:url';
import express from 'express';
import session from 'express-session';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`bare app: ${name} is not set`);
  return value;
}

interface BareUser {
  iss: string;
  sub: string;
  name: string;
  email: string;
}

declare module 'express-session' {
  interface SessionData {
    bareUser: BareUser;
  }
}

const apiUrl = required('API_URL');
const accessToken = required('ACCESS_TOKEN');
const user: BareUser = {
  iss: required('ISSUER'),
  sub: 'alice',
  name: 'Alice Liddell',
  email: 'alice@example.com',
};

const app = express();
app.disable('x-powered-by');
// codeflow's own templates, compiled once as codeflow compiles them.
app.set('view engine', 'ejs');
app.set('views', fileURLToPath(new URL('../views', import.meta.url)));
app.set('view cache', true);
app.use(
  session({
    name: 'bare.sid',
    secret: required('SESSION_SECRET'),
    saveUninitialized: false,
    resave: false,
    // As codeflow: the cookie is sent when the session changes, not on every answer.
    rolling: false,
    cookie: { httpOnly: true, sameSite: 'lax', secure: false, path: '/', maxAge: 8 * 3600_000 },
  }),
);

app.get('/sign-in', (req, res) => {
  req.session.bareUser = user;
  res.json(user);
});

app.get('/me', (req, res) => {
  const signedIn = req.session.bareUser;
  if (!signedIn) return void res.status(401).json({ error: 'unauthenticated' });
  res.json(signedIn);
});

app.get('/dashboard', async (req, res) => {
  const signedIn = req.session.bareUser;
  if (!signedIn) return void res.status(401).json({ error: 'unauthenticated' });
  const api = await fetch(apiUrl, {
    headers: { authorization: `Bearer ${accessToken}` },
    signal: AbortSignal.timeout(5000),
  });
  const body: unknown = await api.json().catch(() => null);
  // Not 200 when the API refused: the bench counts non-2xx answers and fails on any.
  res.status(api.ok ? 200 : 502).render('dashboard', {
    user: signedIn,
    // The same facts codeflow shows, fixed: the page is as long as codeflow's.
    tokens: {
      expiresAt: Math.floor(Date.now() / 1000) + 300,
      expiresInSeconds: 300,
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      hasRefreshToken: true,
    },
    refresh: { count: 1, lastAt: Math.floor(Date.now() / 1000), rotated: true },
    // As codeflow's page with OIDC_DPOP=off, what the bench runs: bearer tokens, no key.
    binding: undefined,
    api: { status: api.status, ok: api.ok, body },
    apiUrl,
    csrfToken: 'bare',
    revocable: true,
    // The panel as codeflow shows it after a sign-in and many views: its steps, fixed.
    flow: FIXED_FLOW,
    flowHidden: 40,
  });
});

/** A sign-in's four steps and five API calls, the size of codeflow's own (see src/auth/flow-events.ts). */
const at = Date.now();
const FIXED_FLOW = [
  {
    step: 'authorize',
    at,
    request: {
      redirect_uri: 'http://127.0.0.1:3000/callback',
      scope: 'openid profile email offline_access',
      state: 'abcdef… (43 characters)',
      nonce: 'abcdef… (43 characters)',
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'S256',
      prompt: 'consent',
      client_id: 'codeflow-dev',
      response_type: 'code',
    },
  },
  {
    step: 'callback',
    at,
    atProviderSeconds: 1,
    received: ['code', 'iss', 'state'],
    codeLength: 43,
    iss: { sent: 'http://127.0.0.1:3001', expected: true, matched: true },
  },
  {
    step: 'token',
    at,
    ms: 20,
    tokenType: 'Bearer',
    expiresIn: 300,
    scope: 'openid profile email offline_access',
    tokens: ['access_token', 'id_token', 'refresh_token'],
  },
  {
    step: 'id_token',
    at,
    header: { alg: 'RS256', kid: '65f9aeaacd233ed1' },
    claims: {
      sub: 'alice',
      acr: 'urn:codeflow:dev:password',
      amr: ['pwd'],
      nonce: 'abcdef… (43 characters)',
      sid: 'x'.repeat(43),
      aud: 'codeflow-dev',
      exp: Math.floor(at / 1000) + 3600,
      iat: Math.floor(at / 1000),
      iss: 'http://127.0.0.1:3001',
    },
    checks: ['signature', 'iss', 'aud', 'azp', 'exp', 'iat', 'nonce'].map((name) => ({
      name,
      detail: `${name} checked against what this sign-in expects`,
    })),
  },
  ...Array.from({ length: 5 }, () => ({
    step: 'api',
    at,
    ms: 5,
    status: 200,
    attempts: 1,
    url: 'http://127.0.0.1:3001/api/me',
  })),
];

app.listen(Number(required('PORT')), '127.0.0.1');

// Exit on SIGTERM like codeflow does, so that --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
