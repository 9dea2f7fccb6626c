/**
 * The object service decides: hit or miss, which tier, when to fetch, and what is cached. It
 * knows nothing about HTTP status codes or SDKs. Memory is the first tier and disk the second;
 * a miss joins or starts a fill (`fills.ts`: one store GET per key, waiters stream as bytes
 * arrive); writes stream to the store and touch the cache only once the store acknowledged.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { GatewayError, StoreError } from '../errors.js';
import type { DiskTier } from '../cache/disk-tier.js';
import type { MemoryTier } from '../cache/memory-tier.js';
import type { CacheEntry, CachedMeta } from '../cache/types.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { ByteRange, ObjectStore } from '../stores/types.js';
import { needsSniff, SNIFF_BYTES } from './content-type.js';
import { withDeadline } from './deadline.js';
import type { CoreEventListener } from './events.js';
import { Fills } from './fills.js';
import { cacheKey, notFound, StoreCalls, toCachedMeta } from './store-calls.js';
import { UploadTee } from './upload-tee.js';

export { cacheKey, toCachedMeta } from './store-calls.js';

export interface ObjectServiceOptions {
  stores: StoreRegistry;
  memory: MemoryTier;
  /** The second tier, when `cache.max_disk` > 0. */
  disk?: DiskTier | undefined;
  /** Objects up to this size are cached; larger ones are streamed through. */
  maxObjectBytes: number;
  storeTimeoutMs: number;
  storeIdleTimeoutMs: number;
  onEvent?: CoreEventListener;
}

/** The body of a read: a whole buffer (hits) or a stream the caller must consume or destroy. */
export type ObjectBody = { kind: 'buffer'; buffer: Buffer } | { kind: 'stream'; stream: Readable };

export interface ObjectRead {
  meta: CachedMeta;
  /** The whole object, or only `range` of it when a range was picked. */
  body: ObjectBody;
  /** `hit` when served from a cache tier without asking the store. */
  cache: 'hit' | 'miss';
  range?: ByteRange;
}

/**
 * Chooses the byte range to serve once the object's metadata is known (the HTTP layer parses
 * Range and If-Range); `undefined` serves the whole object. It may throw to refuse the request.
 */
export type RangePicker = (meta: CachedMeta) => ByteRange | undefined;

/** How many objects above max_object_size have their metadata remembered, for ranged reads. */
export const OVERSIZED_META_ENTRIES = 10_000;

export interface WriteOptions {
  contentType?: string | undefined;
  /** The announced length, when known. */
  contentLength?: number | undefined;
  /** Most bytes accepted for this write. */
  maxBytes: number;
}

export interface WriteResult {
  meta: CachedMeta;
  /** Whether the new object is now in the cache (write-through). */
  cached: boolean;
  /** Whether an object already existed at the key. */
  overwrote: boolean;
}

export interface ObjectStat {
  meta: CachedMeta;
  cache: 'hit' | 'miss';
}

/** Build the object service. */
export function createObjectService(options: ObjectServiceOptions): ObjectService {
  return new ObjectService(options);
}

export class ObjectService {
  readonly #o: ObjectServiceOptions;
  readonly #calls: StoreCalls;
  readonly #fills: Fills;
  /** Metadata of objects too large to cache: a range of one goes straight to a ranged store GET. */
  readonly #oversized = new LRUCache<string, CachedMeta>({ max: OVERSIZED_META_ENTRIES });

