import { ConfigError, loadConfig } from '../../src/config.js';

/** Every ConfigError problem loadConfig reports for `env`, or [] when it loads. */
export function configProblems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}
