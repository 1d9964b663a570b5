import { describe, expect, it } from 'vitest';
import { createSealer } from '../../src/session/seal.js';

const OLD = 'old-secret-old-secret-old-secret-0000';
const NEW = 'new-secret-new-secret-new-secret-1111';
const tokens = { accessToken: 'eyJ.access', refreshToken: 'rt-123', expiresAt: 1700000000 };

describe('sealing tokens at rest', () => {
  it('opens what it sealed, and the sealed text shows no token', () => {
    const sealer = createSealer([NEW]);
    const sealed = sealer.seal(tokens);
    expect(sealed).toMatch(/^sealed\.v1\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain('eyJ');
    expect(sealed).not.toContain('rt-123');
    expect(sealer.open(sealed)).toEqual(tokens);
  });

  it('seals the same value differently every time (fresh IV)', () => {
    const sealer = createSealer([NEW]);
    expect(sealer.seal(tokens)).not.toBe(sealer.seal(tokens));
  });

  it('still opens values sealed with an older secret after rotation, and seals with the new one', () => {
    const before = createSealer([OLD]).seal(tokens);
    const rotated = createSealer([NEW, OLD]);
    expect(rotated.open(before)).toEqual(tokens);
    expect(createSealer([OLD]).open(rotated.seal(tokens))).toBeUndefined();
  });

  it.each([
    ['a retired secret', createSealer([OLD]).seal(tokens)],
    [
      'a flipped byte',
      (() => {
        const s = createSealer([NEW]).seal(tokens);
        const i = s.length - 5;
        return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      })(),
    ],
    ['plain JSON', JSON.stringify(tokens)],
    ['a truncated value', 'sealed.v1.abc'],
  ])('opens nothing from %s', (_name, sealed) => {
    expect(createSealer([NEW]).open(sealed)).toBeUndefined();
  });
});
