import type { Request, RequestHandler } from 'express';
import type { ApiResponse } from '../api/provider-api.js';
import { AppError } from '../errors.js';

/**
 * Step-up: a page, or the API behind it, can ask more of the sign-in than the session has: a
 * level of authentication (`acr`, OpenID Connect Core §2) and a recent one (`auth_time` within
 * `max_age`). The person then signs in again with `acr_values` and `max_age` in the request, and
 * the ID token that comes back must show both, or nothing changes.
 */
export interface AuthRequirement {
  /** Any one of these levels will do; empty: any level. */
  acrValues: readonly string[];
  /** The sign-in must be at most this many seconds old. */
  maxAgeSeconds?: number;
}

/** What the session knows about its sign-in, from the ID token. */
export interface SignInFacts {
  acr?: string;
  /** Epoch seconds (`auth_time`). */
  authTime?: number;
}

/** Clock difference allowed between the provider and us when judging `auth_time`. */
const SKEW_SECONDS = 30;
const MAX_ACR_VALUES = 5;
const MAX_ACR_LENGTH = 200;
/** One acr value: printable ASCII without spaces (OpenID Connect Core §3.1.2.1 separates by space). */
const ACR = /^[\x21-\x7e]{1,200}$/;

/**
 * Why `facts` fall short of `requirement`, in words for the person, or undefined when they meet it.
 * `now` is epoch seconds.
 */
export function shortfall(
  facts: SignInFacts,
  requirement: AuthRequirement,
  now: number,
): string | undefined {
  const { acrValues, maxAgeSeconds } = requirement;
  if (acrValues.length > 0 && (facts.acr === undefined || !acrValues.includes(facts.acr))) {
    return `The sign-in was at level ${facts.acr ?? '(not stated)'}; this needs ${acrValues.join(' or ')}.`;
  }
  if (maxAgeSeconds === undefined) return undefined;
  if (facts.authTime === undefined) {
    return 'The provider did not say when the sign-in happened (auth_time), so it cannot count as recent.';
  }
  const age = now - facts.authTime;
  if (age < -SKEW_SECONDS) {
    return 'The provider dated the sign-in in the future (auth_time), so it cannot count as recent.';
  }
  if (age > maxAgeSeconds + SKEW_SECONDS) {
    return `The sign-in happened ${minutes(age)} ago; this needs one within the last ${minutes(maxAgeSeconds)}.`;
  }
  return undefined;
}

function minutes(seconds: number): string {
  const m = Math.round(seconds / 60);
  return m >= 1 ? `${m} minute${m === 1 ? '' : 's'}` : `${seconds} seconds`;
}

/**
 * A requirement from outside: the API's challenge (RFC 9470 §3) or /login's query. Malformed or
 * oversized values are dropped: they only ever ask the provider for more, never grant anything.
 */
export function requirementFrom(acrValues: unknown, maxAge: unknown): AuthRequirement | undefined {
  const values =
    typeof acrValues === 'string' && acrValues.length <= MAX_ACR_VALUES * (MAX_ACR_LENGTH + 1)
      ? acrValues.split(' ').filter((v) => ACR.test(v))
      : [];
  const seconds =
    typeof maxAge === 'string' && /^\d{1,6}$/.test(maxAge) ? Number(maxAge) : undefined;
  if (values.length === 0 && seconds === undefined) return undefined;
  return {
    acrValues: [...new Set(values)].slice(0, MAX_ACR_VALUES),
    ...(seconds !== undefined && { maxAgeSeconds: seconds }),
  };
}

/** The authorization request's parameters for a requirement (OpenID Connect Core §3.1.2.1). */
export function stepUpParams(requirement: AuthRequirement | undefined): Record<string, string> {
  if (!requirement) return {};
  return {
    ...(requirement.acrValues.length > 0 && { acr_values: requirement.acrValues.join(' ') }),
    ...(requirement.maxAgeSeconds !== undefined && {
      max_age: String(requirement.maxAgeSeconds),
    }),
  };
}

/** `/login` with where to come back to and what to ask for. */
export function signInUrl(returnTo: string, requirement?: AuthRequirement): string {
  return `/login?${new URLSearchParams({ returnTo, ...stepUpParams(requirement) })}`;
}

/**
 * A route that needs `requirement`: a session that falls short (or none at all) goes to sign in
 * with it, and comes back here. Put it before requireUser: someone not signed in then signs in
 * once, at the level the page needs, not twice.
 */
export function requireSignIn(requirement: AuthRequirement, now: () => number): RequestHandler {
  return (req, res, next) => {
    const session = req.session;
    if (session?.user && !shortfall(session, requirement, now())) return next();
    res.redirect(signInUrl(req.originalUrl, requirement));
  };
}

/**
 * RFC 9470: the API refused the token because the sign-in behind it is not strong or recent
 * enough, and said what would do. The person is offered exactly that sign-in, back to this page.
 */
export function stepUpRequired(req: Request, response: ApiResponse): AppError {
  const requirement = requirementFrom(
    response.challenge?.acr_values,
    response.challenge?.max_age,
  ) ?? { acrValues: [] };
  const details: Array<[string, string]> = [];
  if (requirement.acrValues.length > 0)
    details.push(['Level asked for (acr_values)', requirement.acrValues.join(' or ')]);
  if (requirement.maxAgeSeconds !== undefined)
    details.push(['Signed in within (max_age)', `${requirement.maxAgeSeconds} seconds`]);
  if (req.session?.acr) details.push(['Your sign-in', req.session.acr]);
  return new AppError(
    'step_up_required',
    'The API asks you to sign in again, more strongly or more recently, before it answers. You will come back here afterwards.',
    {
      details,
      signIn: signInUrl(req.method === 'GET' ? req.originalUrl : '/dashboard', requirement),
    },
  );
}
