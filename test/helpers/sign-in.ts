import type supertest from 'supertest';
import type { Harness } from './harness.js';

type Agent = ReturnType<typeof supertest.agent>;

/** A demo account's credentials; `code` is its one-time code, which a step-up asks for. */
export interface Account {
  login: string;
  password: string;
  code?: string;
}

export interface SignInSteps {
  /** The authorization request /login redirected to. */
  authorizationUrl: URL;
  /** The URL the provider sent the browser back to (code, state, iss). */
  callbackUrl: URL;
}

/** The authorization request for a new sign-in: GET /login, expecting a redirect to the provider. */
export async function startLogin(app: Agent, query = ''): Promise<URL> {
  const res = await app.get(`/login${query}`).expect(302);
  return new URL(res.headers.location as string);
}

/**
 * Plays the person at the embedded provider: follows its redirects, fills in the login form and
 * allows the consent, until the provider redirects back to the app. Bounded: at most 12 hops.
 */
export async function authorizeAtProvider(
  h: Harness,
  provider: Agent,
  authorizationUrl: URL,
  account: Account = { login: 'alice', password: 'alice-password' },
): Promise<URL> {
  let next = authorizationUrl.pathname + authorizationUrl.search;
  for (let hop = 0; hop < 12; hop++) {
    const res = await provider.get(next);
    if (res.status === 200) {
      const html = res.text;
      const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
      if (!action)
        throw new Error(`provider page without a form at ${next}:\n${html.slice(0, 500)}`);
      const post = action.endsWith('/login')
        ? provider.post(action).type('form').send(account)
        : provider.post(action).type('form').send({});
      const answer = await post;
      if (answer.status !== 303 && answer.status !== 302) {
        throw new Error(
          `provider form ${action} answered ${answer.status}: ${answer.text.slice(0, 300)}`,
        );
      }
      next = answer.headers.location as string;
    } else if (res.status === 302 || res.status === 303) {
      next = res.headers.location as string;
    } else {
      throw new Error(`provider answered ${res.status} at ${next}: ${res.text.slice(0, 300)}`);
    }
    if (next.startsWith(h.baseUrl)) return new URL(next);
    if (/^https?:/.test(next)) next = new URL(next).pathname + new URL(next).search;
  }
  throw new Error('too many provider redirects');
}

/** Follows the provider's redirects from `path` until it sends the browser back to the app (≤ 8 hops). */
export async function followToApp(h: Harness, provider: Agent, path: string): Promise<URL> {
  let next = path;
  for (let hop = 0; hop < 8; hop++) {
    if (next.startsWith(h.baseUrl)) return new URL(next);
    const url = new URL(next, h.runtime.devProvider!.issuer);
    const res = await provider.get(url.pathname + url.search);
    if (res.status !== 302 && res.status !== 303)
      throw new Error(`provider answered ${res.status} at ${next}`);
    next = res.headers.location as string;
  }
  throw new Error('too many provider redirects');
}

/** A whole sign-in: /login, the provider's pages, /callback. Returns the callback's response too. */
export async function signIn(
  h: Harness,
  app: Agent,
  options: { query?: string; account?: Account; provider?: Agent } = {},
): Promise<SignInSteps & { response: supertest.Response }> {
  const authorizationUrl = await startLogin(app, options.query);
  const callbackUrl = await authorizeAtProvider(
    h,
    options.provider ?? h.providerAgent(),
    authorizationUrl,
    options.account,
  );
  const response = await app.get(callbackUrl.pathname + callbackUrl.search);
  return { authorizationUrl, callbackUrl, response };
}

/** The sign-out page's form to the provider's end-session endpoint: where it posts, and what. */
export function endSessionForm(html: string): { action: URL; fields: Record<string, string> } {
  const form = /<form method="post" action="([^"]+)" id="end-session">([\s\S]*?)<\/form>/.exec(
    html,
  );
  if (!form) throw new Error(`no end-session form in the page:\n${html.slice(0, 500)}`);
  const fields: Record<string, string> = {};
  for (const [, name, value] of form[2]!.matchAll(/name="([^"]+)" value="([^"]*)"/g))
    fields[name!] = value!;
  return { action: new URL(unescapeHtml(form[1]!)), fields };
}

function unescapeHtml(value: string): string {
  return value
    .replace(/&amp;/g, '&')
    .replace(/&#34;|&quot;/g, '"')
    .replace(/&#39;/g, "'");
}
