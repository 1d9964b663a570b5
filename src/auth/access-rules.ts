import * as client from 'openid-client';
import { AppError } from '../errors.js';
import { callbackError } from './oauth-errors.js';

/**
 * Who may sign in, for internal tools: ALLOWED_EMAIL_DOMAINS, ALLOWED_GROUPS, ALLOWED_GROUPS_CLAIM.
 * Both lists empty: everyone the provider signs in. Both set: both must pass. The rules are
 * applied once, at sign-in; a session that has started is not checked again.
 */
export interface AccessRules {
  /**
   * Lower-case domains. A person passes with a verified email at exactly one of them: a subdomain
   * (eu.example.com) is another domain and must be listed on its own.
   */
  readonly emailDomains: readonly string[];
  /** Group names, matched exactly and case-sensitively. */
  readonly groups: readonly string[];
  /** The top-level claim that lists the person's groups, by its exact name. */
  readonly groupsClaim: string;
}

export type AccessRefusal = 'no_email' | 'domain' | 'unverified' | 'group';
export type AccessDecision = { allowed: true } | { allowed: false; reason: AccessRefusal };

export function hasAccessRules(rules: AccessRules): boolean {
  return rules.emailDomains.length > 0 || rules.groups.length > 0;
}

/**
 * Whether these claims (the ID token's, with userinfo's) pass the rules, and if not, why. Pure.
 * The email rule asks, in order: is there an email, is its domain listed, did the provider verify it.
 */
export function checkAccess(
  claims: Readonly<Record<string, unknown>>,
  rules: AccessRules,
): AccessDecision {
  if (rules.emailDomains.length > 0) {
    const domain = emailDomain(claims.email);
    if (domain === undefined) return { allowed: false, reason: 'no_email' };
    if (!rules.emailDomains.includes(domain)) return { allowed: false, reason: 'domain' };
    // The JSON boolean only (OIDC Core §5.1). The string "true" that some providers send is
    // refused: a provider that gets this claim's type wrong is not trusted to have checked it.
    if (claims.email_verified !== true) return { allowed: false, reason: 'unverified' };
  }
  if (rules.groups.length > 0) {
    const member = groupsOf(claims[rules.groupsClaim]).some((g) => rules.groups.includes(g));
    if (!member) return { allowed: false, reason: 'group' };
  }
  return { allowed: true };
}

/**
 * The part after the last `@` (a domain never contains one), with A-Z lower-cased; undefined
 * without a local part or a domain. Only ASCII letters are folded: `toLowerCase()` turns the Kelvin
 * sign (U+212A) into "k", so a look-alike internationalized domain would match an ASCII one.
 */
export function emailDomain(email: unknown): string | undefined {
  if (typeof email !== 'string') return undefined;
  const at = email.lastIndexOf('@');
  if (at < 1 || at === email.length - 1) return undefined;
  return email.slice(at + 1).replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** A groups claim as a list: an array's strings, or a single string; anything else is no group. */
export function groupsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((g): g is string => typeof g === 'string');
  return [];
}

const WHY: Record<AccessRefusal, string> = {
  no_email:
    'The provider did not share your email address, which this application needs to admit you.',
  domain: "Your email's domain is not one this application admits.",
  unverified: 'Your email address is not verified by the provider.',
  group: 'You are not in a group this application admits.',
};
const WHAT_NOW = 'Sign in with another account, or ask whoever runs this application for access.';

type Tokens = client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;

/**
 * Applies the rules to a sign-in whose ID token has been validated.
 * @returns undefined when the person is admitted; else the `not_allowed` error (403) to throw,
 *   whose log fields carry the reason, the email's domain (never the address) and the groups count.
 * @throws {AppError} when userinfo is needed and fails: the sign-in cannot be decided, so it fails.
 */
export async function accessRefusal(
  oidc: client.Configuration,
  tokens: Tokens,
  rules: AccessRules,
  /** The person's claims when they do not come from an ID token (GitHub: from its API). */
  known?: Record<string, unknown>,
  /** A DPoP-bound access token's proofs, for userinfo. */
  dpop?: client.DPoPOptions,
): Promise<AppError | undefined> {
  if (!hasAccessRules(rules)) return undefined;
  const claims = known ?? (await claimsForRules(oidc, tokens, rules, dpop));
  const decision = checkAccess(claims, rules);
  if (decision.allowed) return undefined;
  const verified = claims.email_verified;
  return new AppError('not_allowed', `${WHY[decision.reason]} ${WHAT_NOW}`, {
    logFields: {
      reason: decision.reason,
      emailDomain: emailDomain(claims.email)?.slice(0, 253),
      // The type is what an operator needs when a provider sends "true" as a string.
      emailVerified: typeof verified === 'boolean' ? verified : typeof verified,
      groupsCount: groupsOf(claims[rules.groupsClaim]).length,
    },
  });
}

/**
 * The ID token's claims, with userinfo's over them when the ID token lacks one the rules read:
 * with the code flow, many providers (oidc-provider among them) put `email` and groups only in
 * userinfo. openid-client checks that userinfo's `sub` is the ID token's (OIDC Core §5.3.4).
 */
async function claimsForRules(
  oidc: client.Configuration,
  tokens: Tokens,
  rules: AccessRules,
  dpop: client.DPoPOptions | undefined,
): Promise<Record<string, unknown>> {
  const idToken = tokens.claims();
  if (!idToken) return {}; // nothing to admit anyone by
  const claims: Record<string, unknown> = { ...idToken };
  const lacking =
    (rules.emailDomains.length > 0 && claims.email === undefined) ||
    (rules.groups.length > 0 && claims[rules.groupsClaim] === undefined);
  if (!lacking || !oidc.serverMetadata().userinfo_endpoint) return claims;
  let userinfo: client.UserInfoResponse;
  try {
    userinfo = await client.fetchUserInfo(oidc, tokens.access_token, idToken.sub, dpop);
  } catch (err) {
    throw callbackError(err);
  }
  const merged: Record<string, unknown> = { ...claims, ...userinfo };
  // An email and its verification always come from the same answer, never one from each.
  if (userinfo.email !== undefined) merged.email_verified = userinfo.email_verified;
  return merged;
}
