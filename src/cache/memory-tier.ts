/**
 * The memory tier: a CacheTier on lru-cache, bounded in bytes, not entries. An entry is charged
 * what it really costs: its body, its key and metadata strings, and a measured per-entry
 * overhead (the LRU's slots, the entry and metadata objects, the Buffer's backing store, and the
 * header objects the HTTP layer builds once per entry). Bodies get their own backing store
 * (never a slice of Node's shared 8 KiB pool, which one retained 1 KiB entry would pin whole).
 */
import { Writable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import type { BodySpan, CacheTier, TierHit } from './tier.js';
import type { CacheEntry, CachedMeta, TierEventListener, TierStats } from './types.js';

/**
 * What an entry costs beyond its body and strings, in resident memory: the LRU's slots and the
 * key Set kept for purges, the entry and metadata objects, the Buffer with its own backing
 * store (a BackingStore record and a malloc header beside the bytes), the response-header
 * template the HTTP layer keeps per entry, and the V8 heap's slack around all of it. Measured
 * as RSS growth over 20,000 cached 1 KiB entries with headers built (node --expose-gc, full GC
 * before and after): 4.7 KB per entry, of which 1.8 KB live JS heap and ArrayBuffer bytes;
 * the charge of a 1 KiB entry with its strings comes to about that. Node 24 keeps slightly
 * more per entry than Node 20 (its CI run filled the tier to 1.106x max_memory at 3584), so the
 * charge carries 256 bytes more.
 * test/integration/memory-bounds.test.ts checks RSS against max_memory with the tier full.
 */
export const ENTRY_OVERHEAD_BYTES = 3840;

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

const EMPTY = Buffer.alloc(0);

export class MemoryTier implements CacheTier {
  readonly name = 'memory';
  readonly #lru: LRUCache<string, CacheEntry> | undefined;
  readonly #maxBytes: number;
  readonly #maxEntryBytes: number;
  readonly #onEvent: TierEventListener | undefined;
  /**
   * The LRU's keys again, as a Set: a purge walks it in chunks, and a Set's iterator stays valid
   * (visiting every key still present) while requests change the LRU between chunks.
   */
  readonly #keys = new Set<string>();

  constructor(options: MemoryTierOptions) {
    this.#maxBytes = options.maxBytes;
    this.#maxEntryBytes = Math.min(options.maxEntryBytes ?? options.maxBytes, options.maxBytes);
    this.#onEvent = options.onEvent;
    // A zero-byte memory tier is off (lru-cache refuses maxSize 0).
    this.#lru =
      options.maxBytes > 0
        ? new LRUCache<string, CacheEntry>({
            maxSize: options.maxBytes,
            maxEntrySize: Math.max(1, this.#maxEntryBytes),
            sizeCalculation: (entry, key) => entryCost(key, entry),
            dispose: (entry, key, reason) => {
              if (reason !== 'set') this.#keys.delete(key);
              if (reason === 'evict') this.#onEvent?.({ type: 'evicted', tier: this.name, bytes: entryCost(key, entry) });
            },
          })
        : undefined;
  }

  /** The entry's body (or a zero-copy view of `range`), marking it recently used. */
  lookup(key: string, range?: BodySpan): TierHit | undefined {
    const entry = this.#lru?.get(key);
    this.#onEvent?.({ type: entry ? 'hit' : 'miss', tier: this.name });
    if (!entry) return undefined;
    const buffer = range ? entry.body.subarray(range.start, range.end + 1) : entry.body;
    return { meta: entry.meta, length: buffer.length, buffer };
  }

  /**
   * A whole object held in memory, or `undefined` (a miss is not counted: the caller goes on to
   * the full route, which looks again). For the HTTP hit fast path.
   */
  wholeObject(key: string): CacheEntry | undefined {
    const entry = this.#lru?.get(key);
    if (!entry || entry.body.length !== entry.meta.size) return undefined;
    this.#onEvent?.({ type: 'hit', tier: this.name });
    return entry;
  }

  peek(key: string): CachedMeta | undefined {
    return this.#lru?.peek(key)?.meta;
  }

  has(key: string): boolean {
    return this.#lru?.has(key) ?? false;
  }

  /** Whether a body of `bodyBytes` could be held (its exact cost is checked when it commits). */
  accepts(bodyBytes: number): boolean {
    return this.#lru !== undefined && bodyBytes + ENTRY_OVERHEAD_BYTES <= this.#maxEntryBytes;
  }

  openWrite(key: string, meta: CachedMeta, bodyBytes: number | undefined): Writable | undefined {
    const cost = (bodyBytes ?? 0) + metaCost(key, meta);
    if (!this.#lru || cost > this.#maxEntryBytes) {
      this.#onEvent?.({ type: 'rejected', tier: this.name, bytes: cost, reason: 'too_large' });
      return undefined;
    }
    return new MemoryWriter(meta, bodyBytes, this.#maxEntryBytes, (w, body) => this.#set(key, { meta: w.meta, body }));
  }

  delete(key: string): boolean {
    return this.#lru?.delete(key) ?? false;
  }

  clear(): void {
    this.#lru?.clear();
    this.#keys.clear();
  }

  /**
   * Hold a complete body at once: what `openWrite(...).end(body)` does, without a stream per
   * entry (for callers that already hold many complete bodies). Returns whether it is held.
   */
  put(key: string, meta: CachedMeta, body: Buffer): boolean {
    if (metaCost(key, meta) + body.length > this.#maxEntryBytes || !this.#lru) {
      this.#onEvent?.({ type: 'rejected', tier: this.name, bytes: metaCost(key, meta) + body.length, reason: 'too_large' });
      return false;
    }
    this.#set(key, { meta, body });
    return this.#lru.peek(key)?.body === body;
  }

  /** Whether an entry for `key` with `meta` and a body of `bodyBytes` would fit now without evicting anything. */
  fitsWithoutEviction(key: string, meta: CachedMeta, bodyBytes: number): boolean {
    if (!this.#lru) return false;
    return this.#lru.calculatedSize + bodyBytes + metaCost(key, meta) <= this.#maxBytes;
  }

  /** The entry that would be evicted next (least recently used), without touching recency. */
  coldestKey(): string | undefined {
    const next = this.#lru?.rkeys().next();
    return next && !next.done ? next.value : undefined;
  }

  /** The entry for `key` without touching recency or counting anything. */
  peekEntry(key: string): CacheEntry | undefined {
    return this.#lru?.peek(key);
  }

  /** The keys held, live (for purges: walk it in chunks). */
  keys(): IterableIterator<string> {
    return this.#keys.values();
  }

  stats(): TierStats {
    return { entries: this.#lru?.size ?? 0, bytes: this.#lru?.calculatedSize ?? 0, maxBytes: this.#maxBytes };
  }

  *sizes(): Generator<number> {
    if (!this.#lru) return;
    for (const [key, entry] of this.#lru.entries()) yield entryCost(key, entry);
  }

  #set(key: string, entry: CacheEntry): void {
    const bytes = entryCost(key, entry);
    if (!this.#lru || bytes > this.#maxEntryBytes) {
      this.#onEvent?.({ type: 'rejected', tier: this.name, bytes, reason: 'too_large' });
      return;
    }
    this.#lru.set(key, entry);
    if (this.#lru.has(key)) this.#keys.add(key);
    this.#onEvent?.({ type: 'stored', tier: this.name, bytes });
  }

}

/**
 * Collects one entry's body. A single chunk of exactly the announced size (a finished fill) is
 * adopted without a copy; otherwise chunks are copied into one buffer of its own.
 */
class MemoryWriter extends Writable {
  readonly meta: CachedMeta;
  readonly #expected: number | undefined;
  readonly #max: number;
  readonly #commit: (w: MemoryWriter, body: Buffer) => void;
  #chunks: Buffer[] = [];
  #bytes = 0;

  constructor(meta: CachedMeta, expected: number | undefined, max: number, commit: (w: MemoryWriter, body: Buffer) => void) {
    super();
    this.meta = meta;
    this.#expected = expected;
    this.#max = max;
    this.#commit = commit;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#bytes += chunk.length;
    if (this.#bytes > (this.#expected ?? this.#max)) {
      cb(new Error(`entry body longer than ${this.#expected ?? this.#max} bytes`));
      return;
    }
    this.#chunks.push(chunk);
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#expected !== undefined && this.#bytes !== this.#expected) {
      cb(new Error(`entry body ended after ${this.#bytes} of ${this.#expected} bytes`));
      return;
    }
    const c = this.#chunks;
    let body: Buffer;
    if (this.#bytes === 0) body = EMPTY;
    else if (c.length === 1 && c[0]!.length === c[0]!.buffer.byteLength) body = c[0]!;
    else {
      body = Buffer.allocUnsafeSlow(this.#bytes);
      let at = 0;
      for (const chunk of c) at += chunk.copy(body, at);
    }
    this.#chunks = [];
    this.#commit(this, body);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#chunks = [];
    cb(err);
  }
}

function metaCost(key: string, m: CachedMeta): number {
  return key.length + m.etag.length + m.contentType.length + ENTRY_OVERHEAD_BYTES;
}

function entryCost(key: string, entry: CacheEntry): number {
  return entry.body.length + metaCost(key, entry.meta);
}
