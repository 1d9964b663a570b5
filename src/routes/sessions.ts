import type { Request, Response } from 'express';
import { storeUnavailable } from '../errors.js';
import type { EndIndexed } from '../session/end-session.js';
import type { IndexedSession, SessionIndex } from '../session/session-index.js';

export interface SessionsDeps {
  index: SessionIndex;
  endIndexed: EndIndexed;
  csrfToken: (req: Request) => string;
  /** The embedded provider's sign-out page, to try back-channel logout (development only). */
  providerSignOutUrl?: string;
}

/**
 * GET /sessions, POST /sessions/end, POST /sessions/end-others: where the person is signed in,
 * on any instance, and a way to end any of those sessions (a lost laptop). Every route needs a
 * signed-in person, and acts only on that person's sessions, found by their handles.
 */
export function createSessionsPages(deps: SessionsDeps) {
  async function listOf(req: Request): Promise<IndexedSession[]> {
    return deps.index.list(req.session.user!).catch((err: unknown) => {
      throw storeUnavailable(err);
    });
  }

  async function sessions(req: Request, res: Response): Promise<void> {
    const list = await listOf(req);
    const ended = Number(req.query.ended);
    res.render('sessions', {
      user: req.session.user,
      csrfToken: deps.csrfToken(req),
      // The page gets no session id: only handles, names and times.
      sessions: list.map(({ sid, ...shown }) => ({ ...shown, current: sid === req.sessionID })),
      ended: Number.isInteger(ended) && ended >= 0 && ended < 1000 ? ended : undefined,
      providerSignOutUrl: deps.providerSignOutUrl,
    });
  }

  /** "Sign out this session" for another of the person's sessions (this one signs out with /logout). */
  async function endOne(req: Request, res: Response): Promise<void> {
    const handle = (req.body as { session?: unknown }).session;
    const target = (await listOf(req)).find((s) => s.handle === handle && s.sid !== req.sessionID);
    const ended = target ? await deps.endIndexed([target], 'other-session', req.log) : 0;
    res.redirect(303, `/sessions?ended=${ended}`);
  }

  /** "Sign out all other sessions". */
  async function endOthers(req: Request, res: Response): Promise<void> {
    const others = (await listOf(req)).filter((s) => s.sid !== req.sessionID);
    const ended = await deps.endIndexed(others, 'other-session', req.log);
    res.redirect(303, `/sessions?ended=${ended}`);
  }

  return { sessions, endOne, endOthers };
}
