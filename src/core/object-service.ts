/**
 * The object service decides: hit or miss, which tier, when to fetch, and what is cached (with
 * `placement.ts`). It knows nothing about HTTP status codes or SDKs, and talks to the tiers only
 * through `CacheTier`.
 *
 * Every object is read as slices (`cache/slices.ts`; an object up to `slice_size` is one). A read
 * of an unknown object starts with one ranged GET of the slice that covers where the client
 * wants to begin, and learns the object's size and validators from that answer: never a
 * whole-object GET, never a separate GET to sniff its type. Missing slices are fetched by
 * single-flight slice fills (`fills.ts`) within the fill budget; `slice-reader.ts` streams
 * them, cached slices and read-ahead in order.
 *
 * Ownership of store bodies is structural: a fill owns its store body; a read returns either a
 * buffer or a stream that owns everything it opened (destroying it releases all). Nothing here
 * holds an opened store body across a decision that could refuse the request.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { GatewayError, KeyRejectedError, StoreError } from '../errors.js';
import type { CacheLimits } from '../config/resolve.js';
import { BufferPool } from '../cache/buffer-pool.js';
import type { StoreCacheConfig } from '../config/schema.js';
import { INLINE_READ_MAX_BYTES, type DiskTier } from '../cache/disk-tier.js';
import type { MemoryTier } from '../cache/memory-tier.js';
import { objectKeyOf, sliceCount, sliceIndex, sliceKey } from '../cache/slices.js';
import { commitBody, type BodySpan, type LookupOptions, type TierHit } from '../cache/tier.js';
import type { CacheEntry, CachedMeta } from '../cache/types.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { ByteRange, ObjectMeta, ObjectStore } from '../stores/types.js';
import { sniffsType, SNIFF_BYTES } from './content-type.js';
import { withDeadline } from './deadline.js';
import type { CoreEventListener } from './events.js';
import { FillBudget } from './fill-budget.js';
import { Fills, type SliceFill } from './fills.js';
import { Placement } from './placement.js';
import { COPY_CHUNK_BYTES, readSlices, type SliceSource } from './slice-reader.js';
import { SliceSink } from './slice-sink.js';
import { walkInSlices } from './sliced-walk.js';
import { Freshness } from './freshness.js';
import { cacheKey, notFound, StoreCalls, toCachedMeta } from './store-calls.js';
import type { StoreProtection } from './store-guard.js';
import { UploadTee } from './upload-tee.js';

export { cacheKey, toCachedMeta } from './store-calls.js';

export interface ObjectServiceOptions {
  stores: StoreRegistry;
  /** Retries, breaker, concurrency cap and hedging for store reads. */
  protection?: StoreProtection | undefined;
  memory: MemoryTier;
  /** The second tier, when `cache.max_disk` > 0. */
  disk?: DiskTier | undefined;
  limits: CacheLimits;
  storeTimeoutMs: number;
  storeIdleTimeoutMs: number;
  onEvent?: CoreEventListener;
  /** When this process started: disk entries cached before it are revalidated (core/freshness.ts). */
  startedAtMs?: number;
  /** Each store's `cache` section (policy, max_age, stale_*, negative_ttl); absent: immutable. */
  policies?: ReadonlyMap<string, StoreCacheConfig | undefined>;
}

/**
 * The body of a read: a whole buffer (hits) or a stream the caller must consume or destroy. A
 * buffer with `release` is lent (a disk hit read into a reused buffer): call `release` once its
 * bytes have been written, or when it is not sent, and never touch the buffer after.
 */
export type ObjectBody = { kind: 'buffer'; buffer: Buffer; release?: (() => void) | undefined } | { kind: 'stream'; stream: Readable };

export interface ObjectRead {
  meta: CachedMeta;
  /** The whole object, or only `range` of it when a range was picked. */
  body: ObjectBody;
  /** `hit` when served from a cache tier without asking the store. */
  cache: 'hit' | 'miss';
  range?: ByteRange;
  /** Seconds since the copy was cached or last found current, when a stale copy was served. */
  staleAgeSec?: number;
}

/**
 * Chooses the byte range to serve once the object's metadata is known (the HTTP layer parses
 * Range and If-Range); `undefined` serves the whole object. It may throw to refuse the request.
 */
export type RangePicker = (meta: CachedMeta) => ByteRange | undefined;

