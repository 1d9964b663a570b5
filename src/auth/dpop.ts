import { randomUUID, webcrypto } from 'node:crypto';
import { SignJWT, decodeJwt, type JWK } from 'jose';
import * as client from 'openid-client';

/**
 * DPoP (RFC 9449): each session has its own key pair, made at sign-in. Every token request and API
 * call carries a proof signed with it, and the provider binds the access token to the key's
 * thumbprint (`cnf.jkt`), so a stolen access token is useless without the key. One key per
 * session, not per application: a key that leaks with one session's record exposes that session
 * only.
 *
 * The key is a private JWK kept in the session's token record, which is sealed (AES-256-GCM)
 * before it reaches the store and deleted with the tokens: no dump of the store shows it.
 */

/** The one algorithm: ES256 is what every DPoP provider accepts (oidc-provider, Okta, Keycloak, Auth0). */
export const DPOP_ALG = 'ES256';

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** A new key pair for one session, as a private JWK (it holds the public half too). */
export async function newDPoPKey(): Promise<JWK> {
  const pair = await client.randomDPoPKeyPair(DPOP_ALG, { extractable: true });
  const { kty, crv, x, y, d } = await webcrypto.subtle.exportKey('jwk', pair.privateKey);
  return { kty, crv, x, y, d };
}

/** The public half of a session's key: what proofs carry in their header. */
function publicJwk(key: JWK): JWK {
  const { kty, crv, x, y } = key;
  return { kty, crv, x, y };
}

async function importPair(key: JWK): Promise<client.CryptoKeyPair> {
  const [privateKey, publicKey] = await Promise.all([
    webcrypto.subtle.importKey('jwk', key as webcrypto.JsonWebKey, P256, false, ['sign']),
    // openid-client puts the public key in each proof's header, so it must be exportable.
    webcrypto.subtle.importKey('jwk', publicJwk(key) as webcrypto.JsonWebKey, P256, true, [
      'verify',
    ]),
  ]);
  return { privateKey, publicKey } as client.CryptoKeyPair;
}

/**
 * openid-client's DPoP handles, one per session, kept while the session is in use. A handle
 * remembers the nonces the provider and the API sent (RFC 9449 §8, §9), so only the first request
 * after a new nonce is turned away and retried; openid-client retries once, never more.
 * Bounded: the least recently used handle goes first, and a new one is made from the sealed key.
 */
export interface DPoPHandles {
  /** The handle for this session's key (the key is the source of truth; the handle is a cache). */
  forSession(config: client.Configuration, sid: string, key: JWK): Promise<client.DPoPHandle>;
}

/** A handle for a key that has no session yet: the code exchange at sign-in. */
export async function dpopHandle(config: client.Configuration, key: JWK) {
  return client.getDPoPHandle(config, await importPair(key));
}

export function createDPoPHandles(max = 10_000): DPoPHandles {
  const handles = new Map<string, { x: string | undefined; handle: Promise<client.DPoPHandle> }>();
  return {
    forSession(config, sid, key) {
      const cached = handles.get(sid);
      if (cached && cached.x === key.x) {
        // Most recently used last, so the oldest is the first key of the map.
        handles.delete(sid);
        handles.set(sid, cached);
        return cached.handle;
      }
      const handle = dpopHandle(config, key);
      handle.catch(() => handles.delete(sid));
      handles.set(sid, { x: key.x, handle });
      if (handles.size > max) handles.delete(handles.keys().next().value!);
      return handle;
    },
  };
}

/**
 * A DPoP proof for a request openid-client sends without one: token revocation (RFC 7009). RFC 9449
 * defines no proof there, and a confidential client's refresh token is not bound to the key (§5),
 * so providers that ignore it lose nothing; a provider that checks who revokes a bound token finds
 * the session's key.
 */
export async function proofFor(key: JWK, method: string, url: URL): Promise<string> {
  const { privateKey } = await importPair(key);
  return new SignJWT({ htm: method, htu: url.origin + url.pathname, jti: randomUUID() })
    .setProtectedHeader({ alg: DPOP_ALG, typ: 'dpop+jwt', jwk: publicJwk(key) })
    .setIssuedAt()
    .sign(privateKey);
}

/** Whether the token response bound the access token to the key: its type says so (RFC 9449 §5). */
export function isBound(tokenType: string | undefined): boolean {
  return tokenType?.toLowerCase() === 'dpop';
}

/** What the dashboard shows about a session's key and its token (never the key itself). */
export interface Binding {
  /** The token type the provider answered: DPoP when it bound the token, Bearer when it did not. */
  tokenType: string;
  bound: boolean;
  /** The session key's RFC 7638 thumbprint. */
  thumbprint: string;
  /** `cnf.jkt` of a JWT access token (opaque tokens keep theirs at the provider). */
  jkt: string | undefined;
}

/**
 * The binding, for the page. The thumbprint comes from the session's cached handle, which works
 * it out once (a SHA-256 over the key per view cost the dashboard about 50 µs); only a JWT access
 * token is decoded for its `cnf.jkt`.
 */
export async function bindingOf(
  tokens: { tokenType: string; accessToken: string; dpopKey?: JWK },
  handle: (key: JWK) => Promise<client.DPoPHandle>,
): Promise<Binding | undefined> {
  if (!tokens.dpopKey) return undefined;
  let jkt: string | undefined;
  if (tokens.accessToken.split('.').length === 3) {
    try {
      const cnf = decodeJwt(tokens.accessToken).cnf as { jkt?: unknown } | undefined;
      if (typeof cnf?.jkt === 'string') jkt = cnf.jkt;
    } catch {
      // Three parts, but not a JWT: nothing to read.
    }
  }
  const bound = isBound(tokens.tokenType);
  return {
    // openid-client lower-cases the type; RFC 9449 spells it DPoP.
    tokenType: bound ? 'DPoP' : tokens.tokenType,
    bound,
    thumbprint: await (await handle(tokens.dpopKey)).calculateThumbprint(),
    jkt,
  };
}
