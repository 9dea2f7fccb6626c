/**
 * What the cache holds: metadata kept apart from the body (after undici's CacheStore).
 */

/** Metadata of a cached object, resolved once when it was fetched. */
export interface CachedMeta {
  size: number;
  /** Quoted entity tag, always present for cached objects. */
  etag: string;
  /** Milliseconds since the epoch, when the store gave a modification time. */
  lastModifiedMs: number | undefined;
  /** The final Content-Type (store type, extension or magic bytes). */
  contentType: string;
  /** When the entry was cached, in milliseconds since the epoch. */
  cachedAtMs: number;
}

/** A cached object held in memory. */
export interface CacheEntry {
  meta: CachedMeta;
  body: Buffer;
}

/** Small events a tier emits; only `metrics/` turns them into series. */
export type TierEvent =
  | { type: 'hit'; tier: string }
  | { type: 'miss'; tier: string }
  | { type: 'stored'; tier: string; bytes: number }
  | { type: 'evicted'; tier: string; bytes: number }
  | { type: 'rejected'; tier: string; bytes: number; reason: string };

export type TierEventListener = (event: TierEvent) => void;

/** The bytes and entries a tier holds right now. */
export interface TierStats {
  entries: number;
  bytes: number;
  maxBytes: number;
}
