import type { Request } from 'express';
import { storeUnavailable } from '../errors.js';
import type { Logger } from '../log.js';
import type { Revoker } from '../tokens/revocation.js';
import type { TokenRecord, TokenStore } from '../tokens/token-store.js';
import type { SessionBackend } from './backend.js';
import type { IndexedSession } from './session-index.js';
import { forgetSession } from './session.js';

/** Why a session ended, for the log and the metrics. */
export type EndReason =
  | 'sign-out'
  | 'other-session'
  | 'back-channel'
  | 'max-age'
  | 'refresh-rejected'
  | 'tokens-missing'
  | 'other-account';

/** Ends the request's session; returns the token record it held (already being revoked). */
export type EndSession = (req: Request, reason: EndReason) => Promise<TokenRecord | undefined>;

/** Ends sessions found in the index (another browser's, or a provider session's); returns how many ended. */
export type EndIndexed = (
  sessions: readonly IndexedSession[],
  reason: EndReason,
  log: Logger,
) => Promise<number>;

export interface SessionEnder {
  endSession: EndSession;
  endIndexed: EndIndexed;
}

/**
 * The one way a session ends, whatever the reason. In one step the backend leaves a tombstone
 * (so no request still in flight can save the session back) and deletes the session, its tokens
 * and its index entry; the tokens it held are then revoked in the background.
 *
 * `endSession` ends the request's own session: the request carries on with no session at all, so
 * nothing is saved for it and no cookie is sent (a route that needs a new one makes it with
 * ensureSession). `endIndexed` ends other sessions by id: their browsers' next requests find
 * nothing and are signed out.
 * @throws {AppError} store_unavailable: nothing ended (or, for several, not all); try again.
 */
export function createSessionEnder(
  backend: SessionBackend,
  tokens: TokenStore,
  revoker: Revoker,
  onEnded: (reason: EndReason, count: number) => void = () => undefined,
): SessionEnder {
  async function end(sid: string, ref: IndexedSession | Request['session']['user'], log: Logger) {
    const held = await backend.end(sid, ref).catch((err: unknown) => {
      throw storeUnavailable(err);
    });
    const record = held && tokens.open(held);
    if (record) revoker.revokeLater(record.tokens, log);
    return record;
  }

  return {
    async endSession(req, reason) {
      const record = await end(req.sessionID, req.session?.user, req.log);
      forgetSession(req);
      onEnded(reason, 1);
      req.log.info({ reason }, 'session ended');
      return record;
    },
    async endIndexed(sessions, reason, log) {
      const results = await Promise.allSettled(sessions.map((s) => end(s.sid, s, log)));
      const ended = results.filter((r) => r.status === 'fulfilled').length;
      if (ended > 0) onEnded(reason, ended);
      log.info({ reason, ended }, 'sessions ended');
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      return ended;
    },
  };
}
