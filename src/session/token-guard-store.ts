import { Store, type SessionData } from 'express-session';
import type { StoredTokens } from '../auth/tokens.js';
import { AppError } from '../errors.js';
import type { Sealer } from './seal.js';

type Callback = (err?: unknown) => void;

/** A store call that has not answered by then counts as a failure: a 503 now beats a hang. */
const STORE_TIMEOUT_MS = 2000;

/** A session as the store holds it: the same, but with its tokens sealed. */
type StoredSession = Omit<SessionData, 'tokens'> & { tokens?: string };

/**
 * Wraps the session store (memory or Redis) with three guarantees:
 * - tokens are sealed at rest (AES-256-GCM): a dump of Redis shows none. A session whose tokens no
 *   key opens (tampered, or sealed with a retired secret) loads as signed out.
 * - a save never rolls tokens back. express-session writes the whole session object, so a request
 *   that loaded the session before a sibling refreshed would otherwise write the old, already-spent
 *   refresh token back (expressjs/session#361). `refresh.count` versions the tokens; a save carrying
 *   an older version keeps the stored tokens.
 * - a store that fails or hangs gives a 503 AppError within two seconds, never a 500 or a hang.
 */
export class TokenGuardStore extends Store {
  constructor(
    private readonly inner: Store,
    private readonly sealer: Sealer,
  ) {
    super();
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    this.getStored(sid, (err, stored) => callback(err, stored && this.unseal(stored)));
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    this.getStored(sid, (err, stored) => {
      if (err) return callback?.(err);
      const storedVersion = stored?.refresh?.count ?? 0;
      const incomingVersion = session.refresh?.count ?? 0;
      const next: StoredSession =
        stored?.tokens && session.tokens && storedVersion > incomingVersion
          ? { ...session, tokens: stored.tokens, refresh: stored.refresh }
          : { ...session, tokens: session.tokens && this.sealer.seal(session.tokens) };
      this.inner.set(sid, next as unknown as SessionData, guarded(callback));
    });
  }

  private getStored(
    sid: string,
    callback: (err: unknown, stored?: StoredSession | null) => void,
  ): void {
    this.inner.get(sid, guarded(callback as (err: unknown, session?: SessionData | null) => void));
  }

  private unseal(stored: StoredSession): SessionData {
    if (stored.tokens === undefined) return stored as unknown as SessionData;
    const tokens = this.sealer.open(stored.tokens) as StoredTokens | undefined;
    if (tokens) return { ...stored, tokens } as SessionData;
    const { user: _user, tokens: _tokens, ...rest } = stored;
    return rest as unknown as SessionData;
  }

  override destroy(sid: string, callback?: Callback): void {
    this.inner.destroy(sid, guarded(callback));
  }

  override touch(sid: string, session: SessionData, callback?: Callback): void {
    if (this.inner.touch) this.inner.touch(sid, session, guarded(callback));
    else callback?.();
  }
}

/** The callback, called once: with the store's answer, or a 503 AppError on failure or timeout. */
function guarded<A extends unknown[]>(callback: ((err?: unknown, ...rest: A) => void) | undefined) {
  let done = false;
  const timer = setTimeout(() => finish(new Error('session store timed out')), STORE_TIMEOUT_MS);
  timer.unref();
  function finish(err?: unknown, ...rest: A | []) {
    if (done) return;
    done = true;
    clearTimeout(timer);
    const failure = err
      ? new AppError('store_unavailable', 'Please try again in a few seconds.', {
          cause: err,
          retryAfterSeconds: 5,
        })
      : undefined;
    (callback as ((err?: unknown, ...rest: unknown[]) => void) | undefined)?.(failure, ...rest);
  }
  return finish as (err?: unknown, ...rest: A) => void;
}
