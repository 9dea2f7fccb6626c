/**
 * Verifying signed links: `sig=<payload>.<signature>` in cachegate's format. The signature is
 * checked over the exact payload bytes received (the JSON is never re-serialised), with
 * node:crypto's native Ed25519. Successfully verified tokens are remembered in a bounded LRU,
 * so a popular link costs one verify; expiry and scope are still checked on every request.
 */
import { verify as cryptoVerify } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { GatewayError } from '../errors.js';
import { decodeBase64Url } from '../sign/base64url.js';
import type { LinkClaims, LinkMethod } from '../sign/index.js';
import type { VerifyKey } from './keys.js';
import type { AuthResult, LinkVerifier } from './middleware.js';

/** How many verified tokens are remembered. */
export const VERIFIED_TOKEN_CACHE_ENTRIES = 10_000;
const ED25519_SIGNATURE_BYTES = 64;
/** Longest `sig` value accepted; real ones are a few hundred bytes. */
export const MAX_SIG_CHARS = 4096;

const METHODS = new Set<LinkMethod>(['GET', 'HEAD', 'PUT', 'DELETE']);

/** A token whose signature checked out, with its parsed claims. */
export interface VerifiedToken {
  claims: LinkClaims;
  kid: string | undefined;
}

const unauthorized = (msg: string) => new GatewayError('GW_ERR_UNAUTHORIZED', msg);
const malformed = (why: string) => unauthorized(`malformed link: ${why}`);

/**
 * Check a token's form and signature; throws GW_ERR_UNAUTHORIZED with the reason. Does not check
 * time or scope (see `checkClaims`).
 */
export function verifyTokenSignature(sig: string, keys: readonly VerifyKey[]): VerifiedToken {
  if (sig.length > MAX_SIG_CHARS) throw malformed('too long');
  const dot = sig.indexOf('.');
  if (dot <= 0 || dot === sig.length - 1 || sig.indexOf('.', dot + 1) !== -1) throw malformed('expected <payload>.<signature>');
  const payload = decodeBase64Url(sig.slice(0, dot));
  const signature = decodeBase64Url(sig.slice(dot + 1));
  if (!payload || !signature) throw malformed('not canonical base64url');
  if (signature.length !== ED25519_SIGNATURE_BYTES) throw malformed('signature is not 64 bytes');

  let raw: unknown;
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8');
  try {
    raw = JSON.parse(text);
  } catch {
    throw malformed('payload is not JSON');
  }
  // JSON.parse keeps the last of repeated names; a signer's parser may keep the first. A payload
  // that two parsers could read differently is refused outright.
  if (hasDuplicateName(text)) throw malformed('payload repeats a member name');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw malformed('payload is not a JSON object');
  const obj = raw as Record<string, unknown>;

  let candidates = keys;
  if (obj.kid !== undefined) {
    if (typeof obj.kid !== 'string') throw malformed("'kid' is not a string");
    candidates = keys.filter((k) => k.id === obj.kid);
    if (candidates.length === 0) throw unauthorized(`unknown key id '${sanitize(obj.kid)}'`);
  }
  const matched = candidates.find((k) => cryptoVerify(null, payload, k.publicKey, signature));
  if (!matched) throw unauthorized('bad signature');

  if (obj.v !== 1) throw unauthorized(`unsupported link version ${sanitize(String(obj.v))}`);
  return { claims: parseClaims(obj), kid: matched.id };
}

