/**
 * Sign-in time: a whole sign-in through codeflow against the same sign-in with the bench as the
 * client and no app in between, alternating so that drift hits both alike. The difference is what
 * codeflow adds to a person's wait: its two requests, discovery cache, session writes, checks.
 */
import { signInAtProvider, signInThroughApp, type OwnClient } from './sign-in.js';
import { median } from './throughput.js';

export interface SignInTimes {
  count: number;
  codeflowMedianMs: number;
  providerOwnMedianMs: number;
  codeflowMs: number[];
  providerOwnMs: number[];
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

export async function measureSignIns(
  appUrl: string,
  own: OwnClient,
  count: number,
): Promise<SignInTimes> {
  // One untimed pass each: codeflow's first sign-in fetches the JWKS, and both warm their sockets.
  await signInThroughApp(appUrl);
  await signInAtProvider(own);
  const codeflowMs: number[] = [];
  const providerOwnMs: number[] = [];
  for (let i = 0; i < count; i++) {
    // Alternate which goes first, so neither always follows the other's garbage.
    const throughApp = async () => codeflowMs.push(await timed(() => signInThroughApp(appUrl)));
    const atProvider = async () => providerOwnMs.push(await timed(() => signInAtProvider(own)));
    for (const run of i % 2 === 0 ? [throughApp, atProvider] : [atProvider, throughApp])
      await run();
  }
  return {
    count,
    codeflowMedianMs: median(codeflowMs),
    providerOwnMedianMs: median(providerOwnMs),
    codeflowMs,
    providerOwnMs,
  };
}
