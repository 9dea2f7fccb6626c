/**
 * The headers every object response carries: Content-Length, Content-Type, ETag, Last-Modified
 * and cachegate's `X-CG-Status`.
 */
import type { CachedMeta } from '../cache/types.js';

export const X_CG_STATUS = 'x-cg-status';

/** Headers for a full (200) object response. */
export function objectHeaders(meta: CachedMeta, cache: 'hit' | 'miss'): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': meta.contentType,
    'content-length': String(meta.size),
    etag: meta.etag,
    [X_CG_STATUS]: cache === 'hit' ? 'hit=1' : 'hit=0',
  };
  if (meta.lastModifiedMs !== undefined) headers['last-modified'] = new Date(meta.lastModifiedMs).toUTCString();
  return headers;
}
