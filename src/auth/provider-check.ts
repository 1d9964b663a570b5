import type { ServerMetadata } from 'openid-client';
import { DPOP_ALG } from './dpop.js';

/** Entra ID's `common` / `organizations` / `consumers` metadata: one issuer template for every tenant. */
export function isEntraTenantIndependent(issuer: string): boolean {
  return issuer.startsWith('https://login.microsoftonline.com/') && issuer.includes('{tenantid}');
}

/** One thing the provider's metadata says about what codeflow needs or will do. */
export interface Finding {
  /** fail: codeflow cannot work so; warn: it works, with what `says` spells out; ok: as needed. */
  level: 'ok' | 'warn' | 'fail';
  topic: string;
  says: string;
}

export interface ProviderCheck {
  verdict: 'ok' | 'fail';
  findings: Finding[];
}

/** What codeflow will ask of the provider, from its configuration. */
export interface Wants {
  issuer: string;
  idTokenAlg: string;
  clientAuthMethod: string;
  scopes: string;
  par?: 'auto' | 'on' | 'off';
  /** OIDC_DPOP=on: the provider must advertise DPoP with ES256, the algorithm codeflow signs with. */
  dpop?: boolean;
  /** fapi2: what the profile requires of the provider is a failure when missing, not a gap. */
  profile?: 'none' | 'fapi2';
}

/**
 * Compares the provider's metadata with what codeflow needs and will do, and says what follows
 * from each gap in plain words. A list the provider leaves out is taken at the specification's
 * default (RFC 8414 §2): client_secret_basic for client authentication, for instance.
 */