export interface ReadOptions {
  pick?: RangePicker | undefined;
  /**
   * Where the client wants to start, when it says so before the size is known (a Range header's
   * first byte): the first GET of an unknown object fetches the slice covering it.
   */
  startHint?: number | undefined;
}

/** Most keys a prefix purge walks between two yields to the event loop. */
export const PURGE_SLICE_KEYS = 1_000;
/** Most wall time a prefix purge works between two yields (see core/sliced-walk.ts). */
export const PURGE_SLICE_MS = 2;

/** What a purge did: objects dropped, and how it shared the event loop (prefix purges). */
export interface PurgeResult {
  purged: number;
  yields: number;
  maxKeysPerSlice: number;
  /** Longest stretch the walk held the event loop, in ms (reported, never asserted). */
  maxSliceMs: number;
}

/** How many uncacheable objects have their metadata remembered, for ranged reads. */
export const UNCACHED_META_ENTRIES = 10_000;

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
  /** As in ObjectRead. */
  staleAgeSec?: number;
}

/** The copy a request is served from: its metadata, and its age when it is served stale. */
interface Current {
  meta: CachedMeta;
  staleAgeSec?: number | undefined;
}

/** How many 404s are remembered at most (negative_ttl). */
export const NEGATIVE_ENTRIES = 10_000;

const EMPTY = Buffer.alloc(0);

/** Build the object service. */
export function createObjectService(options: ObjectServiceOptions): ObjectService {
  return new ObjectService(options);
}

export class ObjectService {
  readonly #o: ObjectServiceOptions;
  readonly #calls: StoreCalls;
  readonly #fills: Fills;
  readonly #freshness: Freshness;
  readonly #placement: Placement;
  /** For `no_store` stores: nothing is cacheable (made when first needed). */
  #passThrough: Placement | undefined;
  /** Remembered 404s (negative_ttl): cache key → when it expires (ms). */
  readonly #negative = new LRUCache<string, number>({ max: NEGATIVE_ENTRIES });
  /** Counts drops; a 404 learned across one is not remembered (it may predate a PUT). */
  #dropEpoch = 0;
  readonly #budget: FillBudget;
  /** Reused fill buffers for disk-bound slices whose entry file could not be opened (placement.slicesOnDiskOnly). */
  readonly #sliceBuffers: BufferPool;
  readonly #S: number;
  /** Metadata of objects not cached (too large), so a range of one is a ranged store GET at once. */
  readonly #uncached = new LRUCache<string, CachedMeta>({ max: UNCACHED_META_ENTRIES });

  constructor(options: ObjectServiceOptions) {
    this.#o = options;
    this.#S = options.limits.sliceBytes;
    this.#calls = new StoreCalls(options);
    this.#freshness = new Freshness({ calls: this.#calls, startedAtMs: options.startedAtMs ?? Date.now(), policies: options.policies ?? new Map() });
    this.#placement = new Placement(options.limits, options.memory, options.disk);
    this.#budget = new FillBudget(options.limits.maxFillBytes);
    // As many as the fill budget has room for: every pooled buffer is a fill's, or idle.
    this.#sliceBuffers = new BufferPool(this.#S, Math.max(1, Math.floor(options.limits.maxFillBytes / this.#S)));
    this.#fills = new Fills({
      calls: this.#calls,
      budget: this.#budget,
      sliceBytes: this.#S,
      // Fills finish at store speed, never at a client's, so room comes back at store speed: a
      // reader waits as long as it would wait for the store itself, then goes uncached.
      budgetWaitMs: options.storeTimeoutMs,
      learned: (ck, meta) => this.#learned(ck, meta),
      changed: (ck, etag) => void this.#dropVersion(ck, etag),
      commit: (ck, i, meta, body) => this.#commitSlice(ck, i, meta, body),
      lend: (size, length) => (this.#placement.slicesOnDiskOnly(size) ? this.#sliceBuffers.lend(length) : undefined),
      openFile: (ck, i, size, length) => (this.#placement.slicesOnDiskOnly(size) ? this.#o.disk?.openFile?.(sliceKey(ck, i, size, this.#S), length) : undefined),
      onEvent: options.onEvent,
    });
  }

  /** Bytes held by fills in flight right now (for tests and /stats). */
  get fillBytes(): number {
    return this.#budget.usedBytes;
  }

  /** Whether a bucket id names a configured store. */
  hasStore(bucket: string): boolean {
    return this.#o.stores.get(bucket) !== undefined;
  }

