import { setTimeout as sleep } from 'node:timers/promises';
import * as client from 'openid-client';
import type { StoredTokens } from '../auth/tokens.js';
import type { Provider } from '../auth/provider.js';
import type { Logger } from '../log.js';

/** Revokes ended sessions' tokens at the provider (RFC 7009) without making anyone wait. */
export interface Revoker {
  /** Revokes the refresh token (or, without one, the access token) in the background. */
  revokeLater(tokens: StoredTokens, log: Logger): void;
  /**
   * Counts since start: revoked, failed attempts, revocations given up after every retry, and
   * sign-outs whose tokens could not be revoked because the provider has no revocation endpoint.
   */
  stats(): {
    revoked: number;
    failedAttempts: number;
    gaveUp: number;
    unsupported: number;
    pending: number;
  };
  /** Resolves when no revocation is pending, or after `maxMs` (shutdown, tests). */
  settle(maxMs: number): Promise<void>;
}

/** Waits before each retry: a failed revocation is tried four times in all, within about 7 s plus timeouts. */
export const DEFAULT_RETRY_DELAYS_MS = [1000, 2000, 4000];

/** Said once per process, the first time a sign-out finds the provider cannot revoke. */
export const NO_REVOCATION_ENDPOINT =
  'the provider has no revocation endpoint: sign-out cannot revoke refresh tokens, which stay valid at the provider until they expire';

/** Whether the provider's metadata names a revocation endpoint (RFC 7009, RFC 8414 §2). */
export function canRevoke(oidc: client.Configuration): boolean {
  return Boolean(oidc.serverMetadata().revocation_endpoint);
}

export function createRevoker(
  provider: Provider,
  retryDelaysMs: readonly number[] = DEFAULT_RETRY_DELAYS_MS,
): Revoker {
  const counts = { revoked: 0, failedAttempts: 0, gaveUp: 0, unsupported: 0 };
  const pending = new Set<Promise<void>>();
  let saidUnsupported = false;

  /** Nothing to try: counted, and said once, not at every sign-out. */
  function unsupported(log: Logger): void {
    counts.unsupported += 1;
    if (saidUnsupported) return;
    saidUnsupported = true;
    log.warn(NO_REVOCATION_ENDPOINT);
  }

  async function revoke(tokens: StoredTokens, log: Logger): Promise<void> {
    // Revoking the refresh token ends the grant, and with it (RFC 7009 §2.1) its access tokens.
    const [token, tokenKind] = tokens.refreshToken
      ? [tokens.refreshToken, 'refresh_token']
      : [tokens.accessToken, 'access_token'];
    for (let attempt = 1; attempt <= retryDelaysMs.length + 1; attempt++) {
      try {
        // With DPoP, a Configuration of its own, whose revocation request carries a proof.
        const oidc = tokens.dpopKey
          ? await provider.forTokenRequest({ revocationProofKey: tokens.dpopKey })
          : await provider.getConfiguration();
        if (!canRevoke(oidc)) return unsupported(log);
        await client.tokenRevocation(oidc, token, { token_type_hint: tokenKind });
        counts.revoked += 1;
        return;
      } catch (err) {
        counts.failedAttempts += 1;
        // The token kind and the error, never the token.
        log.warn({ err, tokenKind, attempt }, 'token revocation failed');
      }
      const delay = retryDelaysMs[attempt - 1];
      if (delay !== undefined) await sleep(delay, undefined, { ref: false });
    }
    counts.gaveUp += 1;
    log.error({ tokenKind }, 'token revocation given up: the token stays valid until it expires');
  }

  return {
    revokeLater(tokens, log) {
      const job = revoke(tokens, log).finally(() => pending.delete(job));
      pending.add(job);
    },
    stats: () => ({ ...counts, pending: pending.size }),
    async settle(maxMs) {
      await Promise.race([Promise.all(pending), sleep(maxMs, undefined, { ref: false })]);
    },
  };
}
