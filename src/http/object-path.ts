/**
 * Parsing `/:bucket_id/*path` from the raw request target. The raw target is used, not the URL
 * the adapter normalised, because WHATWG URL parsing silently resolves `..` and `%2e%2e`; here
 * such keys are refused, never resolved.
 */
import { GatewayError } from '../errors.js';

/** S3's own key limit; Azure allows more, but a key must work on every store. */
export const MAX_KEY_BYTES = 1024;

// C0 controls and DEL (checked in keyProblem) break logs, headers and some stores.

export interface ObjectPath {
  bucket: string;
  key: string;
}

/** The path part of a raw request target (`/a/b?x` or `http://h/a/b?x`), still percent-encoded. */
export function rawPathOf(target: string): string {
  let t = target;
  if (!t.startsWith('/')) {
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(t);
    if (m) {
      // An empty path is `/` (RFC 3986 §6.2.3), also when a query follows the authority.
      const rest = t.slice(m[0].length);
      t = rest.startsWith('/') ? rest : `/${rest}`;
    }
  }
  const q = t.search(/[?#]/);
  return q === -1 ? t : t.slice(0, q);
}

function decode(part: string, what: string): string {
  // Most paths carry no escapes: decoding would only copy them (about 2 % of a 4 KiB hit).
  if (!part.includes('%')) return part;
  try {
    return decodeURIComponent(part);
  } catch {
    throw new GatewayError('GW_ERR_INVALID_KEY', `invalid ${what}: malformed percent-encoding`);
  }
}

/**
 * Split and decode a raw path into a bucket id and an object key, decoding each once.
 * Refuses (400) an empty key, empty segments, `.` or `..` segments, backslashes and control
 * characters, however they were encoded.
 */
export function parseObjectPath(rawPath: string): ObjectPath {
  if (!rawPath.startsWith('/')) throw new GatewayError('GW_ERR_INVALID_KEY', 'invalid path: must start with /');
  const slash = rawPath.indexOf('/', 1);
  const bucket = decode(slash === -1 ? rawPath.slice(1) : rawPath.slice(1, slash), 'bucket id');
  if (bucket === '') throw new GatewayError('GW_ERR_INVALID_KEY', 'invalid path: missing bucket id');
  const rawKey = slash === -1 ? '' : rawPath.slice(slash + 1);
  const key = decode(rawKey, 'object key');
  validateKey(key);
  return { bucket, key };
}

/** Throw a GW_ERR_INVALID_KEY with a one-line reason unless `key` is a safe object key. */
export function validateKey(key: string): void {
  const reason = keyProblem(key);
  if (reason) throw new GatewayError('GW_ERR_INVALID_KEY', `invalid object key: ${reason}`);
}

function keyProblem(key: string): string | undefined {
  if (key === '') return 'empty';
  // UTF-8 takes at most 3 bytes per UTF-16 unit: only a long key needs its bytes counted.
  if (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key) > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  // One pass (this runs on every request, hits included); reasons in the same order as ever:
  // backslash, then control character, then the first bad segment.
  let backslash = false;
  let control = false;
  let segment: string | undefined;
  let start = 0;
  for (let i = 0; i <= key.length; i++) {
    const c = i < key.length ? key.charCodeAt(i) : 47; /* / */
    if (c === 47) {
      const len = i - start;
      if (segment === undefined) {
        if (len === 0) segment = 'empty segment';
        else if (len <= 2 && key.charCodeAt(start) === 46 && (len === 1 || key.charCodeAt(start + 1) === 46)) segment = `'${key.slice(start, i)}' segment`;
      }
      start = i + 1;
    } else if (c === 92) backslash = true;
    else if (c < 32 || c === 127) control = true;
  }
  if (backslash) return 'backslash';
  if (control) return 'control character';
  return segment;
}
