/**
 * The headers every object response carries: Content-Length, Content-Type, ETag, Last-Modified
 * and cachegate's `X-CG-Status`.
 */
import type { CachedMeta } from '../cache/types.js';

export const X_CG_STATUS = 'x-cg-status';

/**
 * Headers for a full (200) object response: a fresh object the caller may add to. Not memoized
 * here: the one header builder (response-headers.ts) keeps what hits reuse, once per entry.
 */
export function objectHeaders(meta: CachedMeta, cache: 'hit' | 'miss'): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': meta.contentType,
    'content-length': String(meta.size),
    etag: meta.etag,
    'accept-ranges': 'bytes',
  };
  if (meta.lastModifiedMs !== undefined) h['last-modified'] = new Date(meta.lastModifiedMs).toUTCString();
  h[X_CG_STATUS] = cache === 'hit' ? 'hit=1' : 'hit=0';
  return h;
}
