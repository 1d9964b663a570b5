import type * as client from 'openid-client';
import { describe, expect, it } from 'vitest';
import {
  accessRefusal,
  checkAccess,
  emailDomain,
  groupsOf,
  type AccessRules,
} from '../../src/auth/access-rules.js';

const none: AccessRules = { emailDomains: [], groups: [], groupsClaim: 'groups' };
const domains: AccessRules = { ...none, emailDomains: ['example.com', 'kb.example.org'] };
const groups: AccessRules = { ...none, groups: ['admins', 'release managers'] };
const both: AccessRules = { ...domains, ...groups, emailDomains: domains.emailDomains };
const verified = (email: unknown) => ({ sub: 's', email, email_verified: true });

describe('checkAccess with ALLOWED_EMAIL_DOMAINS', () => {
  it.each([
    ['alice@example.com', true],
    ['alice@kb.example.org', true],
    ['Alice@EXAMPLE.COM', true],
    ['"a@b"@example.com', true],
    ['alice@evil-example.com', false],
    ['alice@example.com.evil.io', false],
    ['alice@eu.example.com', false],
    ['alice@example.co', false],
    ['alice@example.com.', false],
    ['alice@example.com ', false],
    ['alice@example.com@evil.io', false],
    // U+212A KELVIN SIGN lower-cases to "k" in toLowerCase(): a look-alike domain must not match.
    ['alice@\u212Ab.example.org', false],
    ['alice@exampl\u0435.com', false], // Cyrillic е
  ])('reads %j as admitted: %s', (email, admitted) => {
    expect(checkAccess(verified(email), domains)).toEqual(
      admitted ? { allowed: true } : { allowed: false, reason: 'domain' },
    );
  });

  it.each([
    ['no email claim', { sub: 's', email_verified: true }],
    ['an email that is not a string', verified(['alice@example.com'])],
    ['an email without @', verified('alice.example.com')],
    ['an email with no local part', verified('@example.com')],
    ['an email with no domain', verified('alice@')],
  ])('refuses %s as no_email', (_name, claims) => {
    expect(checkAccess(claims, domains)).toEqual({ allowed: false, reason: 'no_email' });
  });

  it.each([
    ['false', false],
    ['the string "true"', 'true'],
    ['the number 1', 1],
    ['absent', undefined],
  ])('refuses email_verified %s as unverified', (_name, value) => {
    const claims = { sub: 's', email: 'alice@example.com', email_verified: value };
    expect(checkAccess(claims, domains)).toEqual({ allowed: false, reason: 'unverified' });
  });

  it('names the domain, not the verification, when both are wrong', () => {
    const claims = { email: 'mallory@evil.io', email_verified: false };
    expect(checkAccess(claims, domains)).toEqual({ allowed: false, reason: 'domain' });
  });
});

describe('checkAccess with ALLOWED_GROUPS', () => {
  it.each([
    ['an array holding a listed group', ['staff', 'admins'], true],
    ['a listed group with a space in its name', ['release managers'], true],
    ['a single string', 'admins', true],
    ['non-string members beside a listed one', [1, null, { admins: true }, 'admins'], true],
    ['another case', ['Admins'], false],
    ['a listed name with extra spaces', [' admins'], false],
    ['no listed group', ['staff'], false],
    ['an empty array', [], false],
    ['a number', 1, false],
    ['an object', { admins: true }, false],
    ['no claim', undefined, false],
  ])('with %s: admitted %s', (_name, value, admitted) => {
    expect(checkAccess({ sub: 's', groups: value }, groups)).toEqual(
      admitted ? { allowed: true } : { allowed: false, reason: 'group' },
    );
  });

  it('reads the configured claim, and only that one', () => {
    const rules = { ...groups, groupsClaim: 'https://example.com/roles' };
    expect(checkAccess({ 'https://example.com/roles': ['admins'] }, rules).allowed).toBe(true);
    expect(checkAccess({ groups: ['admins'] }, rules)).toEqual({
      allowed: false,
      reason: 'group',
    });
  });
});

