import { describe, expect, it } from 'vitest';
import { createSealer } from '../../src/tokens/seal.js';

const OLD = 'old-secret-old-secret-old-secret-0000';
const NEW = 'new-secret-new-secret-new-secret-1111';
const tokens = { accessToken: 'eyJ.access', refreshToken: 'rt-123', expiresAt: 1700000000 };

describe('sealing tokens at rest', () => {
  it('opens what it sealed, and the sealed bytes show no token', () => {
    const sealer = createSealer([NEW]);
    const sealed = sealer.seal(tokens);
    expect(sealed[0]).toBe(1);
    expect(sealed.includes('eyJ')).toBe(false);
    expect(sealed.includes('rt-123')).toBe(false);
    expect(sealer.open(sealed)).toEqual(tokens);
  });

  it('adds only 29 bytes to the value (version, IV, tag): no base64', () => {
    const sealed = createSealer([NEW]).seal(tokens);
    expect(sealed.length).toBe(JSON.stringify(tokens).length + 29);
  });

  it('seals the same value differently every time (fresh IV)', () => {
    const sealer = createSealer([NEW]);
    expect(sealer.seal(tokens).equals(sealer.seal(tokens))).toBe(false);
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
        s.writeUInt8(s.readUInt8(s.length - 5) ^ 1, s.length - 5);
        return s;
      })(),
    ],
    ['plain JSON', Buffer.from(JSON.stringify(tokens))],
    ['a truncated value', createSealer([NEW]).seal(tokens).subarray(0, 20)],
    [
      'another format version',
      Buffer.concat([Buffer.of(2), createSealer([NEW]).seal(tokens).subarray(1)]),
    ],
  ])('opens nothing from %s', (_name, sealed) => {
    expect(createSealer([NEW]).open(sealed)).toBeUndefined();
  });
});
