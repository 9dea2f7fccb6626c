/**
 * One interface for every cache tier (after undici's CacheStore): metadata kept apart from the
 * body, a write that is a stream committing only when it finishes, and a destroyed writer that
 * leaves nothing behind. The core talks to `CacheTier[]` and never to a tier's own API.
 *
 * An entry is a key, the object's metadata and a body: a whole small object (body length equals
 * `meta.size`), one slice of a large object (see `slices.ts`), or the metadata of a sliced object
 * alone (an empty body).
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { CachedMeta, TierStats } from './types.js';

/** Bytes `start..end` (inclusive) of an entry's body. */
export interface BodySpan {
  start: number;
  end: number;
}

/**
 * A tier's answer: the bytes asked for, as a buffer (memory, small disk reads) or as a stream the
 * caller owns and must consume or destroy. A stream may fail with `CorruptEntryError`: the tier has
 * then dropped the entry, and no corrupt byte was pushed.
 */
export type TierHit =
  | {
      meta: CachedMeta;
      length: number;
      buffer: Buffer;
      stream?: undefined;
      /**
       * Set when the buffer is lent (`borrow`): call once its bytes have been written, and do
       * not use it after. Without it, the buffer is the caller's to keep.
       */
      release?: () => void;
    }
  | { meta: CachedMeta; length: number; buffer?: undefined; stream: Readable; release?: undefined };

export interface LookupOptions {
  /** The caller only writes the bytes out and releases them: a tier may lend a reused buffer. */
  borrow?: boolean;
}

export interface CacheTier {
  readonly name: 'memory' | 'disk';
  /** The entry's body (or `range` of it), marking it recently used. */
  lookup(key: string, range?: BodySpan, options?: LookupOptions): TierHit | undefined | Promise<TierHit | undefined>;
  /** The entry's metadata, without reading its body or touching recency. */
  peek(key: string): CachedMeta | undefined | Promise<CachedMeta | undefined>;
  /** Whether the tier holds `key` (no recency, no I/O). */
  has(key: string): boolean;
  /** Whether an entry with a body of `bodyBytes` could be held at all. */
  accepts(bodyBytes: number): boolean;
  /**
   * A writer for an entry of `bodyBytes` (`undefined` when unknown), or `undefined` when the tier
   * would not hold it. The entry appears only when the writer finishes with exactly that many
   * bytes; `meta` is read at that moment, so a writer may learn validators late (a PUT). A
   * destroyed writer leaves nothing. (A writer that commits after a `delete(key)` of the same key
   * does commit: the core checks every entry's ETag against the object's before serving it.)
   */
  openWrite(key: string, meta: CachedMeta, bodyBytes: number | undefined): Writable | undefined;
  /**
   * Optional, for a tier whose writes are synchronous: hold a complete body at once, leaving the
   * entry `openWrite(key, meta, body.length).end(body)` would, without a stream. Returns whether
   * it is held. Callers go through `commitBody`.
   */
  put?(key: string, meta: CachedMeta, body: Buffer): boolean;
  /**
   * Optional, for a tier that keeps bodies in files: an entry of `bodyBytes` written in place
   * while it is read (a slice fill). `undefined` when the tier would not hold it, or cannot take
   * synchronous writes now (a disk that holds writers back).
   */
  openFile?(key: string, bodyBytes: number): EntryFile | undefined;
  delete(key: string): void;
  stats(): TierStats;
  /** Every entry's accounted size, for invariant checks. */
  sizes(): Iterable<number>;
}

/**
 * An entry's body in its file while it arrives. Bytes are written at their offsets in any order
 * and can be read back at once (both synchronous, through the page cache), so a fill's readers
 * read the file instead of a buffer and the fill holds no body in memory. The entry appears only
 * on `commit` (which checksums what the file holds); `release()` closes the file, removing it
 * unless it was committed. Nothing may be written or read after `release()`.
 */
export interface EntryFile {
  write(at: number, chunk: Buffer): void;
  /** `length` bytes from `at`, in a new buffer. */
  read(at: number, length: number): Buffer;
  /** Make the entry, with `meta`; resolves with whether the tier holds it. */
  commit(meta: CachedMeta): Promise<boolean>;
  release(): void;
}

/**
 * Hand a complete body to a tier: at once where the tier offers `put`, else through its writer,
 * resolving once the writer is done (committed, refused or failed: the tier reports its own
 * failures). A finished fill's slice costs the memory tier no stream this way.
 */
export async function commitBody(tier: CacheTier, key: string, meta: CachedMeta, body: Buffer): Promise<void> {
  if (tier.put) {
    tier.put(key, meta, body);
    return;
  }
  const w = tier.openWrite(key, meta, body.length);
  if (!w) return;
  w.end(body);
  await once(w, 'close').catch(() => {});
}

/** A disk entry whose checksum failed while it was read: it was dropped; fetch again. */
export class CorruptEntryError extends Error {
  readonly code = 'CG_CORRUPT_ENTRY';
}