describe('checkAccess with both rules, and with none', () => {
  it.each([
    ['a verified listed email in a listed group', verified('a@example.com'), ['admins'], true],
    ['a verified listed email in no group', verified('a@example.com'), [], 'group'],
    [
      'a listed group with an unverified email',
      { email: 'a@example.com' },
      ['admins'],
      'unverified',
    ],
    ['a listed group with another domain', verified('a@evil.io'), ['admins'], 'domain'],
  ])('with %s: %s', (_name, claims, memberOf, expected) => {
    expect(checkAccess({ ...claims, groups: memberOf }, both)).toEqual(
      expected === true ? { allowed: true } : { allowed: false, reason: expected },
    );
  });

  it('admits everyone when no rule is set, even without an email', () => {
    expect(checkAccess({ sub: 's' }, none)).toEqual({ allowed: true });
  });
});

describe('emailDomain and groupsOf', () => {
  it.each([
    ['alice@Example.COM', 'example.com'],
    ['a@b@example.com', 'example.com'],
    ['alice@\u212Ab.example.org', '\u212Ab.example.org'],
    ['alice', undefined],
    [42, undefined],
  ])('emailDomain(%j) is %j', (email, domain) => {
    expect(emailDomain(email)).toBe(domain);
  });

  it.each([
    ['admins', ['admins']],
    [
      ['a', 2, 'b'],
      ['a', 'b'],
    ],
    [undefined, []],
    [null, []],
  ])('groupsOf(%j) is %j', (value, expected) => {
    expect(groupsOf(value)).toEqual(expected);
  });
});

describe('accessRefusal', () => {
  /** A provider without userinfo: the ID token's claims are all there is. */
  const signIn = (claims: Record<string, unknown>) => ({
    oidc: { serverMetadata: () => ({ issuer: 'https://op.example' }) } as client.Configuration,
    tokens: { claims: () => ({ iss: 'https://op.example', sub: 's', ...claims }) } as never,
  });

  it.each([
    ['domain', verified('mallory@evil.io'), "Your email's domain is not one"],
    ['unverified', { email: 'alice@example.com' }, 'not verified by the provider'],
    ['no_email', {}, 'did not share your email address'],
    ['group', { ...verified('alice@example.com'), groups: ['staff'] }, 'not in a group'],
  ])('refuses for %s with a 403 that says why', async (reason, claims, message) => {
    const { oidc, tokens } = signIn(claims);
    const refusal = await accessRefusal(oidc, tokens, both);
    expect(refusal?.kind).toBe('not_allowed');
    expect(refusal?.status).toBe(403);
    expect(refusal?.title).toBe('This account may not use this application');
    expect(refusal?.userMessage).toContain(message);
    expect(refusal?.logFields.reason).toBe(reason);
  });

  it('logs the domain and the groups count, never the address nor the groups', async () => {
    const claims = { email: 'mallory@Evil.io', email_verified: 'true', groups: ['x', 'y'] };
    const { oidc, tokens } = signIn(claims);
    const refusal = await accessRefusal(oidc, tokens, both);
    expect(refusal?.logFields).toEqual({
      reason: 'domain',
      emailDomain: 'evil.io',
      emailVerified: 'string',
      groupsCount: 2,
    });
    expect(JSON.stringify(refusal?.logFields)).not.toContain('mallory');
    expect(refusal?.userMessage).not.toContain('evil.io');
  });

  it('admits without looking when no rule is set, and when the rules pass', async () => {
    const { oidc, tokens } = signIn({});
    expect(await accessRefusal(oidc, tokens, none)).toBeUndefined();
    const member = signIn({ ...verified('alice@example.com'), groups: 'admins' });
    expect(await accessRefusal(member.oidc, member.tokens, both)).toBeUndefined();
  });
});
