import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  calculateJwkThumbprint,
  exportJWK,
  importJWK,
  importPKCS8,
  type CryptoKey,
  type JWK,
} from 'jose';
import { FAPI2_ALGORITHMS } from '../config.js';

/** codeflow's own signing key for private_key_jwt (RFC 7523): the private half signs, the public half is published. */
export interface ClientKey {
  privateKey: CryptoKey;
  /** The RFC 7638 thumbprint of the public key: stable, so the provider finds it again. */
  kid: string;
  alg: string;
  /** The public key as served at /.well-known/jwks.json. */
  publicJwk: JWK;
}

/**
 * The JWS algorithm for a key of this type. RSA: RS256, the one every provider accepts; with FAPI
 * 2.0, PS256, the RSA signature that profile allows.
 */
function algorithmOf(key: KeyObject, fapi2: boolean): string {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return fapi2 ? 'PS256' : 'RS256';
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ES256';
    if (curve === 'secp384r1') return 'ES384';
    if (curve === 'secp521r1') return 'ES512';
  }
  throw new Error(`OIDC_CLIENT_PRIVATE_KEY_FILE: unsupported key type ${type ?? 'unknown'}`);
}

/**
 * Reads the private key from `file`: PEM (PKCS#8, or PKCS#1/SEC1, which Node converts) or a
 * private JWK. The algorithm follows from the key (or the JWK's own `alg`). With `fapi2`, a key
 * whose algorithm FAPI 2.0 forbids (RS256, ES384, ...) is refused.
 * @throws {Error} naming the file's problem (never its content).
 */
export async function loadClientKey(file: string, fapi2 = false): Promise<ClientKey> {
  const text = (await readFile(file, 'utf8')).trim();
  let key: KeyObject;
  let jwkAlg: string | undefined;
  try {
    if (text.startsWith('{')) {
      const jwk = JSON.parse(text) as JWK;
      jwkAlg = jwk.alg;
      key = createPrivateKey({ key: jwk as never, format: 'jwk' });
    } else {
      key = createPrivateKey(text);
    }
  } catch {
    throw new Error(
      'OIDC_CLIENT_PRIVATE_KEY_FILE: not a private key (PEM PKCS#8, or a private JWK)',
    );
  }
  const alg = jwkAlg ?? algorithmOf(key, fapi2);
  if (fapi2 && !(FAPI2_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new Error(
      `OIDC_CLIENT_PRIVATE_KEY_FILE: a ${alg} key is not allowed with OIDC_PROFILE=fapi2 (only ${FAPI2_ALGORITHMS.join(', ')}: a P-256, RSA or Ed25519 key)`,
    );
  }
  const pkcs8 = key.export({ format: 'pem', type: 'pkcs8' }).toString();
  const privateKey = (await importPKCS8(pkcs8, alg)) as CryptoKey;
  const publicJwk = await exportJWK(createPublicKey(key));
  const kid = await calculateJwkThumbprint(publicJwk);
  // The public key goes through jose once more, so a malformed one fails here, at start.
  await importJWK(publicJwk, alg);
  return { privateKey, kid, alg, publicJwk: { ...publicJwk, kid, alg, use: 'sig' } };
}
