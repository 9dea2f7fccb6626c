/**
 * The object service decides: hit or miss, when to fetch, how waiters share one fetch, and what
 * is cached. It knows nothing about HTTP status codes or SDKs.
 *
 * A miss starts one fill per key. A cacheable object (up to `max_object_size`) streams from the
 * store into a buffer of its full size; every waiter, the first included, reads from that buffer
 * as bytes arrive, so joining a fill adds no wait. A larger object is never buffered: the first
 * caller gets the store's stream, and anyone else asks the store for their own.
 */
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { GatewayError, StoreError, type StoreOp } from '../errors.js';
import type { DiskTier } from '../cache/disk-tier.js';
import type { MemoryTier } from '../cache/memory-tier.js';
import type { CachedMeta } from '../cache/types.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { ByteRange, GetResult, ObjectMeta, ObjectStore } from '../stores/types.js';
import { needsSniff, resolveContentType, SNIFF_BYTES } from './content-type.js';
import { idleGuard, IdleTimer, withDeadline } from './deadline.js';
import type { CoreEventListener } from './events.js';
import { FillBuffer } from './fill-buffer.js';
import { Singleflight } from './singleflight.js';
import { UploadTee } from './upload-tee.js';

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

type FillState =
  | { kind: 'absent' }
  | { kind: 'buffered'; meta: CachedMeta; buffer: FillBuffer }
  | { kind: 'passthrough'; meta: CachedMeta; take(): Readable | undefined };

interface Fill {
  ready: Promise<FillState>;
}

/** Build the object service. */
export function createObjectService(options: ObjectServiceOptions): ObjectService {
  return new ObjectService(options);
}

export class ObjectService {
  readonly #o: ObjectServiceOptions;
  readonly #fills = new Singleflight<Fill>();
  /** Metadata of objects too large to cache: a range of one goes straight to a ranged store GET. */
  readonly #oversized = new LRUCache<string, CachedMeta>({ max: OVERSIZED_META_ENTRIES });

  constructor(options: ObjectServiceOptions) {
    this.#o = options;
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

    const { value: fill, leader } = this.#fills.join(ck, () => this.#startFill(store, key, ck));
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
        const stream = state.take() ?? (await this.#directGet(store, key, bucket)).stream;
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
    const { value: fill } = this.#fills.join(ck, () => this.#startFill(store, key, ck));
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
    const res = await this.#timed(store, 'get', (signal) => store.get(key, { signal, range }));
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
    const stream = idleGuard(res.body, this.#o.storeIdleTimeoutMs, `store '${store.id}' body`);
    return { meta, body: { kind: 'stream', stream }, cache: 'miss', range };
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
    const meta = await this.#timed(store, 'head', (signal) => store.head(key, { signal }));
    if (!meta) throw notFound(bucket, key);
    let sniffHead: Buffer | undefined;
    if (meta.size > 0 && needsSniff(key, meta.contentType)) sniffHead = await this.#readHead(store, key, meta.size);
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
        this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op: 'put', outcome: 'error', errorKind: error.kind, durationMs: performance.now() - started });
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
    let cached = false;
    if (kept !== undefined && meta.size <= this.#o.maxObjectBytes) {
      cached = this.#o.memory.set(ck, { meta, body: kept });
      if (this.#o.disk?.accepts(kept.length)) {
        this.#o.disk.store(ck, meta, kept);
        cached = true;
      }
    }
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

  #startFill(store: ObjectStore, key: string, ck: string): Fill {
    const fill = {} as Fill;
    const ready = this.#runFill(store, key, ck, fill);
    fill.ready = ready;
    // A failure before the first byte settles every waiter through `ready`; release the key so
    // the next request tries again instead of joining a dead fill.
    ready.then(
      (state) => {
        if (state.kind !== 'buffered') this.#fills.release(ck, fill);
      },
      () => this.#fills.release(ck, fill),
    );
    return fill;
  }

