import type { Request, Response } from 'express';
import type { Provider } from '../auth/provider.js';

export interface HealthDeps {
  provider: Provider;
  /** Resolves when the session store answers; rejects or times out otherwise. */
  pingStore: () => Promise<void>;
  isShuttingDown: () => boolean;
}

/** GET /healthz: the process can serve. No dependencies, no session, nothing to leak. */
export function healthz(_req: Request, res: Response): void {
  res.json({ status: 'ok' });
}

/**
 * GET /readyz: ready when the session store answers. The provider's state is reported but does not
 * fail readiness: an outage there would pull every instance out of rotation at once, while /login
 * already answers 503 on its own.
 */
export function createReadyz({ provider, pingStore, isShuttingDown }: HealthDeps) {
  return async function readyz(_req: Request, res: Response): Promise<void> {
    const store = isShuttingDown()
      ? 'shutting-down'
      : await pingStore().then(
          () => 'ok',
          () => 'unavailable',
        );
    const ready = store === 'ok';
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'unavailable',
      sessionStore: store,
      provider: provider.status().state,
    });
  };
}
