/**
 * The memory tier: an LRU bounded in bytes, not entries. An entry's size is its body plus an
 * estimate of its metadata, so many tiny objects cannot blow past the limit either.
 */
import { LRUCache } from 'lru-cache';
import type { CacheEntry, TierEventListener, TierStats } from './types.js';

/** Per-entry bookkeeping beyond the body: key, metadata object, LRU node (measured roughly). */
export const ENTRY_OVERHEAD_BYTES = 320;
/** Room for an ETag and a Content-Type when only the body size is known yet. */
const META_ESTIMATE_BYTES = 256;

export interface MemoryTierOptions {
  maxBytes: number;
  /** Largest single entry; defaults to `maxBytes`. */
  maxEntryBytes?: number;
  onEvent?: TierEventListener;
}

/** Build the memory tier. */
export function createMemoryTier(options: MemoryTierOptions): MemoryTier {
  return new MemoryTier(options);
}

export class MemoryTier {
  readonly name = 'memory';
  readonly #lru: LRUCache<string, CacheEntry> | undefined;
  readonly #maxBytes: number;
  readonly #maxEntryBytes: number;
  readonly #onEvent: TierEventListener | undefined;

  constructor(options: MemoryTierOptions) {
    this.#maxBytes = options.maxBytes;
    this.#maxEntryBytes = Math.min(options.maxEntryBytes ?? options.maxBytes, options.maxBytes);
    this.#onEvent = options.onEvent;
    // A zero-byte memory tier is off (lru-cache refuses maxSize 0).
    this.#lru =
      options.maxBytes > 0
        ? new LRUCache<string, CacheEntry>({
            maxSize: options.maxBytes,
            maxEntrySize: this.#maxEntryBytes,
            sizeCalculation: (entry, key) => entrySize(key, entry),
            dispose: (entry, key, reason) => {
              if (reason === 'evict') this.#onEvent?.({ type: 'evicted', tier: this.name, bytes: entrySize(key, entry) });
            },
          })
        : undefined;
  }

  /** The entry for `key`, marking it recently used. */
  get(key: string): CacheEntry | undefined {
    const entry = this.#lru?.get(key);
    this.#onEvent?.({ type: entry ? 'hit' : 'miss', tier: this.name });
    return entry;
  }

  /**
   * The entry for `key` if held (marking it recently used and counting the hit); a miss is not
   * counted, because the caller will look again through `get` (the hit fast path).
   */
  getIfPresent(key: string): CacheEntry | undefined {
    const entry = this.#lru?.get(key);
    if (entry) this.#onEvent?.({ type: 'hit', tier: this.name });
    return entry;
  }

  /** Whether `key` is held, without touching recency or counting a hit. */
  has(key: string): boolean {
    return this.#lru?.has(key) ?? false;
  }

  /**
   * Whether an entry of `bodyBytes` could be held at all (a pre-check before fetching; metadata
   * is estimated at its usual upper size, `set()` checks the exact size).
   */
  accepts(key: string, bodyBytes: number): boolean {
    return this.#lru !== undefined && bodyBytes + key.length + ENTRY_OVERHEAD_BYTES + META_ESTIMATE_BYTES <= this.#maxEntryBytes;
  }

  /** Store an entry; returns false (and stores nothing) when it is too large for this tier. */
  set(key: string, entry: CacheEntry): boolean {
    const bytes = entrySize(key, entry);
    // Compare the size lru-cache will charge: over maxEntrySize it silently drops the entry.
    if (!this.#lru || bytes > this.#maxEntryBytes) {
      this.#onEvent?.({ type: 'rejected', tier: this.name, bytes, reason: 'too_large' });
      return false;
    }
    this.#lru.set(key, entry);
    this.#onEvent?.({ type: 'stored', tier: this.name, bytes });
    return true;
  }

  delete(key: string): boolean {
    return this.#lru?.delete(key) ?? false;
  }

  clear(): void {
    this.#lru?.clear();
  }

  stats(): TierStats {
    return { entries: this.#lru?.size ?? 0, bytes: this.#lru?.calculatedSize ?? 0, maxBytes: this.#maxBytes };
  }

  /** Every entry's accounted size, for invariant checks in tests. */
  *sizes(): Generator<number> {
    if (!this.#lru) return;
    for (const [key, entry] of this.#lru.entries()) yield entrySize(key, entry);
  }
}

function entrySize(key: string, entry: CacheEntry): number {
  const m = entry.meta;
  return entry.body.length + key.length + m.etag.length + m.contentType.length + ENTRY_OVERHEAD_BYTES;
}