function parseClaims(obj: Record<string, unknown>): LinkClaims {
  const int = (name: string, required: boolean): number | undefined => {
    const v = obj[name];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw malformed(`'${name}' is not a whole number`);
    return v;
  };
  const str = (name: string, required: boolean): string | undefined => {
    const v = obj[name];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string') throw malformed(`'${name}' is not a string`);
    return v;
  };
  // Exactly as signed: `get` is not `GET` (a verifier that folds case reads more than was signed).
  const m = str('m', true)! as LinkMethod;
  if (!METHODS.has(m)) throw malformed(`'m' must be GET, HEAD, PUT or DELETE`);
  const claims: LinkClaims = { v: 1, exp: int('exp', true)!, m, b: str('b', true)!, p: str('p', true)! };
  const optional = {
    kid: str('kid', false),
    nbf: int('nbf', false),
    len: int('len', false),
    max_len: int('max_len', false),
    ct: str('ct', false),
    rcd: str('rcd', false),
    rct: str('rct', false),
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) (claims as unknown as Record<string, unknown>)[k] = v;
  return claims;
}

/** Whether a link for `granted` allows `method`: a GET link also allows HEAD; HEAD never allows GET. */
export function methodAllowed(granted: LinkMethod, method: string): boolean {
  return granted === method || (granted === 'GET' && method === 'HEAD');
}

/**
 * Time and scope checks, run on every request: expiry and not-before (401), then bucket, path
 * and method (403: the link is valid, but not for this).
 */
export function checkClaims(
  claims: LinkClaims,
  request: { method: string; bucket: string; key: string },
  nowSec: number,
  clockSkewSec: number,
): void {
  if (claims.exp < nowSec - clockSkewSec) throw unauthorized('link expired');
  if (claims.nbf !== undefined && claims.nbf > nowSec + clockSkewSec) throw unauthorized('link not yet valid');
  if (claims.b !== request.bucket) throw new GatewayError('GW_ERR_FORBIDDEN', 'link is for another bucket');
  if (claims.p !== request.key) throw new GatewayError('GW_ERR_FORBIDDEN', 'link is for another path');
  if (!methodAllowed(claims.m, request.method)) {
    throw new GatewayError('GW_ERR_FORBIDDEN', `link allows ${claims.m}, not ${request.method}`);
  }
}

export interface LinkVerifierOptions {
  keys: readonly VerifyKey[];
  clockSkewMs: number;
  cacheEntries?: number;
  /** Clock, for tests. */
  nowMs?: () => number;
}

/** The verifier the auth middleware calls for `?sig=`. */
export function createLinkVerifier(options: LinkVerifierOptions): LinkVerifier {
  const cache = new LRUCache<string, VerifiedToken>({ max: options.cacheEntries ?? VERIFIED_TOKEN_CACHE_ENTRIES });
  const skewSec = options.clockSkewMs / 1000;
  const now = options.nowMs ?? Date.now;
  return function verifyLink(sig, request): AuthResult {
    let verified = cache.get(sig);
    if (!verified) {
      verified = verifyTokenSignature(sig, options.keys);
      cache.set(sig, verified);
    }
    // Whole seconds, as cachegate compares: a link is expired only once `exp` < now.
    checkClaims(verified.claims, request, Math.floor(now() / 1000), skewSec);
    return { kind: 'link', claims: verified.claims };
  };
}

/**
 * Whether any object in this (already valid) JSON text names a member twice. Walks the text once,
 * tracking strings and nesting; member names are compared after unescaping, so `"p"` and
 * `"\u0070"` are the same name.
 */
export function hasDuplicateName(text: string): boolean {
  const stack: Array<Set<string> | undefined> = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const names = stack.at(-1);
      if (expectName && names) {
        const name = JSON.parse(text.slice(i, j + 1)) as string;
        if (names.has(name)) return true;
        names.add(name);
      }
      expectName = false;
      i = j;
    } else if (ch === '{') {
      stack.push(new Set());
      expectName = true;
    } else if (ch === '[') {
      stack.push(undefined);
      expectName = false;
    } else if (ch === '}' || ch === ']') {
      stack.pop();
      expectName = false;
    } else if (ch === ',') {
      expectName = stack.at(-1) !== undefined;
    }
  }
  return false;
}

/** Keep a value from the token safe and short for an error message. */
function sanitize(s: string): string {
  return s.replace(/[^\w.-]/g, '?').slice(0, 64);
}
