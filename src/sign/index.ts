/**
 * Signing cachegate links, in exactly cachegate's format, for any JavaScript runtime (Node,
 * browsers, workers): `?sig=<payload>.<signature>`, where the payload is base64url (no padding)
 * of the JSON claims and the signature is base64url of the Ed25519 signature over the raw
 * payload bytes. Uses @noble/ed25519 and WebCrypto's SHA-512; no Node-only imports.
 *
 * ```ts
 * import { signLink } from 'cachegate/sign';
 * const url = await signLink({ baseUrl: 'https://cdn.example.com', bucket: 'media', path: 'a/b.mp4',
 *   privateKey: process.env.CACHEGATE_PRIVATE_KEY!, expiresIn: 3600 });
 * ```
 */
import { getPublicKeyAsync, signAsync } from '@noble/ed25519';
import { decodeBase64Url, encodeBase64Url } from './base64url.js';

export { decodeBase64Url, encodeBase64Url } from './base64url.js';

/** Methods a link may grant. A GET link also allows HEAD. */
export type LinkMethod = 'GET' | 'HEAD' | 'PUT' | 'DELETE';

/** The signed claims. `v`, `exp`, `m`, `b` and `p` are cachegate's; the rest are optional. */
export interface LinkClaims {
  v: 1;
  /** Expiry, unix seconds. */
  exp: number;
  m: LinkMethod;
  /** Bucket (store) id. */
  b: string;
  /** Decoded object key, without a leading slash. */
  p: string;
  /** Which configured key signed it (key rotation). */
  kid?: string;
  /** Not valid before, unix seconds. */
  nbf?: number;
  /** PUT: the exact body length. */
  len?: number;
  /** PUT: the largest body length. */
  max_len?: number;
  /** PUT: the required Content-Type. */
  ct?: string;
  /** Response Content-Disposition override: `inline` or `attachment; filename=…`. */
  rcd?: string;
  /** Response Content-Type override. */
  rct?: string;
}

const encoder = new TextEncoder();
/** cachegate's order for the optional claims. */
const OPTIONAL_CLAIMS = ['kid', 'nbf', 'len', 'max_len', 'ct', 'rcd', 'rct'] as const;

function keyBytes(key: string | Uint8Array, what: string): Uint8Array {
  const bytes = typeof key === 'string' ? decodeBase64Url(key.trim()) : key;
  if (!bytes || bytes.length !== 32) throw new Error(`${what} must be 32 bytes as base64url`);
  return bytes;
}

/**
 * Serialise claims in cachegate's key order (`v, exp, m, b, p`, then optional claims), so a
 * link made here is byte-identical to one made by cachegate for the same claims.
 */
export function serializeClaims(claims: LinkClaims): string {
  const { v, exp, m, b, p } = claims;
  const ordered: Record<string, unknown> = { v, exp, m, b, p };
  for (const k of OPTIONAL_CLAIMS) if (claims[k] !== undefined) ordered[k] = claims[k];
  return JSON.stringify(ordered);
}

/** The `sig` value for the given claims. */
export async function signToken(claims: LinkClaims, privateKey: string | Uint8Array): Promise<string> {
  const payload = encoder.encode(serializeClaims(claims));
  const signature = await signAsync(payload, keyBytes(privateKey, 'private key'));
  return `${encodeBase64Url(payload)}.${encodeBase64Url(signature)}`;
}

/** Percent-encode an object key for a URL path, segment by segment (slashes stay). */
export function encodeObjectPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** Where and what to sign; the optional claims (`kid`, `nbf`, `len`, …) are passed as they are. */
export interface SignLinkOptions extends Partial<Pick<LinkClaims, (typeof OPTIONAL_CLAIMS)[number]>> {
  /** Where the gateway is reached, e.g. `https://cdn.example.com` (a path prefix is kept). */
  baseUrl: string;
  bucket: string;
  /** The object key (decoded; a leading slash is dropped). */
  path: string;
  method?: LinkMethod;
  /** Seconds from now; ignored when `exp` is given. Defaults to 3600. */
  expiresIn?: number;
  /** Absolute expiry, unix seconds. */
  exp?: number;
  /** Base64url 32-byte Ed25519 seed, as `cachegate keygen` writes it. */
  privateKey: string | Uint8Array;
  /** Clock for tests: unix seconds now. */
  now?: number;
}

/** A ready link: `<baseUrl>/<bucket>/<encoded path>?sig=<token>`. */
export async function signLink(options: SignLinkOptions): Promise<string> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const key = options.path.replace(/^\/+/, '');
  const claims: LinkClaims = {
    v: 1,
    exp: options.exp ?? now + (options.expiresIn ?? 3600),
    m: options.method ?? 'GET',
    b: options.bucket,
    p: key,
  };
  for (const k of OPTIONAL_CLAIMS) if (options[k] !== undefined) (claims as unknown as Record<string, unknown>)[k] = options[k];
  const token = await signToken(claims, options.privateKey);
  const base = options.baseUrl.replace(/\/+$/, '');
  return `${base}/${encodeURIComponent(options.bucket)}/${encodeObjectPath(key)}?sig=${token}`;
}

/** A new keypair as base64url strings (the private key is the 32-byte seed). */
export async function generateKeypair(): Promise<{ publicKey: string; privateKey: string }> {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const pub = await getPublicKeyAsync(seed);
  return { publicKey: encodeBase64Url(pub), privateKey: encodeBase64Url(seed) };
}

/** The public key for a private key seed, as base64url. */
export async function publicKeyFor(privateKey: string | Uint8Array): Promise<string> {
  return encodeBase64Url(await getPublicKeyAsync(keyBytes(privateKey, 'private key')));
}