  constructor(options: ObjectServiceOptions) {
    this.#o = options;
    this.#calls = new StoreCalls(options);
    this.#fills = new Fills({
      calls: this.#calls,
      isCacheable: (storeId, key, size) => this.isCacheable(storeId, key, size),
      commit: (ck, meta, body) => this.#commit(ck, meta, body),
      onEvent: options.onEvent,
    });
  }

  /** Put a complete object in memory (if it fits) and on disk (when there is a disk tier). */
  #commit(ck: string, meta: CachedMeta, body: Buffer): boolean {
    let cached = this.#o.memory.set(ck, { meta, body });
    if (this.#o.disk?.accepts(body.length)) {
      this.#o.disk.store(ck, meta, body);
      cached = true;
    }
    return cached;
  }

  /** The store for a bucket id; an unknown bucket is a GW_ERR_UNKNOWN_BUCKET. */
  store(bucket: string): ObjectStore {
    const store = this.#o.stores.get(bucket);
    if (!store) throw new GatewayError('GW_ERR_UNKNOWN_BUCKET', `unknown bucket '${bucket}'`);
    return store;
  }

  /**
   * Read an object, or the range `pick` chooses: from memory, from disk, by joining a fill in
   * flight, or by starting one. A range of a cacheable miss is served from the fill while the
   * whole object fills the cache once; a range of an object above max_object_size is a ranged
   * store GET, never the whole object.
   */
  async read(bucket: string, key: string, pick?: RangePicker): Promise<ObjectRead> {
    const store = this.store(bucket);
    const ck = cacheKey(bucket, key);
    const entry = this.#o.memory.get(ck);
    if (entry) return sliced(entry.meta, entry.body, pick?.(entry.meta), 'hit');
    const fromDisk = await this.#fromDisk(ck, pick);
    if (fromDisk) return fromDisk;

    const known = pick ? this.#oversized.get(ck) : undefined;
    if (known && !this.#fills.get(ck)) {
      const range = pick!(known);
      if (range) return this.#rangedGet(store, key, ck, known, range);
    }

    const { value: fill, leader } = this.#fills.join(store, key, ck);
    if (!leader) this.#o.onEvent?.({ type: 'coalesced', storeId: store.id });
    const state = await fill.ready;
    switch (state.kind) {
      case 'absent':
        throw notFound(bucket, key);
      case 'buffered': {
        const fb = state.buffer;
        const range = pick?.(state.meta);
        if (fb.done) return sliced(state.meta, fb.head(fb.size), range, 'miss');
        const stream = range ? fb.createReader(range.start, range.end) : fb.createReader();
        return { meta: state.meta, body: { kind: 'stream', stream }, cache: 'miss', ...(range ? { range } : {}) };
      }
      case 'passthrough': {
        this.#oversized.set(ck, state.meta);
        let range: ByteRange | undefined;
        try {
          range = pick?.(state.meta);
        } catch (err) {
          state.take()?.destroy();
          throw err;
        }
        if (range) {
          state.take()?.destroy();
          return this.#rangedGet(store, key, ck, state.meta, range);
        }
        const stream = state.take() ?? (await this.#calls.directGet(store, key));
        return { meta: state.meta, body: { kind: 'stream', stream }, cache: 'miss' };
      }
    }
  }

  /**
   * Warm the cache for a key in the background, through the same singleflight as reads: a
   * following GET joins this fill or hits. An object too large to cache is not fetched.
   */
  prefetch(bucket: string, key: string): void {
    const store = this.store(bucket);
    const ck = cacheKey(bucket, key);
    if (this.#o.memory.has(ck) || this.#o.disk?.has(ck)) return;
    const { value: fill } = this.#fills.join(store, key, ck);
    fill.ready.then(
      (state) => {
        if (state.kind === 'passthrough') {
          this.#oversized.set(ck, state.meta);
          state.take()?.destroy();
        }
      },
      () => {}, // reported through store-op events; a prefetch has no one to answer
    );
  }

  /** A range of an object too large to cache, straight from the store. */
  async #rangedGet(store: ObjectStore, key: string, ck: string, known: CachedMeta, range: ByteRange): Promise<ObjectRead> {
    const res = await this.#calls.timed(store, 'get', (signal) => store.get(key, { signal, range }));
    if (!res) {
      this.#oversized.delete(ck);
      throw notFound(store.id, key);
    }
    // The store's answer carries its current validators; the type stays the one resolved before.
    const meta: CachedMeta = {
      ...known,
      size: res.meta.size,
      etag: res.meta.etag ?? known.etag,
      lastModifiedMs: res.meta.lastModified?.getTime() ?? known.lastModifiedMs,
    };
    return { meta, body: { kind: 'stream', stream: this.#calls.guard(store, res.body) }, cache: 'miss', range };
  }

  /** A memory hit, or `undefined` (nothing counted): for the HTTP fast path. */
  memoryHit(bucket: string, key: string): CacheEntry | undefined {
    return this.#o.memory.getIfPresent(cacheKey(bucket, key));
  }

  /** Metadata only (HEAD): from memory, a fill in flight, or the store's HEAD. Never caches a body. */
  async stat(bucket: string, key: string): Promise<ObjectStat> {
    const store = this.store(bucket);
    const ck = cacheKey(bucket, key);
    const entry = this.#o.memory.get(ck);
    if (entry) return { meta: entry.meta, cache: 'hit' };
    const onDisk = await this.#o.disk?.peek(ck);
    if (onDisk) return { meta: onDisk, cache: 'hit' };
    const fill = this.#fills.get(ck);
    if (fill) {
      const state = await fill.ready;
      if (state.kind === 'absent') throw notFound(bucket, key);
      return { meta: state.meta, cache: 'miss' };
    }
    const meta = await this.#calls.timed(store, 'head', (signal) => store.head(key, { signal }));
    if (!meta) throw notFound(bucket, key);
    let sniffHead: Buffer | undefined;
    if (meta.size > 0 && needsSniff(key, meta.contentType)) sniffHead = await this.#calls.readHead(store, key, meta.size);
    return { meta: toCachedMeta(key, meta, sniffHead), cache: 'miss' };
  }

  /**
   * Stream a body to the store. Only after the store acknowledges is the cache touched: any old
   * copy and any fill in flight are dropped, and a body up to `max_object_size` is cached. A
   * failed or aborted write leaves the store (no new object) and the cache as they were.
   */
  async write(bucket: string, key: string, body: Readable, opts: WriteOptions): Promise<WriteResult> {
    const store = this.store(bucket);
    const len = opts.contentLength;
    const tee = new UploadTee({
      maxBytes: opts.maxBytes,
      keepUpTo: len === undefined || this.isCacheable(bucket, key, len) ? this.#o.maxObjectBytes : 0,
      expectedBytes: len,
      idleTimeoutMs: this.#o.storeIdleTimeoutMs,
    });
    // A client that disconnects or sends less than it announced fails the tee, and so the put.
    pipeline(body, tee, () => {});
    // Asked before the write (cachegate logs overwrites); the body waits meanwhile, unread.
    const overwrote = await this.#exists(store, key);
    const started = performance.now();
    let result;
    try {
      result = await store.put(key, tee, { contentType: opts.contentType, contentLength: len });
    } catch (err) {
      tee.destroy();
      const error = tee.limitError ?? (err instanceof StoreError && err.cause instanceof GatewayError ? err.cause : err);
      if (error instanceof StoreError) {
        this.#calls.bodyFailed(store, 'put', error, started);
      }
      throw error instanceof GatewayError ? error : new StoreError(store.id, 'put', error);
    }
    this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op: 'put', outcome: 'ok', durationMs: performance.now() - started });

    const kept = tee.keptBody();
    const meta = toCachedMeta(
      key,
      {
        size: tee.bytes,
        etag: result.etag,
        lastModified: result.lastModified ?? new Date(Math.floor(Date.now() / 1000) * 1000),
        contentType: opts.contentType,
      },
      kept?.subarray(0, SNIFF_BYTES),
    );
    // Drop the old copy and detach any fill in flight, so no reader can publish the old bytes.
    this.invalidate(bucket, key);
    const ck = cacheKey(bucket, key);
    const cached = kept !== undefined && meta.size <= this.#o.maxObjectBytes && this.#commit(ck, meta, kept);
    return { meta, cached, overwrote };
  }

  /** Whether the key holds an object now; a failing store counts as "unknown", i.e. false. */
  async #exists(store: ObjectStore, key: string): Promise<boolean> {
    try {
      return (await withDeadline(this.#o.storeTimeoutMs, `store '${store.id}' head`, (signal) => store.head(key, { signal }))) !== undefined;
    } catch {
      return false;
    }
  }

  /** Forget any cached copy and any fill in flight (after a write to the key). */
  invalidate(bucket: string, key: string): void {
    const ck = cacheKey(bucket, key);
    this.#fills.detach(ck);
    this.#o.memory.delete(ck);
    this.#o.disk?.delete(ck);
    this.#oversized.delete(ck);
  }

  /** A verified disk hit (or its range); a small one is promoted into memory (the first tier). */
  async #fromDisk(ck: string, pick: RangePicker | undefined): Promise<ObjectRead | undefined> {
    const hit = await this.#o.disk?.lookup(ck);
    if (!hit) return undefined;
    if (hit.kind === 'file') {
      let range: ByteRange | undefined;
      try {
        range = pick?.(hit.meta);
      } catch (err) {
        hit.close();
        throw err;
      }
      const stream = range ? hit.open(range.start, range.end) : hit.open();
      return { meta: hit.meta, body: { kind: 'stream', stream }, cache: 'hit', ...(range ? { range } : {}) };
    }
    if (this.#o.memory.accepts(ck, hit.body.length)) this.#o.memory.set(ck, { meta: hit.meta, body: hit.body });
    return sliced(hit.meta, hit.body, pick?.(hit.meta), 'hit');
  }

  /** Whether an object of this size would be cached. */
  isCacheable(bucket: string, key: string, size: number): boolean {
    if (size > this.#o.maxObjectBytes) return false;
    return this.#o.memory.accepts(cacheKey(bucket, key), size) || (this.#o.disk?.accepts(size) ?? false);
  }

}

/** A buffer body, or the `range` of it (a zero-copy view). */
function sliced(meta: CachedMeta, buffer: Buffer, range: ByteRange | undefined, cache: 'hit' | 'miss'): ObjectRead {
  if (!range) return { meta, body: { kind: 'buffer', buffer }, cache };
  return { meta, body: { kind: 'buffer', buffer: buffer.subarray(range.start, range.end + 1) }, cache, range };
}

