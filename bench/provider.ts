/**
 * Child process: the embedded development provider on its own, as a real provider would be, with
 * the bench's counters (provider-stats.ts). It also serves the demo API.
 *
 * Env: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, ACCESS_TOKEN_TTL (seconds).
 */
import { startDevProvider } from '../src/dev-provider/dev-provider.js';
import { createLogger } from '../src/log.js';
import { statsMiddleware, type ProviderStats } from './provider-stats.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`bench provider: ${name} is not set`);
  return value;
}

const stats: ProviderStats = {
  // Filled in once the provider knows it; the bench waits for it before going on.
  apiUrl: '',
  refreshGrants: 0,
  lastTokenLengths: { accessToken: 0, refreshToken: 0, idToken: 0 },
};
const redirectUri = required('REDIRECT_URI');

const devProvider = await startDevProvider({
  port: Number(required('PORT')),
  hostname: '127.0.0.1',
  listenHost: '127.0.0.1',
  client: {
    clientId: required('CLIENT_ID'),
    clientSecret: required('CLIENT_SECRET'),
    redirectUri,
    postLogoutRedirectUri: new URL('/', redirectUri).href,
  },
  accessTokenTtlSeconds: Number(required('ACCESS_TOKEN_TTL')),
  // Errors only, to stderr: the bench shows them, and info lines would cost the provider CPU.
  logger: createLogger('error', process.stderr),
  middleware: [statsMiddleware(stats)],
});
stats.apiUrl = devProvider.apiUrl.href;

const stop = () => void devProvider.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
