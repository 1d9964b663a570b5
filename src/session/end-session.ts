import type { Request } from 'express';
import { storeUnavailable } from '../errors.js';
import type { Revoker } from '../tokens/revocation.js';
import type { TokenRecord, TokenStore } from '../tokens/token-store.js';
import type { SessionBackend } from './backend.js';
import { forgetSession } from './session.js';

/** Why a session ended, for the log. */
export type EndReason =
  'sign-out' | 'max-age' | 'refresh-rejected' | 'tokens-missing' | 'other-account';

/** Ends the request's session; returns the token record it held (already being revoked). */
export type EndSession = (req: Request, reason: EndReason) => Promise<TokenRecord | undefined>;

/**
 * The one way a session ends, whatever the reason. In one step the backend leaves a tombstone
 * (so no request still in flight can save the session back) and deletes the session and its
 * tokens; the tokens it held are then revoked in the background. The request carries on with no
 * session at all: nothing is saved for it and no cookie is sent (a route that needs a new one
 * makes it with ensureSession).
 * @throws {AppError} store_unavailable: nothing ended; the person may try again.
 */
export function createEndSession(
  backend: SessionBackend,
  tokens: TokenStore,
  revoker: Revoker,
): EndSession {
  return async (req, reason) => {
    const held = await backend.end(req.sessionID).catch((err: unknown) => {
      throw storeUnavailable(err);
    });
    const record = held && tokens.open(held);
    if (record) revoker.revokeLater(record.tokens, req.log);
    forgetSession(req);
    req.log.info({ reason }, 'session ended');
    return record;
  };
}