export function checkProvider(metadata: ServerMetadata, wants: Wants): ProviderCheck {
  const findings: Finding[] = [];
  const add = (level: Finding['level'], topic: string, says: string) =>
    findings.push({ level, topic, says });
  const lists = (field: keyof ServerMetadata, value: string): boolean | undefined => {
    const list = metadata[field];
    return Array.isArray(list) ? list.includes(value) : undefined;
  };

  if (new URL(metadata.issuer).href === new URL(wants.issuer).href) {
    add('ok', 'issuer', `${metadata.issuer}, exactly as configured`);
  } else if (isEntraTenantIndependent(metadata.issuer)) {
    add(
      'ok',
      'issuer',
      `${metadata.issuer}: multi-tenant Entra ID; each ID token's issuer is checked against its own tenant (tid)`,
    );
  } else {
    add('fail', 'issuer', `configured ${wants.issuer}, but the provider names ${metadata.issuer}`);
  }

  if (lists('response_types_supported', 'code') === false) {
    add('fail', 'response type', 'the provider does not offer the authorization-code flow');
  } else add('ok', 'response type', 'code');

  const fapi2 = wants.profile === 'fapi2';
  const s256 = lists('code_challenge_methods_supported', 'S256');
  if (s256 === true) add('ok', 'PKCE', 'S256');
  else
    add(
      fapi2 ? 'fail' : 'warn',
      'PKCE',
      fapi2
        ? 'FAPI 2.0 requires PKCE with S256, and the provider does not list it'
        : s256 === false
          ? 'the provider does not list S256: codeflow sends it anyway, and a provider that ignores it leaves the code unprotected if it leaks'
          : 'the provider does not say whether it supports PKCE: codeflow sends S256 anyway',
    );

  if (lists('id_token_signing_alg_values_supported', wants.idTokenAlg) === false) {
    const offered = (metadata.id_token_signing_alg_values_supported ?? []).join(', ');
    add(
      'fail',
      'ID-token algorithm',
      `codeflow accepts only ${wants.idTokenAlg} (OIDC_ID_TOKEN_ALG); the provider signs with ${offered}`,
    );
  } else add('ok', 'ID-token algorithm', wants.idTokenAlg);

  const methods = metadata.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
  if (methods.includes(wants.clientAuthMethod)) {
    add('ok', 'client authentication', wants.clientAuthMethod);
  } else {
    add(
      'fail',
      'client authentication',
      `codeflow uses ${wants.clientAuthMethod}; the provider accepts ${methods.join(', ')}`,
    );
  }

  const parEndpoint = metadata.pushed_authorization_request_endpoint;
  const parRequired = metadata.require_pushed_authorization_requests === true;
  const par = wants.par ?? 'auto';
  if (par === 'on' && !parEndpoint) {
    add(
      'fail',
      'PAR',
      'OIDC_PAR=on, but the provider has no pushed authorization request endpoint',
    );
  } else if (par === 'off' && parRequired) {
    add('fail', 'PAR', 'the provider requires pushed authorization requests, and OIDC_PAR=off');
  } else if (parEndpoint && par !== 'off') {
    add('ok', 'PAR', `the authorization request is pushed to ${parEndpoint} (RFC 9126)`);
  } else {
    add(
      'ok',
      'PAR',
      parEndpoint ? 'offered, not used (OIDC_PAR=off)' : 'not offered: the request goes in the URL',
    );
  }

  const dpopAlgs = metadata.dpop_signing_alg_values_supported;
  if (wants.dpop) {
    if (!Array.isArray(dpopAlgs)) {
      add(
        'fail',
        'DPoP',
        'OIDC_DPOP=on, but the provider does not advertise DPoP (no dpop_signing_alg_values_supported): it would issue unbound tokens, or refuse the proofs',
      );
    } else if (!dpopAlgs.includes(DPOP_ALG)) {
      add(
        'fail',
        'DPoP',
        `codeflow signs DPoP proofs with ${DPOP_ALG}; the provider accepts ${dpopAlgs.join(', ')}`,
      );
    } else
      add('ok', 'DPoP', `access tokens bound to a key per session, proofs signed with ${DPOP_ALG}`);
  } else {
    add(
      'ok',
      'DPoP',
      Array.isArray(dpopAlgs)
        ? 'offered, not used (OIDC_DPOP=off): access tokens are bearer tokens'
        : 'not offered: access tokens are bearer tokens',
    );
  }

  if (metadata.revocation_endpoint) add('ok', 'revocation', metadata.revocation_endpoint);
  else
    add(
      'warn',
      'revocation',
      'the provider has no revocation endpoint: sign-out cannot revoke refresh tokens; they stay valid until they expire',
    );

  if (metadata.end_session_endpoint)
    add('ok', 'sign-out at the provider', metadata.end_session_endpoint);
  else
    add(
      'warn',
      'sign-out at the provider',
      'the provider has no end-session endpoint: sign-out ends the session here only, and the next sign-in may not ask for a password',
    );

  if (metadata.userinfo_endpoint) add('ok', 'userinfo', metadata.userinfo_endpoint);
  else
    add(
      'warn',
      'userinfo',
      'the provider has no userinfo endpoint: names and emails come from the ID token only, and without API_URL the dashboard has no API to call',
    );

  if (metadata.authorization_response_iss_parameter_supported === true) {
    add('ok', 'RFC 9207 iss', 'sent with every authorization response');
  } else {
    add(
      fapi2 ? 'fail' : 'warn',
      'RFC 9207 iss',
      fapi2
        ? 'FAPI 2.0 requires `iss` in the authorization response (RFC 9207), and the provider does not send it'
        : 'the provider does not send `iss` with the authorization response: codeflow relies on the ID token’s issuer check alone against mix-up',
    );
  }

  if (wants.scopes.split(' ').includes('offline_access')) {
    if (lists('scopes_supported', 'offline_access') === false) {
      add(
        'warn',
        'refresh tokens',
        'the provider does not list the offline_access scope: it may issue no refresh token, and sessions then end when the access token does',
      );
    } else if (lists('grant_types_supported', 'refresh_token') === false) {
      add(
        'warn',
        'refresh tokens',
        'the provider does not list the refresh_token grant: sessions end when the access token does',
      );
    } else add('ok', 'refresh tokens', 'offline_access and the refresh_token grant');
  }

  if (metadata.backchannel_logout_supported === true) add('ok', 'back-channel logout', 'supported');
  else
    add(
      'warn',
      'back-channel logout',
      'the provider does not offer back-channel logout: a session ended at the provider stays signed in here until its tokens fail',
    );

  return { verdict: findings.some((f) => f.level === 'fail') ? 'fail' : 'ok', findings };
}

/** The report as text: one line per finding, the verdict last. */
export function formatCheck(issuer: string, check: ProviderCheck): string {
  const mark = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
  const width = Math.max(...check.findings.map((f) => f.topic.length));
  const lines = check.findings.map(
    (f) => `  ${mark[f.level]}  ${f.topic.padEnd(width)}  ${f.says}`,
  );
  const verdict =
    check.verdict === 'ok'
      ? 'codeflow can sign people in with this provider'
      : 'codeflow cannot sign anyone in with this provider until the FAIL lines are fixed';
  return [`provider ${issuer}`, ...lines, verdict].join('\n');
}
