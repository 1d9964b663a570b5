import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  OAuth2Issuer,
  OAuth2Service,
  type MutableResponse,
  type MutableToken,
  type TokenRequestIncomingMessage,
} from 'oauth2-mock-server';

/** One request as oauth2-mock-server received it. */
export interface MockServerRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  /** The form body: the token endpoint's as the mock parsed it, the others' as read here. */
  form: Record<string, string>;
  /** The token endpoint's answer (with the tokens it issued). */
  answer?: Record<string, unknown>;
  status?: number;
}

/** oauth2-mock-server (axa-group), a provider nobody here wrote, on a free 127.0.0.1 port. */
export interface OAuth2MockServer {
  /** Exactly the `issuer` of its discovery document. */
  issuer: string;
  service: OAuth2Service;
  /** Every request it received, in order. */
  requests: MockServerRequest[];
  /** Claims written over every ID token it signs (its beforeTokenSigning hook). */
  idTokenClaims: Record<string, unknown>;
  /** What its userinfo endpoint answers (its beforeUserinfo hook). */
  userinfo: Record<string, unknown>;
  close(): Promise<void>;
}

export async function startOAuth2MockServer(): Promise<OAuth2MockServer> {
  const issuer = new OAuth2Issuer();
  await issuer.keys.generate('RS256');
  const service = new OAuth2Service(issuer);
  const requests: MockServerRequest[] = [];
  const byRequest = new WeakMap<IncomingMessage, MockServerRequest>();

  // Our own listener in front of the mock's handler, to record every request. (Its OAuth2Server
  // would also name itself http://localhost:<port> when listening on 127.0.0.1, and codeflow
  // compares the issuer exactly.)
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const seen: MockServerRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      authorization: req.headers.authorization,
      form: {},
    };
    requests.push(seen);
    byRequest.set(req, seen);
    res.on('finish', () => (seen.status = res.statusCode));
    // The mock parses only the token endpoint's body (recorded by beforeResponse below).
    if (url.pathname === '/token') return service.requestHandler(req, res);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      service.requestHandler(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const mock: OAuth2MockServer = {
    issuer: issuer.url,
    service,
    requests,
    idTokenClaims: {},
    userinfo: {},
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  // The hook sees the access token too: the mock gives it a `scope`, and the ID token none.
  service.on('beforeTokenSigning', (token: MutableToken) => {
    if (!('scope' in token.payload)) Object.assign(token.payload, mock.idTokenClaims);
  });
  service.on('beforeResponse', (response: MutableResponse, req: TokenRequestIncomingMessage) => {
    const seen = byRequest.get(req);
    if (!seen) return;
    seen.form = { ...(req.body as unknown as Record<string, string>) };
    if (response.body !== '') seen.answer = { ...response.body };
  });
  service.on('beforeUserinfo', (response: MutableResponse) => {
    response.body = { ...mock.userinfo };
  });
  return mock;
}
