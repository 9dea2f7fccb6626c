/**
 * Parsing `/:bucket_id/*path` from the raw request target. The raw target is used, not the URL
 * the adapter normalised, because WHATWG URL parsing silently resolves `..` and `%2e%2e`; here
 * such keys are refused, never resolved.
 */
import { GatewayError } from '../errors.js';

/** S3's own key limit; Azure allows more, but a key must work on every store. */
export const MAX_KEY_BYTES = 1024;

// C0 controls and DEL. Keys with them break logs, headers and some stores.
// eslint-disable-next-line no-control-regex
const CONTROL_CHAR_RE = /[\u0000-\u001f\u007f]/;

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
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  if (key.includes('\\')) return 'backslash';
  if (CONTROL_CHAR_RE.test(key)) return 'control character';
  for (const segment of key.split('/')) {
    if (segment === '') return 'empty segment';
    if (segment === '.' || segment === '..') return `'${segment}' segment`;
  }
  return undefined;
}
