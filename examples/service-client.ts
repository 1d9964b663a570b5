/**
 * A client-credentials token client: for code that calls an API as itself, with no person
 * involved (a job, a worker, another backend). RFC 6749 §4.4: the client authenticates at the token
 * endpoint with its own credentials and gets an access token; there is no sign-in, no refresh
 * token and no ID token. When the token is due, it asks again.
 *
 *   npm start                  (in another terminal: codeflow and its embedded provider)
 *   npm run example:service    (the embedded provider's demo service client; or set SERVICE_*)
 */
import { pathToFileURL } from 'node:url';
import * as client from 'openid-client';

export interface ServiceSettings {
  issuer: URL;
  clientId: string;
  clientSecret: string;
  apiUrl: URL;
  /** Space-separated scopes to ask for; undefined: none (the provider's default). */
  scope: string | undefined;
}

/** All of these, or none (then DEMO_SETTINGS). SERVICE_SCOPE is optional. */
const NEEDED = ['SERVICE_ISSUER', 'SERVICE_CLIENT_ID', 'SERVICE_CLIENT_SECRET', 'SERVICE_API_URL'];

/**
 * The embedded provider's demo service client under `npm start`'s defaults (PORT 3000, the
 * provider on PORT + 1). Its secret is published like the demo passwords: development only.
 */
export const DEMO_SETTINGS: Readonly<ServiceSettings> = Object.freeze({
  issuer: new URL('http://localhost:3001'),
  clientId: 'codeflow-service',
  clientSecret: 'codeflow-service-demo-secret',
  apiUrl: new URL('http://localhost:3001/api/me'),
  scope: 'api:read',
});

/**
 * The settings from the environment.
 * @throws Error naming every missing variable when only some are set, or one that is not a URL.
 */
export function serviceSettings(env: Record<string, string | undefined>): ServiceSettings {
  if (![...NEEDED, 'SERVICE_SCOPE'].some((name) => env[name])) return { ...DEMO_SETTINGS };
  const missing = NEEDED.filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new Error(`service client: ${missing.join(', ')} not set (set all, or none)`);
  }
  const url = (name: string) => {
    if (!URL.canParse(env[name]!)) throw new Error(`service client: ${name} is not a URL`);
    return new URL(env[name]!);
  };
  return {
    issuer: url('SERVICE_ISSUER'),
    clientId: env.SERVICE_CLIENT_ID!,
    clientSecret: env.SERVICE_CLIENT_SECRET!,
    apiUrl: url('SERVICE_API_URL'),
    scope: env.SERVICE_SCOPE || undefined,
  };
}

/**
 * When a token is due for renewal, in epoch seconds: 30 s before it expires, or at 80 % of its
 * lifetime when that is later (a token shorter than 150 s), so it never expires in flight and a
 * short one is not renewed on every call. No `expires_in` (only RECOMMENDED): kept until a 401.
 */
export function renewalTime(askedAt: number, expiresIn: number | undefined): number {
  if (expiresIn === undefined) return Infinity;
  return askedAt + expiresIn - Math.min(30, expiresIn * 0.2);
}

interface CachedToken {
  value: string;
  renewAt: number;
}

export class ServiceClient {
  #configuration: Promise<client.Configuration> | undefined;
  #token: CachedToken | undefined;
  #renewal: Promise<CachedToken> | undefined;

  /**
   * @param options.fetch every HTTP request goes through it: discovery, token, API. Node's global
   *   fetch keeps connections alive (undici's global Agent pools them per origin): no Agent needed.
   * @param options.now the clock, in epoch seconds.
   */
  constructor(
    readonly settings: ServiceSettings,
    private readonly options: { fetch?: client.CustomFetch; now?: () => number } = {},
  ) {}

  #now(): number {
    return this.options.now?.() ?? Date.now() / 1000;
  }

  /**
   * GETs a URL of the API as this service, the token in the Authorization header (RFC 6750 §2.1).
   * A 401 means the token was revoked or expired early: one new token and one retry, never a loop.
   * @throws Error when the API refuses the new token too (its audience or scope: configuration).
   */
  async get(url: URL = this.settings.apiUrl): Promise<Response> {
    const token = await this.#freshToken();
    const first = await this.#send(url, token);
    if (first.status !== 401) return first;
    await first.body?.cancel();
    const second = await this.#send(url, await this.#freshToken(token));
    if (second.status !== 401) return second;
    await second.body?.cancel();
    const challenge = second.headers.get('www-authenticate');
    throw new Error(`service client: ${url.href} refused a new token: ${challenge}`);
  }

  /** The cached token unless it is due or was just `rejected`; else the one renewal in flight. */
  #freshToken(rejected?: CachedToken): Promise<CachedToken> {
    const token = this.#token;
    if (token && token !== rejected && this.#now() < token.renewAt) return Promise.resolve(token);
    // Concurrent callers share one token request; a failed one is forgotten: the next call asks.
    this.#renewal ??= this.#requestToken().finally(() => (this.#renewal = undefined));
    return this.#renewal;
  }

  async #requestToken(): Promise<CachedToken> {
    const config = await this.#discover();
    const askedAt = this.#now();
    const { scope } = this.settings;
    const response = await client.clientCredentialsGrant(config, scope ? { scope } : {});
    this.#token = {
      value: response.access_token,
      renewAt: renewalTime(askedAt, response.expiresIn()),
    };
    return this.#token;
  }

  async #send(url: URL, token: CachedToken): Promise<Response> {
    try {
      return await client.fetchProtectedResource(await this.#discover(), token.value, url, 'GET');
    } catch (err) {
      // A 401 or 403 with a Bearer challenge arrives as an error that holds the response.
      if (err instanceof client.WWWAuthenticateChallengeError) return err.response;
      throw err;
    }
  }

  /** Discovery once (a failure is forgotten), then one Configuration for every request. */
  #discover(): Promise<client.Configuration> {
    const { issuer, clientId, clientSecret } = this.settings;
    const local = ['localhost', '127.0.0.1', '[::1]'].includes(issuer.hostname);
    this.#configuration ??= client
      .discovery(issuer, clientId, undefined, client.ClientSecretBasic(clientSecret), {
        // Plain http only to a provider on this machine (the embedded one), never across a network.
        execute: local ? [client.allowInsecureRequests] : [],
        [client.customFetch]: this.options.fetch ?? ((url, init) => fetch(url, init)),
      })
      .catch((err: unknown) => {
        this.#configuration = undefined;
        throw err;
      });
    return this.#configuration;
  }
}

/** `npm run example:service`: three calls, one token. What the API said is printed, never the token. */
async function main(): Promise<void> {
  const service = new ServiceClient(serviceSettings(process.env));
  const { clientId, issuer, apiUrl } = service.settings;
  console.log(`${clientId} at ${issuer.origin}, calling ${apiUrl.href}`);
  for (let call = 1; call <= 3; call++) {
    const response = await service.get();
    console.log(`call ${call}: ${response.status}`, await response.json());
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    const { message, cause } = err instanceof Error ? err : new Error(String(err));
    console.error(message, cause instanceof Error ? `(${cause.message})` : '');
    process.exitCode = 1;
  });
}