  /** Calls waiting in each store's queue (metrics). */
  *storeQueues(): Iterable<[string, number]> {
    for (const [id, g] of this.#calls.guards()) yield [id, g.queueDepth];
  }

  /** The store for a bucket id; an unknown bucket is a GW_ERR_UNKNOWN_BUCKET. */
  store(bucket: string): ObjectStore {
    const store = this.#o.stores.get(bucket);
    if (!store) throw new GatewayError('GW_ERR_UNKNOWN_BUCKET', `unknown bucket '${bucket}'`);
    return store;
  }

  /**
   * Read an object, or the range `pick` chooses once the metadata is known. A whole small object
   * in memory (or a small disk read) is a buffer; everything else is a stream of slices.
   */
  async read(bucket: string, key: string, opts: ReadOptions = {}, retried = false): Promise<ObjectRead> {
    const store = this.store(bucket);
    const ck = cacheKey(bucket, key);
    this.#placement.touch(ck);
    const whole = this.#o.memory.wholeObject(ck);
    if (whole && this.#freshness.verdict(store.id, ck, whole.meta) === 'fresh') return bufferRead(whole.meta, whole.body, opts.pick?.(whole.meta), 'hit');

    const current = await this.#currentMeta(store, key, ck);
    let meta = current?.meta;
    const known = meta !== undefined;
    const stale = current?.staleAgeSec !== undefined ? { staleAgeSec: current.staleAgeSec } : {};
    let first: SliceFill | undefined;
    if (!meta) ({ meta, fill: first } = await this.#firstFetch(store, key, ck, opts.startHint ?? 0));
    const range = opts.pick?.(meta);
    const start = range?.start ?? 0;
    const end = range?.end ?? meta.size - 1;
    if (meta.size === 0) return { ...bufferRead(meta, EMPTY, undefined, known ? 'hit' : 'miss'), ...stale };
    if (whole && whole.meta === meta) return { ...bufferRead(meta, whole.body, range, 'hit'), ...stale };

    // A small object on disk: copied into memory if placement admits it, else served from a
    // lent buffer (no copy, no allocation).
    if (known && !this.#placement.sliced(meta.size) && this.#o.disk && !this.#fills.get(ck, 0)) {
      const promote = this.#placement.promoteOnDiskHit(ck, meta);
      const hit = await this.#wholeFromTier(ck, meta, 0, { start: 0, end: meta.size - 1 }, !promote);
      if (hit) {
        if (promote) this.#o.memory.put(ck, hit.meta, hit.buffer);
        return { ...bufferRead(meta, hit.buffer, range, 'hit', hit.release), ...stale };
      }
    }

    // An answer inside one slice of a sliced object, small enough for one verified disk read:
    // from a lent buffer too, sent as it is. (Through the slice reader it was read into a fresh
    // buffer and copied again in chunks: 306 ranged reads of 1 MiB a second against nginx's 993.)
    const slice = sliceIndex(start, this.#S);
    if (known && this.#placement.sliced(meta.size) && this.#o.disk && slice === sliceIndex(end, this.#S) && end - start + 1 <= INLINE_READ_MAX_BYTES && !this.#fills.get(ck, slice)) {
      const at = slice * this.#S;
      const hit = await this.#wholeFromTier(ck, meta, slice, { start: start - at, end: end - at }, true);
      if (hit?.release) {
        return { meta, body: { kind: 'buffer', buffer: hit.buffer, release: hit.release }, cache: 'hit', ...(range ? { range } : {}), ...stale };
      }
    }

    let cached = known;
    for (let i = sliceIndex(start, this.#S); cached && i <= sliceIndex(Math.max(start, end), this.#S); i++) {
      cached = this.#held(ck, meta, i);
    }
    // The reader starts from the first fetch's fill (even one a write detached since: its bytes are one version).
    const from = first && sliceIndex(start, this.#S) === first.index ? first : undefined;
    const slices = readSlices(this.#source(store, key, ck, meta), start, end, from);
    // The first chunk is read before answering: a failure before any byte is an error answer,
    // and an object found changed in the store is read again, once, as its new version.
    let head: IteratorResult<Buffer>;
    try {
      head = await slices.next();
    } catch (err) {
      if (!retried && err instanceof StoreError && err.kind === 'changed') {
        await this.#dropVersion(ck, meta.etag);
        return this.read(bucket, key, opts, true);
      }
      throw err;
    }
    const cache = cached ? 'hit' : 'miss';
    // The whole answer in its first chunk (a small object's miss): a buffer, sent like a hit,
    // without a stream and its pipeline. (The reader's chunks are copies it owns.)
    if (!head.done && head.value.length === end - start + 1) {
      void slices.return(undefined);
      return { meta, body: { kind: 'buffer', buffer: head.value }, cache, ...(range ? { range } : {}), ...stale };
    }
    const stream = Readable.from(prepend(head, slices), { objectMode: false, highWaterMark: 64 * 1024 });
    return { meta, body: { kind: 'stream', stream }, cache, ...(range ? { range } : {}), ...stale };
  }

  /** A whole object held in memory, or `undefined` (nothing counted): for the HTTP fast path. */
  memoryHit(bucket: string, key: string): CacheEntry | undefined {
    const ck = cacheKey(bucket, key);
    const entry = this.#o.memory.wholeObject(ck);
    // Only a fresh copy: one to revalidate (or serve stale) takes the full route, as a miss does.
    if (!entry || this.#freshness.verdict(bucket, ck, entry.meta) !== 'fresh') return undefined;
    // Counted for admission only when hit: a miss goes on to read(), which counts it.
    this.#placement.touch(ck);
    return entry;
  }

  /**
   * Metadata only (HEAD): from the tiers, or from the store. A type the store and the key leave
   * open is sniffed from the first slice's fill, never from a separate GET. With `prefetch`, the
   * whole object is warmed slice by slice in the background, within the fill budget.
   */
  async stat(bucket: string, key: string, opts: { prefetch?: boolean } = {}): Promise<ObjectStat> {
    const store = this.store(bucket);
    const ck = cacheKey(bucket, key);
    const current = await this.#currentMeta(store, key, ck);
    if (current) {
      if (opts.prefetch) this.#warm(store, key, ck, current.meta);
      return { meta: current.meta, cache: 'hit', ...(current.staleAgeSec !== undefined ? { staleAgeSec: current.staleAgeSec } : {}) };
    }
    const head = await this.#head(store, key, ck);
    // A type neither the store nor the key gives comes from the first slice's fill (which
    // caches that slice), never from a separate sniff GET; an uncacheable object is not fetched.
    const placement = this.#placementFor(store);
    const sniff = sniffsType(key, head.contentType, head.size, this.#S) && placement.cacheable(head.size);
    const meta = sniff ? (await this.#firstFetch(store, key, ck, 0)).meta : toCachedMeta(key, head, undefined);
    if (!sniff && placement.cacheable(meta.size) && opts.prefetch) this.#learned(ck, meta);
    if (opts.prefetch) this.#warm(store, key, ck, meta);
    return { meta, cache: 'miss' };
  }

  /**
   * Stream a body to the store, writing it through to the tiers as slices as it passes. Only
   * after the store acknowledges is the cache touched: the old copy (metadata and every slice)
   * is dropped, then the new entries are committed. A failed or aborted write leaves the store
   * (no new object) and the cache as they were.
   */
  async write(bucket: string, key: string, body: Readable, opts: WriteOptions): Promise<WriteResult> {
    const store = this.store(bucket);
    const ck = cacheKey(bucket, key);
    const len = opts.contentLength;
    const sink = new SliceSink({ ck, placement: this.#placementFor(store), budget: this.#budget, length: len });
    const tee = new UploadTee({ maxBytes: opts.maxBytes, expectedBytes: len, idleTimeoutMs: this.#o.storeIdleTimeoutMs, sink });
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
      sink.abort();
      const error = tee.limitError ?? (err instanceof StoreError && err.cause instanceof GatewayError ? err.cause : err);
      if (error instanceof StoreError) this.#calls.bodyFailed(store, 'put', error, started);
      throw error instanceof GatewayError ? error : new StoreError(store.id, 'put', error);
    }
    this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op: 'put', outcome: 'ok', durationMs: performance.now() - started });

    const meta = toCachedMeta(
      key,
      {
        size: tee.bytes,
        etag: result.etag,
        lastModified: result.lastModified ?? new Date(Math.floor(Date.now() / 1000) * 1000),
        contentType: opts.contentType,
      },
      sniffsType(key, opts.contentType, tee.bytes, this.#S) ? tee.head.subarray(0, SNIFF_BYTES) : undefined,
    );
    // Drop the old copy and detach any fill in flight, so no reader can publish the old bytes.
    await this.invalidate(bucket, key);
    const cached = await sink.finish(meta);
    if (cached) this.#uncached.delete(ck);
    return { meta, cached, overwrote };
  }

  /** Forget every cached copy (metadata, slices) and detach every fill in flight of a key. */
  async invalidate(bucket: string, key: string): Promise<void> {
    await this.#drop(cacheKey(bucket, key));
  }

  /**
   * Delete an object in the store and every cached copy (metadata, slices, fills in flight). The
   * cache is dropped before and again after the store's delete, so a fill that started while
   * the delete ran can never publish the old bytes.
   */
  async delete(bucket: string, key: string): Promise<void> {
    const store = this.store(bucket);
    await this.invalidate(bucket, key);
    const started = performance.now();
    try {
      await withDeadline(this.#o.storeTimeoutMs, `store '${store.id}' delete`, (signal) => store.delete(key, { signal }));
    } catch (err) {
      if (err instanceof KeyRejectedError) throw err;
      const error = err instanceof StoreError ? err : new StoreError(store.id, 'delete', err);
      this.#calls.bodyFailed(store, 'delete', error, started);
      throw error;
    } finally {
      await this.invalidate(bucket, key);
    }
    this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op: 'delete', outcome: 'ok', durationMs: performance.now() - started });
  }

  /**
   * Drop the cached copies of one key, or of every key under a prefix, without touching the
   * store; returns how many objects were dropped (a sliced object counts once, all its slices
   * go). A prefix purge works through its keys in chunks and yields to the event loop between
   * them, so 100,000 keys never stall other requests.
   */
  async purge(bucket: string, target: { key: string } | { prefix: string }): Promise<PurgeResult> {
    this.store(bucket); // an unknown bucket is a 404
    if ('key' in target) {
      const ck = cacheKey(bucket, target.key);
      const had = (await this.#knownMeta(ck)) !== undefined || this.#fills.busy(ck);
      await this.#drop(ck);
      return { purged: had ? 1 : 0, yields: 0, maxKeysPerSlice: 0, maxSliceMs: 0 };
    }
    const prefix = cacheKey(bucket, target.prefix);
    // Fills and uncached metadata are few: dropped at once, so nothing in flight can publish.
    const purged = new Set<string>();
    for (const k of this.#fills.keysWithPrefix(prefix)) purged.add(k);
    for (const k of [...this.#uncached.keys()]) if (k.startsWith(prefix)) purged.add(k);
    for (const ck of purged) await this.#drop(ck);
    // The tiers' key sets are walked live, in slices bounded by keys and by time, each key
    // dropped synchronously (no await per key). An entry cached after the purge started is a
    // new copy (a PUT, a fill that began after the fills were dropped): kept.
    const startedMs = Date.now();
    let yields = 0;
    let maxKeysPerSlice = 0;
    let maxSliceMs = 0;
    for (const tier of [this.#o.memory, this.#o.disk]) {
      if (!tier) continue;
      const walked = await walkInSlices(
        tier.keys(),
        (k) => {
          if (!k.startsWith(prefix)) return;
          const ck = objectKeyOf(k);
          if (!purged.has(ck) && this.#cachedBefore(ck, startedMs)) {
            purged.add(ck);
            this.#dropNow(ck, this.#o.memory.peek(ck), this.#o.disk?.peekIndexed(ck));
          }
          // A slice whose object's metadata is gone (it is never served): dropped too.
          if (k !== ck && purged.has(ck)) tier.delete(k);
        },
        { maxItems: PURGE_SLICE_KEYS, maxMs: PURGE_SLICE_MS },
      );
      yields += walked.yields;
      maxKeysPerSlice = Math.max(maxKeysPerSlice, walked.maxItemsPerSlice);
      maxSliceMs = Math.max(maxSliceMs, walked.maxSliceMs);
    }
    return { purged: purged.size, yields, maxKeysPerSlice, maxSliceMs };
  }

  /** Whether the memory copy of `ck` (if any) was cached before `ms`; disk copies always were. */
  #cachedBefore(ck: string, ms: number): boolean {
    const entry = this.#o.memory.peekEntry(ck);
    return entry === undefined || entry.meta.cachedAtMs <= ms;
  }

  /** Whether an object of this size would be cached. */
  isCacheable(size: number): boolean {
    return this.#placement.cacheable(size);
  }

  // --- internals -------------------------------------------------------------------------

  async #drop(ck: string): Promise<void> {
    this.#dropNow(ck, this.#o.memory.peek(ck), await this.#o.disk?.peek(ck));
  }

  /**
   * Drop `ck` given the metadata its copies are known by (their sizes name the slice keys).
   * Synchronous and allocation-free for an unsliced object: a prefix purge calls it per key.
   */
  #dropNow(ck: string, inMemory: CachedMeta | undefined, onDisk: CachedMeta | undefined): void {
    this.#dropEpoch++;
    this.#negative.delete(ck);
    this.#fills.detach(ck);
    this.#freshness.forget(ck);
    const uncached = this.#uncached.get(ck);
    if (uncached) this.#uncached.delete(ck);
    for (const tier of this.#placement.tiers) tier.delete(ck);
    this.#dropSlices(ck, inMemory);
    if (onDisk && onDisk.size !== inMemory?.size) this.#dropSlices(ck, onDisk);
    if (uncached && uncached.size !== inMemory?.size && uncached.size !== onDisk?.size) this.#dropSlices(ck, uncached);
  }

  #dropSlices(ck: string, meta: CachedMeta | undefined): void {
    if (!meta || !this.#placement.sliced(meta.size)) return;
    for (const tier of this.#placement.tiers) {
      for (let i = 0; i < sliceCount(meta.size, this.#S); i++) tier.delete(sliceKey(ck, i, meta.size, this.#S));
    }
  }

  /** Drop what is cached of `ck` if it is still the version with `etag` (a newer one stays). */
  async #dropVersion(ck: string, etag: string): Promise<void> {
    const cached = await this.#knownMeta(ck);
    if (cached === undefined || cached.etag === etag) await this.#drop(ck);
  }

  /**
   * The copy to serve from, as core/freshness.ts decides: a fresh copy as it is; a stale one
   * (stale_while_revalidate) at once, with one revalidation in the background; an expired one
   * (past max_age, or a disk entry from before this process: the rejoin rule) once the store
   * says it is current (one conditional HEAD, shared by concurrent requests). A changed or
   * deleted object is dropped and read as unknown. A store that cannot answer fails the request,
   * unless stale_if_error lets the copy stand in (served with its age, counted).
   */
  async #currentMeta(store: ObjectStore, key: string, ck: string): Promise<Current | undefined> {
    if (!this.#freshness.caches(store.id)) return undefined;
    const meta = this.#o.memory.peek(ck) ?? (await this.#o.disk?.peek(ck));
    if (!meta) {
      const uncached = this.#uncached.get(ck);
      return uncached ? { meta: uncached } : undefined;
    }
    const verdict = this.#freshness.verdict(store.id, ck, meta);
    if (verdict === 'fresh') return { meta };
    if (verdict === 'stale') {
      this.#o.onEvent?.({ type: 'stale-served', storeId: store.id, reason: 'revalidating' });
      void this.#revalidate(store, key, ck, meta).catch(() => {}); // reported through store-op events
      return { meta, staleAgeSec: this.#ageSec(ck, meta) };
    }
    try {
      if (await this.#revalidate(store, key, ck, meta)) return { meta };
    } catch (err) {
      if (!this.#freshness.servesStale(store.id, ck, meta, err)) throw err;
      this.#o.onEvent?.({ type: 'stale-served', storeId: store.id, reason: 'error' });
      return { meta, staleAgeSec: this.#ageSec(ck, meta) };
    }
    return undefined;
  }

  /** Revalidate a copy; true when it is current, false when it changed or went (then it is dropped). */
  async #revalidate(store: ObjectStore, key: string, ck: string, meta: CachedMeta): Promise<boolean> {
    const found = await this.#freshness.revalidate(store, key, ck, meta);
    if (found === 'current') return true;
    await this.#dropVersion(ck, meta.etag);
    return false;
  }

  #ageSec(ck: string, meta: CachedMeta): number {
    return Math.floor(this.#freshness.ageMs(ck, meta) / 1000);
  }

  /** The tiers' rules for this store: none cache anything under `no_store`. */
  #placementFor(store: ObjectStore): Placement {
    if (this.#freshness.caches(store.id)) return this.#placement;
    return (this.#passThrough ??= new Placement({ ...this.#o.limits, maxObjectBytes: -1 }, this.#o.memory, this.#o.disk));
  }

  /**
   * A HEAD of the store, with negative caching: a 404 remembered for the store's negative_ttl
   * (and not learned across a drop, so it never outlives a PUT or DELETE) answers without asking.
   */
  async #head(store: ObjectStore, key: string, ck: string): Promise<ObjectMeta> {
    this.#checkNegative(store, key, ck);
    const epoch = this.#dropEpoch;
    const head = await this.#calls.timed(store, 'head', (signal) => store.head(key, { signal }));
    if (!head) throw this.#absent(store, key, ck, epoch);
    return head;
  }

  /** Throws the 404 when a remembered one still holds. */
  #checkNegative(store: ObjectStore, key: string, ck: string): void {
    const until = this.#negative.get(ck);
    if (until === undefined) return;
    if (Date.now() < until) throw notFound(store.id, key);
    this.#negative.delete(ck);
  }

  /** The 404 for a key the store does not hold, remembered when negative_ttl says so. */
  #absent(store: ObjectStore, key: string, ck: string, epoch: number): GatewayError {
    const ttl = this.#freshness.negativeTtlMs(store.id);
    if (ttl > 0 && epoch === this.#dropEpoch) this.#negative.set(ck, Date.now() + ttl);
    return notFound(store.id, key);
  }

  /** The object's metadata if a tier holds it (or it is known to be uncacheable). */
  async #knownMeta(ck: string): Promise<CachedMeta | undefined> {
    return this.#o.memory.peek(ck) ?? (await this.#o.disk?.peek(ck)) ?? this.#uncached.get(ck);
  }

  /** The first GET of an unknown object: the slice covering `startHint`, learning size and validators. */
  async #firstFetch(store: ObjectStore, key: string, ck: string, startHint: number): Promise<{ meta: CachedMeta; fill?: SliceFill }> {
    if (!this.#freshness.caches(store.id)) {
      // no_store: the metadata from a HEAD, then the bytes straight from the store (uncached).
      return { meta: toCachedMeta(key, await this.#head(store, key, ck), undefined) };
    }
    this.#checkNegative(store, key, ck);
    const epoch = this.#dropEpoch;
    const i = sliceIndex(startHint, this.#S);
    const fill = await this.#fills.join(store, key, ck, i, undefined, 'wait');
    let answered: ObjectMeta | undefined;
    if (fill && fill !== 'cached') {
      const ready = await fill.ready;
      if (ready.kind === 'data') return { meta: ready.meta, fill };
      if (ready.kind === 'absent') throw this.#absent(store, key, ck, epoch);
      if (ready.kind === 'no-room') answered = ready.meta;
    }
    // No budget (the fill's answer told the metadata, or it never asked), a start past the end,
    // or an empty object: the metadata from a HEAD.
    const head = answered ?? (await this.#head(store, key, ck));
    const meta = toCachedMeta(key, head, undefined);
    if (!sniffsType(key, head.contentType, meta.size, this.#S)) this.#learned(ck, meta);
    return { meta };
  }

  /** Metadata learned from the store: kept with the object (sliced or empty), or as uncacheable. */
  #learned(ck: string, meta: CachedMeta): void {
    if (!this.#placement.cacheable(meta.size)) {
      this.#uncached.set(ck, meta);
      return;
    }
    if (meta.size !== 0 && !this.#placement.sliced(meta.size)) return; // a small object's entry carries it
    for (const tier of this.#placement.forMeta(meta.size)) tier.openWrite(ck, meta, 0)?.end();
  }

  /** Hand a finished slice to its tiers; resolves when they have it, with whether any kept it. */
  async #commitSlice(ck: string, i: number, meta: CachedMeta, body: Buffer): Promise<boolean> {
    const tiers = this.#placement.forFill(meta.size, body.length);
    const key = sliceKey(ck, i, meta.size, this.#S);
    await Promise.all(tiers.map((tier) => commitBody(tier, key, meta, body)));
    return tiers.some((t) => t.has(key));
  }

  /** Whether slice `i` is served without asking the store: in a tier, or in a finished fill. */
  #held(ck: string, meta: CachedMeta, i: number): boolean {
    return this.#inTiers(ck, meta, i) || this.#fills.get(ck, i)?.complete === true;
  }

  #inTiers(ck: string, meta: CachedMeta, i: number): boolean {
    const key = sliceKey(ck, i, meta.size, this.#S);
    return this.#placement.tiers.some((t) => t.has(key));
  }

  /** Slice `i`'s bytes from the first tier that holds it for this version of the object. */
  async #lookupSlice(ck: string, meta: CachedMeta, i: number, span: BodySpan, options?: LookupOptions): Promise<TierHit | undefined> {
    const key = sliceKey(ck, i, meta.size, this.#S);
    for (const tier of this.#placement.tiers) {
      if (!tier.has(key) && tier.name === 'memory') continue;
      // From memory, one chunk at a time: a view held across a slow client's writes would pin
      // the whole slice after the tier evicted it. (Disk streams hold only their blocks.)
      const s = tier.name === 'memory' ? { start: span.start, end: Math.min(span.end, span.start + COPY_CHUNK_BYTES - 1) } : span;
      const hit = await tier.lookup(key, s, options);
      if (!hit) continue;
      if (hit.meta.etag !== meta.etag || hit.meta.size !== meta.size) {
        // A slice of another version (newer, or left by a fill that raced a change): never
        // served for this one, and left alone (a fill of the current version replaces it).
        hit.release?.();
        hit.stream?.destroy();
        continue;
      }
      return hit;
    }
    return undefined;
  }

  /**
   * All of `span` of slice `i` as one buffer from a tier (lent when `borrow` and the tier lends),
   * or `undefined`, with whatever the tier handed out instead (a stream, a short buffer) let go.
   */
  async #wholeFromTier(ck: string, meta: CachedMeta, i: number, span: BodySpan, borrow: boolean): Promise<(TierHit & { buffer: Buffer }) | undefined> {
    const hit = await this.#lookupSlice(ck, meta, i, span, { borrow });
    if (hit?.buffer && hit.length === span.end - span.start + 1) return hit as TierHit & { buffer: Buffer };
    hit?.release?.();
    hit?.stream?.destroy();
    return undefined;
  }

  #source(store: ObjectStore, key: string, ck: string, meta: CachedMeta): SliceSource {
    const cacheable = this.#placementFor(store).cacheable(meta.size);
    return {
      meta,
      sliceBytes: this.#S,
      cacheable,
      fill: (i) => this.#fills.get(ck, i),
      join: (i, mode, from) => this.#fills.join(store, key, ck, i, meta, mode, () => this.#inTiers(ck, meta, i), from),
      lookup: (i, span) => this.#lookupSlice(ck, meta, i, span),
      inTiers: (i) => this.#inTiers(ck, meta, i),
      direct: (start, end) => this.#calls.direct(store, key, { start, end }, meta.etag),
      changed: () => {
        void this.#dropVersion(ck, meta.etag);
      },
    };
  }

  /** HEAD ?prefetch=1: fill every missing slice, one after another, within the fill budget. */
  #warm(store: ObjectStore, key: string, ck: string, meta: CachedMeta): void {
    if (!this.#placementFor(store).cacheable(meta.size) || meta.size === 0) return;
    void (async () => {
      for (let i = 0; i < sliceCount(meta.size, this.#S); i++) {
        if (this.#inTiers(ck, meta, i)) continue;
        const fill = this.#fills.get(ck, i) ?? (await this.#fills.join(store, key, ck, i, meta, 'wait', () => this.#inTiers(ck, meta, i)));
        if (fill === 'cached') continue;
        if (!fill) return;
        const ready = await fill.ready;
        if (ready.kind !== 'data' || ready.meta.etag !== meta.etag) return;
        await fill.settled;
        if (ready.buffer.error) return;
      }
    })().catch(() => {}); // reported through store-op events; a prefetch has no one to answer
  }

  /** Whether the key holds an object now; a failing store counts as "unknown", i.e. false. */
  async #exists(store: ObjectStore, key: string): Promise<boolean> {
    try {
      return (await withDeadline(this.#o.storeTimeoutMs, `store '${store.id}' head`, (signal) => store.head(key, { signal }))) !== undefined;
    } catch {
      return false;
    }
  }
}

/** The chunks of `rest`, after `head` (its first result, already taken). */
async function* prepend(head: IteratorResult<Buffer> | undefined, rest: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  if (head!.done) return;
  const chunk = head!.value;
  head = undefined; // not pinned by the generator's frame for the whole response
  yield chunk;
  yield* rest;
}

/** A buffer body, or the `range` of it (a zero-copy view). */
function bufferRead(meta: CachedMeta, buffer: Buffer, range: ByteRange | undefined, cache: 'hit' | 'miss', release?: () => void): ObjectRead {
  if (!range) return { meta, body: { kind: 'buffer', buffer, release }, cache };
  return { meta, body: { kind: 'buffer', buffer: buffer.subarray(range.start, range.end + 1), release }, cache, range };
}

