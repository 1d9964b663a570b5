import { decodeJwt, decodeProtectedHeader } from 'jose';
import type * as client from 'openid-client';
import type { Logger } from '../log.js';
import type { FlowLog } from '../session/backend.js';

/**
 * What the "How you signed in" panel shows: each protocol step of this session, in order, with
 * the values that matter and never a token, code, verifier or secret (state and nonce are
 * shortened to their first characters; a code is only said to have come, with its length).
 */
export type FlowEvent =
  | {
      step: 'authorize';
      /** Epoch ms. */
      at: number;
      request: Record<string, string>;
      /** Pushed to the provider first (RFC 9126): the browser's URL held only client_id and request_uri. */
      pushed?: boolean;
    }
  | {
      step: 'callback';
      at: number;
      /** Seconds between the authorization request and the callback (the person at the provider). */
      atProviderSeconds: number;
      received: string[];
      codeLength: number;
      iss: { sent: string | undefined; expected: boolean; matched: boolean };
    }
  | {
      step: 'token';
      at: number;
      ms: number;
      tokenType: string;
      expiresIn: number | undefined;
      scope: string | undefined;
      tokens: string[];
      /** Decoded, not verified: a JWT access token is for the API, not for us. */
      accessTokenClaims: Record<string, unknown> | undefined;
    }
  | {
      step: 'id_token';
      at: number;
      header: Record<string, unknown>;
      claims: Record<string, unknown>;
      checks: Array<{ name: string; detail: string }>;
    }
  | {
      step: 'refresh';
      at: number;
      ms: number;
      why: 'ahead of expiry' | 'after a 401' | 'Refresh now';
      outcome: 'refreshed' | 'joined' | 'raced';
      rotated: boolean | undefined;
    }
  | { step: 'api'; at: number; ms: number; status: number; attempts: number; url: string }
  | {
      step: 'sign-out';
      at: number;
      revocation: 'in the background' | 'not possible';
      atProvider: boolean;
    };

/** First characters only: enough to recognise a value, never enough to use it. */
export function shorten(value: string | undefined): string {
  if (!value) return '';
  return `${value.slice(0, 6)}… (${value.length} characters)`;
}

/** The authorization request as sent, its secrets shortened. */
export function authorizeEvent(url: URL, at: number, pushed = false): FlowEvent {
  const request: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    request[name] = name === 'state' || name === 'nonce' ? shorten(value) : value;
  }
  return { step: 'authorize', at, request, ...(pushed && { pushed }) };
}

export function callbackEvent(
  query: Record<string, unknown>,
  startedAt: number,
  at: number,
  metadata: client.ServerMetadata,
): FlowEvent {
  const iss = typeof query.iss === 'string' ? query.iss : undefined;
  return {
    step: 'callback',
    at,
    atProviderSeconds: Math.max(0, Math.round((at - startedAt) / 1000)),
    received: Object.keys(query).sort(),
    codeLength: typeof query.code === 'string' ? query.code.length : 0,
    iss: {
      sent: iss,
      expected: metadata.authorization_response_iss_parameter_supported === true,
      matched: iss === metadata.issuer,
    },
  };
}

type Tokens = client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;

export function tokenEvent(tokens: Tokens, ms: number, at: number): FlowEvent {
  return {
    step: 'token',
    at,
    ms,
    tokenType: tokens.token_type,
    expiresIn: tokens.expires_in,
    scope: tokens.scope,
    tokens: ['access_token', 'id_token', 'refresh_token'].filter((t) => t in tokens),
    accessTokenClaims: jwtClaims(tokens.access_token),
  };
}

/** The ID token, decoded, and each check the library made on it before codeflow trusted it. */
export function idTokenEvent(
  tokens: Tokens,
  expected: { issuer: string; clientId: string; nonce: string | undefined },
  at: number,
): FlowEvent | undefined {
  if (!tokens.id_token) return undefined;
  const header = decodeProtectedHeader(tokens.id_token) as Record<string, unknown>;
  const claims = { ...decodeJwt(tokens.id_token) } as Record<string, unknown>;
  if (typeof claims.nonce === 'string') claims.nonce = shorten(claims.nonce);
  const seconds = (epoch: unknown) =>
    typeof epoch === 'number' ? new Date(epoch * 1000).toISOString() : 'absent';
  const checks = [
    {
      name: 'signature',
      detail: `${String(header.alg)} with key ${String(header.kid ?? '(no kid)')} from the provider's JWKS`,
    },
    { name: 'iss', detail: `${String(claims.iss)} is the provider's issuer` },
    { name: 'aud', detail: `holds this application's client id, ${expected.clientId}` },
    {
      name: 'azp',
      detail:
        claims.azp === undefined
          ? 'absent (one audience)'
          : `${String(claims.azp)}, this application`,
    },
    { name: 'exp', detail: `${seconds(claims.exp)}, in the future` },
    { name: 'iat', detail: `${seconds(claims.iat)}, not in the future` },
    ...(expected.nonce
      ? [{ name: 'nonce', detail: `the one this sign-in sent, ${shorten(expected.nonce)}` }]
      : []),
  ];
  return { step: 'id_token', at, header, claims, checks };
}

/** A JWT's claims, when the value is one; an opaque token has none to show. */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  if (token.split('.').length !== 3) return undefined;
  try {
    decodeProtectedHeader(token);
    return { ...decodeJwt(token) } as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export interface FlowRecorder {
  /** Appends, in the background: the panel never holds up or fails a page. */
  record(sid: string, log: Logger, ...events: FlowEvent[]): void;
  /** The session's events, oldest first; none when the store cannot say. */
  read(sid: string): Promise<FlowEvent[]>;
  /**
   * The dashboard's part: the sign-in's steps and the latest `latest` after them, and how many
   * were left out. Only those are parsed (a record holds up to 50, one more per page view).
   */
  readRecent(sid: string, latest: number): Promise<{ events: FlowEvent[]; hidden: number }>;
}

function parse(line: string): FlowEvent[] {
  try {
    return [JSON.parse(line) as FlowEvent];
  } catch {
    return [];
  }
}

export function createFlowRecorder(flow: FlowLog, ttlMs: number): FlowRecorder {
  return {
    record(sid, log, ...events) {
      flow
        .append(
          sid,
          events.map((e) => JSON.stringify(e)),
          ttlMs,
        )
        .catch((err: unknown) => log.debug({ err }, 'flow event not recorded'));
    },
    async read(sid) {
      return (await flow.read(sid).catch(() => [])).flatMap(parse);
    },
    async readRecent(sid, latest) {
      const lines = await flow.read(sid).catch(() => []);
      const head: FlowEvent[] = [];
      let i = 0;
      for (; i < lines.length; i++) {
        const [event] = parse(lines[i]!);
        if (event?.step === 'refresh' || event?.step === 'api') break;
        if (event) head.push(event);
      }
      const tail = lines.slice(Math.max(i, lines.length - latest));
      return { events: [...head, ...tail.flatMap(parse)], hidden: lines.length - i - tail.length };
    },
  };
}