  async #runFill(store: ObjectStore, key: string, ck: string, fill: Fill): Promise<FillState> {
    const res = await this.#timed(store, 'get', (signal) => store.get(key, { signal }));
    if (!res) return { kind: 'absent' };
    if (!this.isCacheable(store.id, key, res.meta.size)) return this.#passthrough(store, key, res);
    return this.#buffered(store, key, ck, fill, res);
  }

  /**
   * Stream a cacheable object into a FillBuffer; resolve once the first bytes (or the end)
   * arrive. The entry is committed the moment its last byte arrives, before any reader can see
   * the end of the body, so a request that follows a finished response is always a hit.
   */
  #buffered(store: ObjectStore, key: string, ck: string, fill: Fill, res: GetResult): Promise<FillState> {
    const { body, meta: storeMeta } = res;
    const fb = new FillBuffer(storeMeta.size);
    const started = performance.now();
    return new Promise<FillState>((resolve, reject) => {
      let meta: CachedMeta | undefined;
      let completed = false;
      const publish = () => {
        meta ??= toCachedMeta(key, storeMeta, fb.head(SNIFF_BYTES));
        resolve({ kind: 'buffered', meta, buffer: fb });
      };
      const complete = () => {
        completed = true;
        idle.stop();
        const buffer = fb.finish();
        publish();
        // A write may have detached this fill meanwhile: then it must not publish its bytes.
        let cached = false;
        if (this.#fills.isCurrent(ck, fill)) {
          cached = this.#o.memory.set(ck, { meta: meta!, body: buffer });
          if (this.#o.disk?.accepts(buffer.length)) {
            this.#o.disk.store(ck, meta!, buffer);
            cached = true;
          }
          this.#fills.release(ck, fill);
        }
        this.#o.onEvent?.({ type: 'fill-done', storeId: store.id, bytes: buffer.length, cached });
      };
      const idle = new IdleTimer(this.#o.storeIdleTimeoutMs, () =>
        body.destroy(new StoreError(store.id, 'get', new Error(`body stalled for ${this.#o.storeIdleTimeoutMs} ms`), 'timeout')),
      );
      body.on('data', (chunk: Buffer) => {
        if (completed) return;
        idle.touch();
        try {
          fb.append(chunk);
        } catch (err) {
          body.destroy(err as Error);
          return;
        }
        if (fb.filled === fb.size) {
          complete();
          return;
        }
        // Enough bytes to sniff the type (or a type that needs none): waiters may start now.
        if (meta === undefined && (fb.filled >= SNIFF_BYTES || !needsSniff(key, storeMeta.contentType))) publish();
      });
      finished(body, (err) => {
        idle.stop();
        if (completed) return;
        if (!err && fb.size === 0) {
          complete();
          return;
        }
        const cause = err ?? new Error(`store body ended after ${fb.filled} of ${fb.size} bytes`);
        const error = cause instanceof StoreError ? cause : new StoreError(store.id, 'get', cause);
        fb.fail(error);
        this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op: 'get', outcome: 'error', errorKind: error.kind, durationMs: performance.now() - started });
        this.#fills.release(ck, fill);
        reject(error);
      });
    });
  }

  async #passthrough(store: ObjectStore, key: string, res: GetResult): Promise<FillState> {
    let sniffHead: Buffer | undefined;
    if (res.meta.size > 0 && needsSniff(key, res.meta.contentType)) {
      sniffHead = await this.#readHead(store, key, res.meta.size);
    }
    let body: Readable | undefined = idleGuard(res.body, this.#o.storeIdleTimeoutMs, `store '${store.id}' body`);
    return {
      kind: 'passthrough',
      meta: toCachedMeta(key, res.meta, sniffHead),
      take: () => {
        const b = body;
        body = undefined;
        return b;
      },
    };
  }

  /** A stream of the whole object straight from the store, for a second caller of an oversized object. */
  async #directGet(store: ObjectStore, key: string, bucket: string): Promise<{ stream: Readable }> {
    const res = await this.#timed(store, 'get', (signal) => store.get(key, { signal }));
    if (!res) throw notFound(bucket, key);
    return { stream: idleGuard(res.body, this.#o.storeIdleTimeoutMs, `store '${store.id}' body`) };
  }

  /** The first bytes of an object, for sniffing its type when neither store nor extension says. */
  async #readHead(store: ObjectStore, key: string, size: number): Promise<Buffer | undefined> {
    const range: ByteRange = { start: 0, end: Math.min(size, SNIFF_BYTES) - 1 };
    const res = await this.#timed(store, 'get', (signal) => store.get(key, { signal, range }));
    if (!res) return undefined;
    const chunks: Buffer[] = [];
    let total = 0;
    const idle = new IdleTimer(this.#o.storeIdleTimeoutMs, () => res.body.destroy(new Error('body stalled')));
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        idle.touch();
        chunks.push(chunk);
        total += chunk.length;
        if (total >= SNIFF_BYTES) break;
      }
    } catch (err) {
      throw new StoreError(store.id, 'get', err);
    } finally {
      idle.stop();
      res.body.destroy();
    }
    return Buffer.concat(chunks, total);
  }

  /**
   * Call the store under the answer deadline, turning failures into StoreErrors and emitting a
   * `store-op` event. The deadline stops once the store answers, so a body may flow on.
   */
  async #timed<T>(store: ObjectStore, op: StoreOp, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await withDeadline(this.#o.storeTimeoutMs, `store '${store.id}' ${op}`, fn, destroyLateBody);
      this.#o.onEvent?.({
        type: 'store-op',
        storeId: store.id,
        op,
        outcome: result === undefined ? 'not_found' : 'ok',
        durationMs: performance.now() - started,
      });
      return result;
    } catch (err) {
      const error = err instanceof StoreError ? err : new StoreError(store.id, op, err);
      this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op, outcome: 'error', errorKind: error.kind, durationMs: performance.now() - started });
      throw error;
    }
  }
}

/** A buffer body, or the `range` of it (a zero-copy view). */
function sliced(meta: CachedMeta, buffer: Buffer, range: ByteRange | undefined, cache: 'hit' | 'miss'): ObjectRead {
  if (!range) return { meta, body: { kind: 'buffer', buffer }, cache };
  return { meta, body: { kind: 'buffer', buffer: buffer.subarray(range.start, range.end + 1) }, cache, range };
}

/** A store answer that arrived after its deadline: release its body (and socket). */
function destroyLateBody(late: unknown): void {
  (late as GetResult | undefined)?.body?.destroy?.();
}

/** The cache key of an object: bucket id and key, separated by a byte no key may hold. */
export function cacheKey(bucket: string, key: string): string {
  return `${bucket}\u0000${key}`;
}

function notFound(bucket: string, key: string): GatewayError {
  return new GatewayError('GW_ERR_NOT_FOUND', `object not found: ${bucket}/${key}`);
}

/** Resolve the metadata we serve and cache: a type from store, extension or magic; an ETag always. */
export function toCachedMeta(key: string, meta: ObjectMeta, head: Buffer | undefined): CachedMeta {
  const lastModifiedMs = meta.lastModified?.getTime();
  return {
    size: meta.size,
    etag: meta.etag ?? `W/"${meta.size.toString(16)}-${(lastModifiedMs ?? 0).toString(16)}"`,
    lastModifiedMs,
    contentType: resolveContentType(key, meta.contentType, head),
    cachedAtMs: Date.now(),
  };
}
