import { Store, type SessionData } from 'express-session';

type Callback = (err?: unknown) => void;

/**
 * Wraps a session store so that a save never rolls tokens back. express-session writes the whole
 * session object: a request that loaded the session before a sibling refreshed would otherwise
 * write the old, already-spent refresh token back (expressjs/session#361). `refresh.count` versions
 * the tokens; a save carrying an older version keeps the stored tokens.
 */
export class TokenGuardStore extends Store {
  constructor(private readonly inner: Store) {
    super();
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    this.inner.get(sid, callback);
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    this.inner.get(sid, (err, stored) => {
      if (err) return callback?.(err);
      const storedVersion = stored?.refresh?.count ?? 0;
      const incomingVersion = session.refresh?.count ?? 0;
      const next =
        stored?.tokens && session.tokens && storedVersion > incomingVersion
          ? { ...session, tokens: stored.tokens, refresh: stored.refresh }
          : session;
      this.inner.set(sid, next, callback);
    });
  }

  override destroy(sid: string, callback?: Callback): void {
    this.inner.destroy(sid, callback);
  }

  override touch(sid: string, session: SessionData, callback?: Callback): void {
    if (this.inner.touch) this.inner.touch(sid, session, callback);
    else callback?.();
  }
}
