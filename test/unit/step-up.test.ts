import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  requirementFrom,
  shortfall,
  signInUrl,
  stepUpParams,
  type AuthRequirement,
} from '../../src/auth/step-up.js';

/**
 * The step-up decisions (src/auth/step-up.ts) on their own: whether a sign-in meets what a page or
 * an API asks for, what is accepted from outside (/login's query, an API's RFC 9470 challenge), and
 * how a requirement is put in an authorization request and in a /login link.
 */

const OTP = 'urn:codeflow:dev:password+otp';
const PASSWORD = 'urn:codeflow:dev:password';
const NOW = 1_900_000_000;
/** One acr value as OpenID Connect Core §3.1.2.1 allows it: printable ASCII, no space. */
const ACR = /^[\x21-\x7e]{1,200}$/;

describe('shortfall', () => {
  const page: AuthRequirement = { acrValues: [OTP], maxAgeSeconds: 600 };

  it('is nothing when the level is listed and the sign-in recent', () => {
    expect(shortfall({ acr: OTP, authTime: NOW - 600 }, page, NOW)).toBeUndefined();
    expect(shortfall({ acr: OTP, authTime: NOW }, page, NOW)).toBeUndefined();
  });

  it('names both levels when the sign-in was at another one, and checks the level first', () => {
    expect(shortfall({ acr: PASSWORD, authTime: NOW }, page, NOW)).toBe(
      `The sign-in was at level ${PASSWORD}; this needs ${OTP}.`,
    );
    // Both wrong: the level is what the person hears about.
    expect(shortfall({ acr: PASSWORD, authTime: NOW - 86_400 }, page, NOW)).toMatch(
      /^The sign-in was at level /,
    );
  });

  it('says "(not stated)" when the ID token had no acr at all', () => {
    expect(shortfall({ authTime: NOW }, page, NOW)).toBe(
      `The sign-in was at level (not stated); this needs ${OTP}.`,
    );
  });

  it('accepts any one of several levels, exactly as spelled', () => {
    const either: AuthRequirement = { acrValues: ['gold', 'silver'] };
    expect(shortfall({ acr: 'silver' }, either, NOW)).toBeUndefined();
    expect(shortfall({ acr: 'gold' }, either, NOW)).toBeUndefined();
    expect(shortfall({ acr: 'Gold' }, either, NOW)).toBe(
      'The sign-in was at level Gold; this needs gold or silver.',
    );
    expect(shortfall({ acr: 'gol' }, either, NOW)).toBeDefined();
  });

  it('with no level asked for, takes any level, or none', () => {
    expect(shortfall({}, { acrValues: [] }, NOW)).toBeUndefined();
    expect(shortfall({ acr: 'anything' }, { acrValues: [] }, NOW)).toBeUndefined();
  });

  it('without max_age, does not look at auth_time', () => {
    expect(shortfall({ acr: OTP }, { acrValues: [OTP] }, NOW)).toBeUndefined();
    expect(shortfall({ acr: OTP, authTime: 0 }, { acrValues: [OTP] }, NOW)).toBeUndefined();
  });

  it('with max_age, a missing auth_time cannot count as recent', () => {
    expect(shortfall({ acr: OTP }, page, NOW)).toBe(
      'The provider did not say when the sign-in happened (auth_time), so it cannot count as recent.',
    );
    expect(shortfall({}, { acrValues: [], maxAgeSeconds: 600 }, NOW)).toMatch(/auth_time/);
  });

  it('allows 30 seconds of clock difference, not 31', () => {
    expect(shortfall({ acr: OTP, authTime: NOW - 630 }, page, NOW)).toBeUndefined();
    expect(shortfall({ acr: OTP, authTime: NOW - 631 }, page, NOW)).toBe(
      'The sign-in happened 11 minutes ago; this needs one within the last 10 minutes.',
    );
  });

  it('says how old the sign-in is in minutes, or seconds under half a minute', () => {
    expect(shortfall({ acr: OTP, authTime: NOW - 3600 }, page, NOW)).toBe(
      'The sign-in happened 60 minutes ago; this needs one within the last 10 minutes.',
    );
    expect(shortfall({ authTime: NOW - 100 }, { acrValues: [], maxAgeSeconds: 60 }, NOW)).toBe(
      'The sign-in happened 2 minutes ago; this needs one within the last 1 minute.',
    );
    expect(shortfall({ authTime: NOW - 41 }, { acrValues: [], maxAgeSeconds: 10 }, NOW)).toBe(
      'The sign-in happened 1 minute ago; this needs one within the last 10 seconds.',
    );
  });

  it('max_age=0 still allows the clock difference, and nothing older', () => {
    const now0: AuthRequirement = { acrValues: [], maxAgeSeconds: 0 };
    expect(shortfall({ authTime: NOW - 30 }, now0, NOW)).toBeUndefined();
    expect(shortfall({ authTime: NOW - 31 }, now0, NOW)).toMatch(/within the last 0 seconds/);
  });

  it('refuses an auth_time more than 30 seconds in the future, and says so', () => {
    const requirement = { acrValues: [OTP], maxAgeSeconds: 600 };
    expect(shortfall({ acr: OTP, authTime: NOW + 30 }, requirement, NOW)).toBeUndefined();
    expect(shortfall({ acr: OTP, authTime: NOW + 31 }, requirement, NOW)).toBe(
      'The provider dated the sign-in in the future (auth_time), so it cannot count as recent.',
    );
  });

  it('property: a sign-in older than max_age + 30 s is always refused, a younger one never for its age', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 86_400 }),
        // How far past the limit (max_age + 30 s) the sign-in is; negative: within it.
        fc.integer({ min: -90_000, max: 90_000 }),
        (maxAgeSeconds, beyond) => {
          const age = maxAgeSeconds + 30 + beyond;
          const why = shortfall(
            { acr: OTP, authTime: NOW - age },
            { acrValues: [OTP], maxAgeSeconds },
            NOW,
          );
          // Too old, or dated more than the clock difference in the future: refused.
          const refused = beyond > 0 || age < -30;
          return refused ? why !== undefined : why === undefined;
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('requirementFrom', () => {
  it('is undefined when nothing usable came', () => {
    expect(requirementFrom(undefined, undefined)).toBeUndefined();
    expect(requirementFrom('', '')).toBeUndefined();
    expect(requirementFrom('   ', 'abc')).toBeUndefined();
    // A repeated query parameter arrives as an array; a parsed object never should, but is no string.
    expect(requirementFrom(['a', 'b'], ['60'])).toBeUndefined();
    expect(requirementFrom({ a: 'b' }, 600)).toBeUndefined();
  });

  it('splits on spaces, drops empty and duplicate values, keeps the order', () => {
    expect(requirementFrom(`${OTP}  gold ${OTP} silver `, undefined)).toEqual({
      acrValues: [OTP, 'gold', 'silver'],
    });
  });

  it('drops values with control characters, other whitespace or non-ASCII, keeps the rest', () => {
    expect(
      requirementFrom(`a\tb c\r\nd \x00e \x7f f\u00e9 g\u2028h ${OTP} \u00a0`, undefined),
    ).toEqual({ acrValues: [OTP] });
    expect(requirementFrom('\x01\x02 \u3000', undefined)).toBeUndefined();
  });

  it('keeps a value of 200 characters, drops one of 201', () => {
    const v200 = 'x'.repeat(200);
    expect(requirementFrom(`${v200} ${'y'.repeat(201)}`, undefined)).toEqual({
      acrValues: [v200],
    });
  });

  it('keeps at most five values, counted after duplicates are gone', () => {
    expect(requirementFrom('a b a c d e f g', undefined)?.acrValues).toEqual([
      'a',
      'b',
      'c',
      'd',
      'e',
    ]);
  });

  it('ignores an acr_values string longer than five full-length values and their spaces', () => {
    const longest = ['v', 'w', 'x', 'y', 'z'].map((c) => c.repeat(200)).join(' ') + ' ';
    expect(longest.length).toBe(1005);
    expect(requirementFrom(longest, undefined)?.acrValues).toHaveLength(5);
    expect(requirementFrom(longest + 'q', undefined)).toBeUndefined();
    expect(requirementFrom(longest + 'q', '60')).toEqual({ acrValues: [], maxAgeSeconds: 60 });
  });

  it('takes max_age as 1 to 6 ASCII digits only', () => {
    expect(requirementFrom(undefined, '0')).toEqual({ acrValues: [], maxAgeSeconds: 0 });
    expect(requirementFrom(undefined, '600')).toEqual({ acrValues: [], maxAgeSeconds: 600 });
    expect(requirementFrom(undefined, '000300')).toEqual({ acrValues: [], maxAgeSeconds: 300 });
    expect(requirementFrom(undefined, '999999')).toEqual({ acrValues: [], maxAgeSeconds: 999999 });
    for (const bad of [
      '',
      '1000000',
      '-1',
      '+5',
      '1e3',
      '1.5',
      '0x10',
      ' 600',
      '600 ',
      '600\n',
      '\n600',
      '6 00',
      '\u0666\u0660\u0660', // Arabic-Indic digits
      'Infinity',
      'NaN',
    ]) {
      expect(requirementFrom(undefined, bad), JSON.stringify(bad)).toBeUndefined();
    }
    expect(requirementFrom(undefined, 600)).toBeUndefined(); // never a number from a query
  });

  it('keeps the valid half of a half-valid request, without the other key', () => {
    expect(requirementFrom(OTP, 'soon')).toEqual({ acrValues: [OTP] });
    expect(requirementFrom(OTP, 'soon')).not.toHaveProperty('maxAgeSeconds');
    expect(requirementFrom('\x00', '300')).toEqual({ acrValues: [], maxAgeSeconds: 300 });
  });

  /** Strings with plenty of spaces, controls and near-misses, not just random letters. */
  const hostile = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.string({
      unit: fc.constantFrom(' ', ' ', '\t', '\n', '\x00', '\x7f', 'a', '+', ':', '"', '\u00e9'),
      maxLength: 400,
    }),
    fc
      .array(
        fc.oneof(
          fc.string({ unit: 'grapheme-ascii', minLength: 0, maxLength: 220 }),
          fc.string({ unit: 'binary', maxLength: 10 }),
        ),
        { maxLength: 12 },
      )
      .map((parts) => parts.join(' ')),
  );

  it('property: whatever string comes in, every value out is one printable ASCII word of at most 200, at most 5, no duplicates', () => {
    fc.assert(
      fc.property(hostile, fc.option(fc.string({ unit: 'binary', maxLength: 10 })), (acr, age) => {
        const r = requirementFrom(acr, age ?? undefined);
        if (!r) return;
        expect(r.acrValues.length).toBeLessThanOrEqual(5);
        expect(new Set(r.acrValues).size).toBe(r.acrValues.length);
        for (const v of r.acrValues) {
          expect(v).toMatch(ACR);
          // Each one was a whole space-separated word of what came in.
          expect(acr.split(' ')).toContain(v);
        }
        if (r.maxAgeSeconds !== undefined) {
          expect(Number.isInteger(r.maxAgeSeconds)).toBe(true);
          expect(r.maxAgeSeconds).toBeGreaterThanOrEqual(0);
          expect(r.maxAgeSeconds).toBeLessThanOrEqual(999_999);
        }
        // Something came out only if something was there to take.
        expect(r.acrValues.length > 0 || r.maxAgeSeconds !== undefined).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('stepUpParams', () => {
  it('is empty without a requirement, or with one that asks for nothing', () => {
    expect(stepUpParams(undefined)).toEqual({});
    expect(stepUpParams({ acrValues: [] })).toEqual({});
  });

  it('joins the levels with single spaces and writes max_age in decimal, 0 included', () => {
    expect(stepUpParams({ acrValues: [OTP, 'gold'], maxAgeSeconds: 0 })).toEqual({
      acr_values: `${OTP} gold`,
      max_age: '0',
    });
    expect(stepUpParams({ acrValues: [OTP] })).toEqual({ acr_values: OTP });
    expect(stepUpParams({ acrValues: [], maxAgeSeconds: 300 })).toEqual({ max_age: '300' });
  });

  it('property: what requirementFrom accepts, stepUpParams gives back unchanged (round trip)', () => {
    const value = fc.string({
      unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
      minLength: 1,
      maxLength: 200,
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(value, { maxLength: 5 }),
        fc.option(fc.integer({ min: 0, max: 999_999 }), { nil: undefined }),
        (acrValues, maxAgeSeconds) => {
          const requirement: AuthRequirement = {
            acrValues,
            ...(maxAgeSeconds !== undefined && { maxAgeSeconds }),
          };
          const params = stepUpParams(requirement);
          const back = requirementFrom(params.acr_values, params.max_age);
          if (acrValues.length === 0 && maxAgeSeconds === undefined) expect(back).toBeUndefined();
          else expect(back).toEqual(requirement);
        },
      ),
      // The edges always run: max_age 0 (falsy, and still a value) and the longest values.
      {
        examples: [
          [[], 0],
          [[OTP], 0],
          [['v', 'w', 'x', 'y', 'z'].map((c) => c.repeat(200)), 999_999],
        ],
      },
    );
  });
});

describe('signInUrl', () => {
  it('is /login with returnTo only, without a requirement', () => {
    expect(signInUrl('/dashboard')).toBe('/login?returnTo=%2Fdashboard');
    expect(signInUrl('/dashboard', { acrValues: [] })).toBe('/login?returnTo=%2Fdashboard');
  });

  it("encodes the '+' of an acr value, so it does not come back as a space", () => {
    const url = signInUrl('/dashboard/sensitive', { acrValues: [OTP], maxAgeSeconds: 600 });
    expect(url).toBe(
      '/login?returnTo=%2Fdashboard%2Fsensitive&acr_values=urn%3Acodeflow%3Adev%3Apassword%2Botp&max_age=600',
    );
    const query = new URL(url, 'http://app.test').searchParams;
    expect(query.get('acr_values')).toBe(OTP);
    expect(requirementFrom(query.get('acr_values'), query.get('max_age'))).toEqual({
      acrValues: [OTP],
      maxAgeSeconds: 600,
    });
  });

  it('keeps a returnTo with its own query and fragment in one parameter: nothing leaks into the others', () => {
    const returnTo = '/dashboard?tab=1&acr_values=evil&max_age=999#x';
    const url = signInUrl(returnTo, { acrValues: ['gold', 'silver'], maxAgeSeconds: 0 });
    const query = new URL(url, 'http://app.test').searchParams;
    expect(url.startsWith('/login?')).toBe(true);
    expect(url).not.toContain('#');
    expect([...query.keys()]).toEqual(['returnTo', 'acr_values', 'max_age']);
    expect(query.get('returnTo')).toBe(returnTo);
    expect(query.get('acr_values')).toBe('gold silver');
    expect(query.get('max_age')).toBe('0');
  });
});
