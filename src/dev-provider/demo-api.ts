import { createHash, randomBytes } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import { ONE_TIME_CODE_ACR } from './acr.js';
import type { Logger } from '../log.js';
import { findAccount } from './accounts.js';

/** What /api/sensitive asks of the sign-in behind a token: a one-time code, this recently. */
const SENSITIVE_MAX_AGE_SECONDS = 300;

/** Proof algorithms the demo API accepts (RFC 9449 §7.1 `algs`), as the provider does. */
const PROOF_ALGS = ['ES256', 'EdDSA', 'Ed25519', 'PS256'];
/** A proof is fresh for this long either side of now (RFC 9449 §11.1). */
const PROOF_WINDOW_SECONDS = 60;
/** A nonce is good for this long, and the one before it a while longer (RFC 9449 §9). */
const NONCE_ROTATE_MS = 5 * 60_000;

export interface DemoApiOptions {
  /** Every DPoP proof must carry a nonce the API issued (it answers `use_dpop_nonce` first). */
  requireNonce?: boolean;
  /** Each refusal's reason is logged (never the token or the proof). */
  logger?: Logger;
}

interface Caller {
  kind: 'person' | 'service';
  token: {
    accountId?: string;
    clientId?: string;
    scopes?: Set<string>;
    jkt?: string;
    extra?: Record<string, unknown>;
  };
  scheme: 'Bearer' | 'DPoP';
}

/**
 * The demo protected API: checks the access token for real, against the provider's own token
 * store, so an expired or revoked token gets 401 (RFC 6750 §3). A token bound to a DPoP key
 * (RFC 9449) is accepted only with the DPoP scheme and a valid proof from that key, fresh, for this
 * request, naming this token, never seen before; sent as a plain bearer token, it is refused.
 *
 * GET /api/me serves two kinds of caller: a person, through codeflow (a token from the
 * authorization-code grant), and a service calling as itself (client_credentials, no person).
 * GET /api/sensitive serves a person who signed in with a one-time code in the last five minutes;
 * anyone else gets RFC 9470's `insufficient_user_authentication` challenge, naming what is needed.
 */
export function demoApi(provider: Provider, options: DemoApiOptions = {}) {
  const proofs = proofChecker(options.requireNonce ?? false);
  const refuse = (res: Response, scheme: 'Bearer' | 'DPoP', error: string, why: string) => {
    options.logger?.info({ error, why, path: res.req.path }, 'demo API refused a request');
    challenge(res, scheme, error, why);
  };

  async function authenticate(req: Request, res: Response): Promise<Caller | undefined> {
    const [scheme = '', value] = (req.get('authorization') ?? '').split(' ');
    const kind = scheme.toLowerCase();
    const presented = (kind === 'bearer' || kind === 'dpop') && value ? value : undefined;
    const person = presented ? await provider.AccessToken.find(presented) : undefined;
    const service =
      presented && !person ? await provider.ClientCredentials.find(presented) : undefined;
    const token = (person ?? service) as Caller['token'] | undefined;
    const challengeScheme = kind === 'dpop' ? 'DPoP' : 'Bearer';
    if (!token || !presented) {
      refuse(res, challengeScheme, 'invalid_token', 'expired, revoked or unknown token');
      return undefined;
    }
    if (token.jkt && kind !== 'dpop') {
      // RFC 9449 §7.2: a bound token as a bearer token is exactly what a thief would send.
      refuse(
        res,
        'DPoP',
        'invalid_token',
        'this token is bound to a key: send it as DPoP, with a proof',
      );
      return undefined;
    }
    if (kind === 'dpop') {
      if (!token.jkt) {
        refuse(res, 'DPoP', 'invalid_token', 'this token is not bound to a key');
        return undefined;
      }
      const problem = await proofs.check(req, presented, token.jkt);
      if (problem === 'use_dpop_nonce') {
        res.set('DPoP-Nonce', proofs.nonce());
        refuse(res, 'DPoP', 'use_dpop_nonce', 'a DPoP nonce is required');
        return undefined;
      }
      if (problem) {
        refuse(res, 'DPoP', 'invalid_dpop_proof', problem);
        return undefined;
      }
    }
    return {
      kind: person ? 'person' : 'service',
      token,
      scheme: kind === 'dpop' ? 'DPoP' : 'Bearer',
    };
  }

  const me: RequestHandler = async (req, res) => {
    res.set('Cache-Control', 'no-store');
    const caller = await authenticate(req, res);
    if (!caller) return;
    const account = caller.token.accountId ? findAccount(caller.token.accountId) : undefined;
    if (caller.kind === 'person' && account) {
      res.json({
        sub: account.id,
        profile: { name: account.name, email: account.email },
        data: account.data,
        scopes: [...(caller.token.scopes ?? [])],
        boundTo: caller.token.jkt ?? null,
        servedAt: new Date().toISOString(),
      });
      return;
    }
    res.json({
      client: caller.token.clientId,
      scopes: [...(caller.token.scopes ?? [])],
      boundTo: caller.token.jkt ?? null,
      servedAt: new Date().toISOString(),
    });
  };

  const sensitive: RequestHandler = async (req, res) => {
    res.set('Cache-Control', 'no-store');
    const caller = await authenticate(req, res);
    if (!caller) return;
    const account = caller.token.accountId ? findAccount(caller.token.accountId) : undefined;
    const acr = caller.token.extra?.acr;
    const authTime = caller.token.extra?.auth_time;
    const recent =
      typeof authTime === 'number' && Date.now() / 1000 - authTime <= SENSITIVE_MAX_AGE_SECONDS;
    if (!account || acr !== ONE_TIME_CODE_ACR || !recent) {
      // RFC 9470 §3: say what would do, so the client can ask for exactly that.
      res
        .status(401)
        .set(
          'WWW-Authenticate',
          `${caller.scheme} error="insufficient_user_authentication", error_description="a sign-in with a one-time code in the last ${SENSITIVE_MAX_AGE_SECONDS / 60} minutes is needed", acr_values="${ONE_TIME_CODE_ACR}", max_age=${SENSITIVE_MAX_AGE_SECONDS}`,
        )
        .json({ error: 'insufficient_user_authentication' });
      return;
    }
    res.json({
      sub: account.id,
      payouts: { account: 'GB00 DEMO 0000 0000 0000 00', nextPayout: '2026-12-01' },
      signedInWith: acr,
      signedInAt: new Date(authTime * 1000).toISOString(),
      boundTo: caller.token.jkt ?? null,
      servedAt: new Date().toISOString(),
    });
  };

  return { me, sensitive };
}

