import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { LogCapture } from '../helpers/logs.js';

/**
 * The logger's last line of defence: an object logged whole (by mistake, or by a library's error)
 * never prints a credential it holds. One field per redacted name, each with a value that must not
 * appear in the line.
 */
describe('log redaction', () => {
  const fields = [
    'access_token',
    'refresh_token',
    'id_token',
    'code',
    'code_verifier',
    'client_secret',
    'client_assertion',
    'accessToken',
    'refreshToken',
    'idToken',
    'codeVerifier',
    'clientSecret',
    'password',
    'dpopKey',
  ];

  it.each(fields)('redacts %s, one level down', async (field) => {
    const logs = new LogCapture();
    const logger = createLogger('info', logs.stream);
    const secret = `secret-${field}-0123456789`;
    const value = field === 'dpopKey' ? { kty: 'EC', crv: 'P-256', d: secret } : secret;
    logger.info({ tokens: { [field]: value, kept: 'visible' } }, 'an object logged whole');
    await new Promise((resolve) => logger.flush(resolve));
    const line = logs.lines.join('\n');
    expect(line).toContain('visible');
    expect(line).toContain('[redacted]');
    expect(line).not.toContain(secret);
  });
});
