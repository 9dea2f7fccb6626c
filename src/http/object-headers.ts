/**
 * The headers every object response carries: Content-Length, Content-Type, ETag, Last-Modified
 * and cachegate's `X-CG-Status`.
 */
import type { CachedMeta } from '../cache/types.js';

export const X_CG_STATUS = 'x-cg-status';

// The headers that depend only on the entry are built once per cached entry (the hit path
// serves the same entry many times) and copied per response.
const built = new WeakMap<CachedMeta, { hit: Readonly<Record<string, string>>; miss: Readonly<Record<string, string>> }>();

/** Headers for a full (200) object response: a fresh object the caller may add to. */
export function objectHeaders(meta: CachedMeta, cache: 'hit' | 'miss'): Record<string, string> {
  let b = built.get(meta);
  if (!b) {
    const base: Record<string, string> = {
      'content-type': meta.contentType,
      'content-length': String(meta.size),
      etag: meta.etag,
      'accept-ranges': 'bytes',
    };
    if (meta.lastModifiedMs !== undefined) base['last-modified'] = new Date(meta.lastModifiedMs).toUTCString();
    b = { hit: { ...base, [X_CG_STATUS]: 'hit=1' }, miss: { ...base, [X_CG_STATUS]: 'hit=0' } };
    built.set(meta, b);
  }
  return { ...(cache === 'hit' ? b.hit : b.miss) };
}