function challenge(res: Response, scheme: 'Bearer' | 'DPoP', error: string, description: string) {
  const algs = scheme === 'DPoP' ? `, algs="${PROOF_ALGS.join(' ')}"` : '';
  res
    .status(401)
    .set(
      'WWW-Authenticate',
      `${scheme} realm="demo-api", error="${error}", error_description="${description}"${algs}`,
    )
    .json({ error });
}

/** RFC 9449 §4.3 and §7.1: a resource server's checks of one proof, with its nonces and seen jtis. */
function proofChecker(requireNonce: boolean) {
  let current = randomBytes(16).toString('base64url');
  let previous: string | undefined;
  let rotatedAt = Date.now();
  /** jti -> expiry (ms): a proof is used once. Bounded by the window: older ones are dropped. */
  const seen = new Map<string, number>();

  function nonce(): string {
    if (Date.now() - rotatedAt > NONCE_ROTATE_MS) {
      previous = current;
      current = randomBytes(16).toString('base64url');
      rotatedAt = Date.now();
    }
    return current;
  }

  async function check(req: Request, token: string, jkt: string): Promise<string | undefined> {
    const proof = req.get('dpop');
    if (!proof || proof.includes(',')) return 'exactly one DPoP proof is required';
    let payload: JWTPayload;
    let jwk: unknown;
    try {
      const verified = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: PROOF_ALGS,
      });
      payload = verified.payload;
      jwk = verified.protectedHeader.jwk;
    } catch {
      return 'the proof is not a valid DPoP proof JWT';
    }
    const url = new URL(req.originalUrl, `${req.protocol}://${req.get('host')}`);
    if (payload.htm !== req.method) return 'the proof is for another method (htm)';
    if (payload.htu !== url.origin + url.pathname) return 'the proof is for another URL (htu)';
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > PROOF_WINDOW_SECONDS)
      return 'the proof is not fresh (iat)';
    const ath = createHash('sha256').update(token).digest('base64url');
    if (payload.ath !== ath) return 'the proof is for another access token (ath)';
    if ((await calculateJwkThumbprint(jwk as never)) !== jkt)
      return 'the proof is signed with a key the token is not bound to';
    if (requireNonce && payload.nonce !== nonce() && (!previous || payload.nonce !== previous))
      return 'use_dpop_nonce';
    if (typeof payload.jti !== 'string' || payload.jti.length === 0) return 'the proof has no jti';
    // Kept in the order seen, so expired ones are at the front.
    for (const [jti, expires] of seen) {
      if (expires >= Date.now()) break;
      seen.delete(jti);
    }
    if (seen.has(payload.jti)) return 'the proof was used before (jti)';
    seen.set(payload.jti, Date.now() + 2 * PROOF_WINDOW_SECONDS * 1000);
    return undefined;
  }

  return { check, nonce };
}
