import type { Request, Response } from 'express';
import type { Provider } from '../auth/provider.js';
import type { SessionBackend } from '../session/backend.js';

export interface HealthDeps {
  provider: Provider;
  sessions: SessionBackend;
  isProduction: boolean;
  isShuttingDown: () => boolean;
}

/** GET /healthz: the process can serve. No dependencies, no session, nothing to leak. */
export function healthz(_req: Request, res: Response): void {
  res.json({ status: 'ok' });
}

/** Said at start and by /readyz when production runs on the in-process store. */
export const ONE_PROCESS_WARNING =
  'sessions live in this process only: they are lost on restart and not shared with other instances; set REDIS_URL';

/**
 * GET /readyz: ready when the session store answers (within 2 s). The provider's state is reported
 * but does not fail readiness: an outage there would pull every instance out of rotation at once,
 * while /login already answers 503 on its own.
 */
export function createReadyz({ provider, sessions, isProduction, isShuttingDown }: HealthDeps) {
  return async function readyz(_req: Request, res: Response): Promise<void> {
    const store = isShuttingDown()
      ? 'shutting-down'
      : await sessions.ping().then(
          () => 'ok',
          () => 'unavailable',
        );
    const ready = store === 'ok';
    const { state, problem, check } = provider.status();
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'unavailable',
      sessionStore: store,
      sessionBackend: sessions.kind,
      ...(isProduction && sessions.kind === 'memory' && { warning: ONE_PROCESS_WARNING }),
      provider: state,
      // Why it cannot be used, when it cannot: the kind and the facts an operator acts on
      // (both issuers, the TLS error), never a secret.
      ...(problem && { providerProblem: problem }),
      // The provider check (npm run check-provider): the verdict and what does not work.
      ...(check && {
        providerCheck: {
          verdict: check.verdict,
          gaps: check.findings.filter((f) => f.level !== 'ok').map((f) => `${f.topic}: ${f.says}`),
        },
      }),
    });
  };
}
