/**
 * Bytes per session in the in-process store (one instance, development). Measured in this process:
 * the app is built with createRuntime() around a memoryBackend() we hold, so its bytesStored() can
 * be read.
 */
import { createServer } from 'node:http';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { createRuntime } from '../src/runtime.js';
import { memoryBackend } from '../src/session/memory-backend.js';
import { readStats, type TokenLengths, type ProviderStats } from './provider-stats.js';
import { freePort } from './processes.js';
import { CLIENT_ID, CLIENT_SECRET, SESSION_SECRET, type RunningProvider } from './services.js';
import { signInThroughApp } from './sign-in.js';

export interface MemoryStoreResult {
  anonymousLoginBytes: number;
  signedInBytes: number;
  tokenLengths: TokenLengths;
}

export async function measureMemoryStore(
  provider: RunningProvider,
  publicUrl: string,
): Promise<MemoryStoreResult> {
  const backend = memoryBackend();
  const bytesStored = () => backend.bytesStored();

  const port = await freePort();
  const config = loadConfig({
    PORT: String(port),
    // The provider's one redirect URI is this public URL's; codeflow never looks at Host.
    APP_BASE_URL: publicUrl,
    OIDC_ISSUER: provider.issuer.origin,
    OIDC_CLIENT_ID: CLIENT_ID,
    OIDC_CLIENT_SECRET: CLIENT_SECRET,
    API_URL: provider.apiUrl.href,
    SESSION_SECRET,
    LOG_LEVEL: 'silent',
  });
  const runtime = await createRuntime(config, createLogger('silent'), { sessions: backend });
  const server = createServer(runtime.app);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${port}`;
  const added = async (step: () => Promise<unknown>) => {
    const before = bytesStored();
    await step();
    return bytesStored() - before;
  };
  try {
    const anonymousLoginBytes = await added(async () => {
      const res = await fetch(`${url}/login`, {
        redirect: 'manual',
        signal: AbortSignal.timeout(5000),
      });
      await res.body?.cancel();
    });
    const signedInBytes = await added(() => signInThroughApp(url));
    const stats: ProviderStats = await readStats(provider.issuer);
    return { anonymousLoginBytes, signedInBytes, tokenLengths: stats.lastTokenLengths };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await runtime.close();
  }
}
