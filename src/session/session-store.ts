import { Store, type SessionData } from 'express-session';
import { AppError, storeUnavailable } from '../errors.js';
import type { SessionBackend } from './backend.js';

type Callback = (err?: unknown) => void;
type CookieOptions = Pick<
  SessionData['cookie'],
  'originalMaxAge' | 'path' | 'httpOnly' | 'secure' | 'sameSite'
>;

/** A session's expiry in the store moves at most this often per instance: a touch is a round trip. */
const TOUCH_INTERVAL_MS = 60_000;
const MAX_TRACKED_TOUCHES = 10_000;

/**
 * express-session's view of a {@link SessionBackend}.
 * - How long the store keeps a session is `ttlOf(session)`, decided by what it holds (see
 *   session.ts); when that is over, the session ends.
 * - A save for a session that has ended is dropped (the backend checks its tombstone atomically).
 * - The cookie is not stored: its flags come from configuration on every read.
 * - Any backend failure reaches express-session as a 503 AppError, never a 500 or a hang.
 */
export class BackendStore extends Store {
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly backend: SessionBackend,
    private readonly cookie: CookieOptions,
    private readonly ttlOf: (session: SessionData) => number,
    /** Epoch seconds. */
    private readonly now: () => number,
  ) {
    super();
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    this.backend.getSession(sid).then(
      (value) => callback(undefined, value === undefined ? null : this.decode(value)),
      (err: unknown) => callback(storeUnavailable(err)),
    );
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    const ttlMs = this.ttlOf(session);
    const done = settle(callback);
    if (ttlMs <= 0) return void this.backend.end(sid).then(() => done(), done);
    // false: the session ended while this request ran. Its save is dropped, and the request is
    // told, so that it answers "signed out" instead of handing the cookie back (saveSession).
    this.backend
      .setSession(sid, encode(session), ttlMs)
      .then((stored) => done(stored ? undefined : sessionEnded()), done);
    this.touched.delete(sid);
  }

  override touch(sid: string, session: SessionData, callback?: Callback): void {
    const last = this.touched.get(sid) ?? 0;
    if (Date.now() - last < TOUCH_INTERVAL_MS) return void callback?.();
    if (this.touched.size >= MAX_TRACKED_TOUCHES) this.touched.clear();
    this.touched.set(sid, Date.now());
    // In the background: express-session holds the response's end until touch calls back, and a
    // store that hangs must not hold a page (or a 503) with it. A lost touch only shortens the
    // idle expiry; the next request past the interval moves it again.
    this.backend
      .touchSession(sid, this.ttlOf(session), this.now())
      .catch(() => this.touched.delete(sid));
    callback?.();
  }

  override destroy(sid: string, callback?: Callback): void {
    this.touched.delete(sid);
    this.backend.end(sid).then(() => callback?.(), settle(callback));
  }

  private decode(value: string): SessionData {
    return { ...(JSON.parse(value) as object), cookie: { ...this.cookie } } as SessionData;
  }
}

/** The session as stored: what it holds, without the cookie (configuration has its flags). */
function encode(session: SessionData): string {
  const { cookie: _cookie, ...data } = session;
  return JSON.stringify(data);
}

function sessionEnded(): AppError {
  return new AppError('session_expired', 'You have signed out.');
}

function settle(callback: Callback | undefined) {
  return (err?: unknown) => callback?.(err === undefined ? undefined : storeUnavailable(err));
}
