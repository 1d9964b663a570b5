/**
 * A local stand-in for GitHub's OAuth and REST endpoints, as GitHub Enterprise Server lays them out
 * (`/login/oauth/*` on the host, the API under `/api/v3/`), with GitHub's quirks: a refused code
 * answers 200 with `{"error": ...}`, JSON only when asked for, no ID token, no `iss`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';

export interface GitHubEmailRow {
  email: string;
  primary: boolean;
  verified: boolean;
}

export interface GitHubStandIn {
  /** `http://127.0.0.1:PORT/`: GITHUB_URL */
  url: string;
  /** `http://127.0.0.1:PORT/api/v3/`: GITHUB_API_URL */
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  /** What /user/emails answers; tests change it between sign-ins. */
  emails: GitHubEmailRow[];
  /** Every request, in order: method, path, and the form or query it carried. */
  requests: Array<{
    method: string;
    path: string;
    params: Record<string, string>;
    authorization?: string;
  }>;
  /** Every access token issued, so tests can search pages and logs for them. */
  issued: string[];
  close(): Promise<void>;
}

export async function startGitHubStandIn(redirectUri: string): Promise<GitHubStandIn> {
  const codes = new Map<string, { challenge: string; redirectUri: string }>();
  const tokens = new Set<string>();
  const app = express();
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const gh: GitHubStandIn = {
    url: base,
    apiUrl: `${base}api/v3/`,
    clientId: 'Iv1.standin',
    clientSecret: randomBytes(20).toString('hex'),
    emails: [{ email: 'octo@example.com', primary: true, verified: true }],
    requests: [],
    issued: [],
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  app.use(express.urlencoded({ extended: false }));
  app.use((req, _res, next) => {
    const params = {
      ...(req.query as Record<string, string>),
      ...(req.body as Record<string, string>),
    };
    gh.requests.push({
      method: req.method,
      path: req.path,
      params,
      authorization: req.get('authorization'),
    });
    next();
  });

  // The person is signed in at GitHub already and has authorized the app: straight back.
  app.get('/login/oauth/authorize', (req, res) => {
    const q = req.query as Record<string, string>;
    if (q.client_id !== gh.clientId || q.redirect_uri !== redirectUri) {
      return void res.status(400).send('The redirect_uri is not associated with this application.');
    }
    const code = randomBytes(10).toString('hex');
    codes.set(code, { challenge: q.code_challenge ?? '', redirectUri: q.redirect_uri });
    const back = new URL(q.redirect_uri);
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.state ?? '');
    res.redirect(back.href);
  });

  app.post('/login/oauth/access_token', (req, res) => {
    const form = req.body as Record<string, string>;
    const basic = /^Basic (.+)$/.exec(req.get('authorization') ?? '')?.[1];
    const [id, secret] = basic
      ? Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent)
      : [form.client_id, form.client_secret];
    const answer = (body: object) =>
      req.accepts('json')
        ? res.json(body)
        : res
            .type('application/x-www-form-urlencoded')
            .send(new URLSearchParams(body as never).toString());
    if (id !== gh.clientId || secret !== gh.clientSecret) {
      return void answer({ error: 'incorrect_client_credentials' });
    }
    const grant = codes.get(form.code ?? '');
    codes.delete(form.code ?? '');
    const verifierOk =
      grant &&
      createHash('sha256')
        .update(form.code_verifier ?? '')
        .digest('base64url') === grant.challenge;
    // GitHub's way: 200, and the error in the body.
    if (!grant || !verifierOk || form.redirect_uri !== grant.redirectUri) {
      return void answer({
        error: 'bad_verification_code',
        error_description: 'The code passed is incorrect or expired.',
      });
    }
    const token = `gho_${randomBytes(18).toString('hex')}`;
    tokens.add(token);
    gh.issued.push(token);
    answer({ access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
  });

  const authorized = (req: express.Request) => {
    const [, token] = /^(?:Bearer|token) (.+)$/i.exec(req.get('authorization') ?? '') ?? [];
    return token !== undefined && tokens.has(token);
  };
  app.get('/api/v3/user', (req, res) => {
    if (!authorized(req)) return void res.status(401).json({ message: 'Bad credentials' });
    res.json({ id: 583231, login: 'octocat', name: 'The Octocat' });
  });
  app.get('/api/v3/user/emails', (req, res) => {
    if (!authorized(req)) return void res.status(401).json({ message: 'Bad credentials' });
    res.json(gh.emails);
  });
  return gh;
}
