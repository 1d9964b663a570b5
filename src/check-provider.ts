/**
 * npm run check-provider: what works and what does not with the configured provider, before the
 * first sign-in. Reads the same configuration as the server (.env, environment); with no
 * OIDC_ISSUER it checks the embedded development provider. Exit code 0 when codeflow can sign
 * people in with it, 1 otherwise.
 */
import { existsSync } from 'node:fs';
import { pino } from 'pino';
import { formatCheck } from './auth/provider-check.js';
import { ConfigError, loadConfig } from './config.js';
import { AppError } from './errors.js';
import { createLogger } from './log.js';
import { createRuntime } from './runtime.js';

async function main(): Promise<number> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    return 1;
  }
  // The report is the output: the app's own log lines stay out of it. The embedded provider, when
  // it is the one checked, takes a free port: a running `npm start` keeps its own.
  const checked = config.devProvider
    ? { ...config, devProvider: { ...config.devProvider, port: 0 } }
    : config;
  const runtime = await createRuntime(checked, createLogger('silent', pino.destination(2)));
  const issuer = runtime.config.oidc.issuer!.href;
  try {
    await runtime.provider.getConfiguration();
    const { check } = runtime.provider.status();
    console.log(formatCheck(issuer, check!));
    return check!.verdict === 'ok' ? 0 : 1;
  } catch (err) {
    const problem = runtime.provider.status().problem;
    const title = err instanceof AppError ? err.title : 'The provider could not be discovered';
    console.log(`provider ${issuer}\n  FAIL  ${title}`);
    for (const [fact, value] of Object.entries(problem ?? {})) {
      if (fact !== 'kind') console.log(`        ${fact}: ${String(value)}`);
    }
    return 1;
  } finally {
    await runtime.close();
  }
}

process.exitCode = await main();
