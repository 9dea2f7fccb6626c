/**
 * The keyring links are verified with: cachegate's single `public_key`/`private_key` pair plus
 * any `auth.keys` entries (key rotation). A private key is optional: a gateway that only
 * verifies holds no secret. Keys are imported once into node:crypto KeyObjects.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { decodeBase64Url } from '../sign/base64url.js';

/** A verification key. `id` is undefined for cachegate's single compatible key. */
export interface VerifyKey {
  id: string | undefined;
  publicKey: KeyObject;
  /** The base64url seed, when this gateway may also sign with it (the `sign` CLI). */
  privateKey: string | undefined;
}

export interface KeyConfig {
  public_key?: string | undefined;
  private_key?: string | undefined;
  keys: { id: string; public_key: string; private_key?: string | undefined }[];
}

// DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function configError(path: string, message: string): GatewayError {
  return new GatewayError('GW_ERR_CONFIG', `invalid config:\n  ${path}: ${message}`);
}

/** Import a base64url raw 32-byte Ed25519 public key. */
export function importPublicKey(b64: string, path = 'public_key'): KeyObject {
  const raw = decodeBase64Url(b64.trim());
  if (!raw || raw.length !== 32) throw configError(path, 'expected a base64url 32-byte Ed25519 public key');
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64.trim() }, format: 'jwk' });
  } catch (err) {
    throw configError(path, `not a valid Ed25519 public key (${(err as Error).message})`);
  }
}

/** Import a base64url 32-byte Ed25519 seed as a private KeyObject. */
export function importPrivateKey(b64: string, path = 'private_key'): KeyObject {
  const seed = decodeBase64Url(b64.trim());
  if (!seed || seed.length !== 32) throw configError(path, 'expected a base64url 32-byte Ed25519 seed');
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The base64url public key of a seed. */
export function publicKeyOfSeed(b64Seed: string, path = 'private_key'): string {
  const jwk = createPublicKey(importPrivateKey(b64Seed, path)).export({ format: 'jwk' });
  return jwk.x as string;
}

function entry(id: string | undefined, pub: string, priv: string | undefined, path: string): VerifyKey {
  const publicKey = importPublicKey(pub, `${path}public_key`);
  if (priv !== undefined && publicKeyOfSeed(priv, `${path}private_key`) !== pub.trim()) {
    throw configError(`${path}private_key`, 'does not match its public_key');
  }
  return { id, publicKey, privateKey: priv?.trim() };
}

/** Build the keyring; throws a GW_ERR_CONFIG naming the bad key. */
export function createKeyring(auth: KeyConfig): VerifyKey[] {
  const keys: VerifyKey[] = [];
  if (auth.public_key) keys.push(entry(undefined, auth.public_key, auth.private_key, 'auth.'));
  else if (auth.private_key) keys.push(entry(undefined, publicKeyOfSeed(auth.private_key, 'auth.private_key'), auth.private_key, 'auth.'));
  const seen = new Set<string>();
  auth.keys.forEach((k, i) => {
    if (seen.has(k.id)) throw configError(`auth.keys.${i}.id`, `duplicate key id '${k.id}'`);
    seen.add(k.id);
    keys.push(entry(k.id, k.public_key, k.private_key, `auth.keys.${i}.`));
  });
  return keys;
}
