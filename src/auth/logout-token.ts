import { errors, jwtVerify, type JWTVerifyGetKey } from 'jose';

/** The claims of a valid logout token that the handler acts on. */
export interface LogoutClaims {
  iss: string;
  sub?: string;
  sid?: string;
  jti: string;
  iat: number;
}

/** A logout token that must be refused. `reason` is a short word for the log, never for the caller. */
export class LogoutTokenError extends Error {
  constructor(readonly reason: string) {
    super(`invalid logout token: ${reason}`);
    this.name = 'LogoutTokenError';
  }
}

/** Back-Channel Logout 1.0 §2.4: the member of `events` that makes a JWT a logout token. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** How far in the future `iat` may be, for clocks that disagree a little. */
const CLOCK_SKEW_SECONDS = 30;

/** jose's errors that mean "this token is bad" (by code), and the reason we log for each. */
const REJECTED: Record<string, string> = {
  [errors.JWSSignatureVerificationFailed.code]: 'signature',
  // No key with the token's kid and alg: nothing the provider published signed it.
  [errors.JWKSNoMatchingKey.code]: 'signature',
  [errors.JWKSMultipleMatchingKeys.code]: 'signature',
  [errors.JOSEAlgNotAllowed.code]: 'alg',
  [errors.JWSInvalid.code]: 'malformed',
  [errors.JWTInvalid.code]: 'malformed',
  [errors.JOSENotSupported.code]: 'malformed',
};

/** Claims jose checks whose name is the reason we log. */
const CLAIMS = new Set(['iss', 'aud', 'iat', 'exp', 'nbf', 'jti', 'events']);

/**
 * Validates a logout token as OpenID Connect Back-Channel Logout 1.0 §2.6 asks: the signature
 * against the provider's keys with the one algorithm we accept, `iss`, `aud`, `iat` within
 * `[now - maxAgeSeconds, now + 30 s]`, `exp` when present, then the logout token's own rules:
 * the back-channel logout event, `sid` and/or `sub`, no `nonce`, and a `typ` header, when there is
 * one, of `logout+jwt`. Whether `jti` was seen before is the caller's check (it needs the store).
 * @throws {LogoutTokenError} the token is invalid; its `reason` says which check failed.
 * Any other error (the JWKS could not be fetched) is passed on as it is: the token is not at fault.
 */
export async function verifyLogoutToken(
  token: string,
  expected: {
    issuer: string;
    clientId: string;
    /** The one algorithm accepted (the app's ID-token algorithm): pinned, never "none". */
    algorithm: string;
    keys: JWTVerifyGetKey;
    /** Epoch seconds. */
    now: number;
    maxAgeSeconds: number;
  },
): Promise<LogoutClaims> {
  if (expected.algorithm === 'none') throw new TypeError('"none" is never an accepted algorithm');

  let verified: Awaited<ReturnType<typeof jwtVerify>>;
  try {
    verified = await jwtVerify(token, expected.keys, {
      algorithms: [expected.algorithm],
      issuer: expected.issuer,
      audience: expected.clientId,
      currentDate: new Date(expected.now * 1000),
      // For exp and nbf; the iat window is checked below, exactly.
      clockTolerance: CLOCK_SKEW_SECONDS,
      requiredClaims: ['iat', 'jti', 'events'],
    });
  } catch (err) {
    throw asLogoutTokenError(err);
  }
  const { payload, protectedHeader } = verified;

  // §2.4: explicitly typed logout tokens are "logout+jwt"; an ID token (typ JWT) or an access
  // token (at+jwt) is never accepted in their place. Untyped tokens remain allowed.
  if (protectedHeader.typ !== undefined && !isLogoutTyp(protectedHeader.typ))
    throw new LogoutTokenError('typ');
  const { iat, jti, sub, sid } = payload;
  if (typeof iat !== 'number' || iat < expected.now - expected.maxAgeSeconds)
    throw new LogoutTokenError('iat');
  if (iat > expected.now + CLOCK_SKEW_SECONDS) throw new LogoutTokenError('iat');
  if (typeof jti !== 'string' || jti.length === 0) throw new LogoutTokenError('jti');
  // §2.4: "events" is a JSON object with the back-channel logout member, whose value is a JSON object.
  if (!isObject(payload.events) || !isObject(payload.events[BACKCHANNEL_LOGOUT_EVENT]))
    throw new LogoutTokenError('events');
  // §2.4: a logout token MUST contain a sub, a sid, or both.
  const hasSub = typeof sub === 'string' && sub.length > 0;
  const hasSid = typeof sid === 'string' && sid.length > 0;
  if ((!hasSub && !hasSid) || (sub !== undefined && !hasSub) || (sid !== undefined && !hasSid))
    throw new LogoutTokenError('sid_or_sub');
  // §2.4: a nonce is prohibited, so an ID token can never pass for a logout token.
  if ('nonce' in payload) throw new LogoutTokenError('nonce');

  return {
    iss: expected.issuer,
    jti,
    iat,
    ...(hasSub && { sub }),
    ...(hasSid && { sid: sid as string }),
  };
}

function asLogoutTokenError(err: unknown): unknown {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return err;
  if (code === errors.JWTClaimValidationFailed.code || code === errors.JWTExpired.code) {
    const claim = (err as errors.JWTClaimValidationFailed).claim;
    return new LogoutTokenError(CLAIMS.has(claim) ? claim : 'malformed');
  }
  const reason = REJECTED[code];
  return reason === undefined ? err : new LogoutTokenError(reason);
}

/** `logout+jwt`, compared as a media type: any case, with or without `application/`. */
function isLogoutTyp(typ: string): boolean {
  return typ.toLowerCase().replace(/^application\//, '') === 'logout+jwt';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
