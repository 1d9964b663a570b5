/**
 * The embedded provider's authentication levels (OpenID Connect Core §2, `acr`), weakest first.
 * Development only: real providers name their own (Keycloak's "gold", Entra's "c1", `phr`, ...).
 */

/** A demo account's password: what every sign-in starts with (`amr` ["pwd"]). */
export const PASSWORD_ACR = 'urn:codeflow:dev:password';

/** The password and a one-time code (`amr` ["pwd", "otp"]): what a step-up asks for. */
export const ONE_TIME_CODE_ACR = 'urn:codeflow:dev:password+otp';
