/**
 * Slice fills: one ranged store GET per (object, slice) however many readers ask (singleflight).
 * A fill reserves its bytes from the fill budget, streams the store's answer into a FillBuffer of
 * the slice's size, and hands the finished slice to the tiers (`commit`); readers copy out of the
 * buffer as bytes arrive, so joining adds no wait and a slow reader never pins a fill. A slice
 * that goes to disk only is filled into its entry file instead (`openFile`): readers read it back
 * from the page cache, the commit makes the file the entry, and the fill is charged only
 * STREAMING_FILL_BYTES, so cold seeks into large objects no longer wait for each other's slices.
 * The first fill of an unknown object is charged as much until its answer gives the object's
 * size, and then what it holds (`hold`): a slice's worth up front capped cold misses of small
 * objects at max_fill_memory / slice_size in flight (8 with the defaults, 16 in the bench), the
 * rest waiting.
 *
 * The fill owns the store body from the moment the store answers: it consumes it to the end or
 * destroys it, on every path, whatever its readers do.
 *
 * Versions never mix: a fill of an object whose metadata is known asks for that ETag (`ifMatch`),
 * and also compares the ETag the answer carries (a store may ignore the condition). A change
 * fails the fill with a StoreError of kind `changed`. The first fill of an unknown object asks
 * without a condition and learns the object's size from the ranged answer.
 *
 * A seek deep into a slice (a reader starting `SEEK_FIRST_MIN_BYTES` or more past the slice's
 * start, the object known) fetches the slice in two ranged GETs, from the reader's byte to the
 * slice's end and then the part before it: the reader's first byte waits for one store answer,
 * not for the store to send the megabytes before it. Both GETs ask for the same ETag; the slice
 * is committed whole, as any other.
 */
import type { Readable } from 'node:stream';
import { StoreError } from '../errors.js';
import type { Loan } from '../cache/buffer-pool.js';
import type { EntryFile } from '../cache/tier.js';
import type { CachedMeta } from '../cache/types.js';
import { sliceSpan } from '../cache/slices.js';
import type { ByteRange, GetResult, ObjectMeta, ObjectStore } from '../stores/types.js';
import { sniffsType, SNIFF_BYTES } from './content-type.js';
import { IdleTimer } from './deadline.js';
import type { CoreEventListener } from './events.js';
import { FillBuffer } from './fill-buffer.js';
import type { FillBudget } from './fill-budget.js';
import { objectChanged, toCachedMeta, type StoreCalls } from './store-calls.js';

/** What a fill found once the store answered and the first bytes (or the end) arrived. */
export type FillReady =
  | { kind: 'absent' }
  /** The first fill's start lies past the object's end (or the object is empty): no bytes. */
  | { kind: 'unsatisfiable' }
  /**
   * The first fill of an unknown object found no room in the budget for what the answer needs:
   * its body was dropped unread, and its metadata is what the store's answer said.
   */
  | { kind: 'no-room'; meta: ObjectMeta }
  | { kind: 'data'; meta: CachedMeta; span: ByteRange; buffer: FillBuffer };

export interface SliceFill {
  readonly index: number;
  readonly ready: Promise<FillReady>;
  /** Settles when the slice is complete and handed to the tiers, or failed. */
  readonly settled: Promise<void>;
  /** True once every byte arrived (before the tiers have it). */
  complete: boolean;
  /** True once the fill is over (committed or failed); readers then turn to the tiers. */
  over: boolean;
  /** True when a write or a change detached it: it never commits, its readers finish from it. */
  detached: boolean;
}

export interface FillsOptions {
  calls: StoreCalls;
  budget: FillBudget;
  sliceBytes: number;
  /** How long a fill a reader needs waits for budget before the reader goes uncached. */
  budgetWaitMs: number;
  /** The first answer of an unknown object told its metadata (cache it, decide slicing). */
  learned(ck: string, meta: CachedMeta): void;
  /** A fill found the object changed in the store: drop what is cached of version `etag`. */
  changed?(ck: string, etag: string): void;
  /** Hand a finished slice to the tiers; resolves when they have it (true) or all refused it. */
  commit(ck: string, index: number, meta: CachedMeta, body: Buffer): Promise<boolean>;
  /** A reused buffer for `length` bytes of an object of `objectSize`, when its tiers let go of it once committed. */
  lend?(objectSize: number, length: number): Loan | undefined;
  /**
   * The entry file of slice `i` of `ck` (`length` bytes of an object of `objectSize`), when the
   * slice goes to a tier that keeps files: the fill writes its bytes there as they arrive, its
   * readers read them back, and committing the fill commits the file (FillBuffer, EntryFile).
   */
  openFile?(ck: string, i: number, objectSize: number, length: number): EntryFile | undefined;
  onEvent?: CoreEventListener | undefined;
}

/**
 * A reader starting this far or further into a slice gets its bytes first (two GETs instead of
 * one). Below it, the bytes before the reader's take about as long to arrive as a second store
 * request takes to answer.
 */
export const SEEK_FIRST_MIN_BYTES = 1024 * 1024;

/**
 * What a fill that keeps no body in memory is charged against the fill budget: the store's
 * chunks on their way (a socket read at a time). A fill into its entry file is charged this
 * throughout, so the budget bounds how many run at once rather than their slices' bytes; the
 * first fill of an unknown object is charged this until the store's answer gives its size.
 */
export const STREAMING_FILL_BYTES = 64 * 1024;

/** How a fill may wait for budget: a reader's fill waits a little, read-ahead never. */
export type BudgetMode = 'wait' | 'try';

export class Fills {
  readonly #o: FillsOptions;
  readonly #byObject = new Map<string, Map<number, SliceFill>>();

  constructor(options: FillsOptions) {
    this.#o = options;
  }

  /** The fill in flight for slice `i` of `ck`. */
  get(ck: string, i: number): SliceFill | undefined {
    return this.#byObject.get(ck)?.get(i);
  }

  /** The object keys with fills in flight under a cache-key prefix. */
  keysWithPrefix(prefix: string): string[] {
    return [...this.#byObject.keys()].filter((k) => k.startsWith(prefix));
  }

  /** Whether any fill of `ck` is in flight. */
  busy(ck: string): boolean {
    return this.#byObject.has(ck);
  }

  /**
   * Join slice `i`'s fill, or start it once the budget has room. `expected` is the object's
   * metadata when known (the GET is then conditional on its ETag). `from` is where in the slice
   * the reader starting it reads first. `undefined` when the budget had no room: the caller
   * serves the bytes uncached.
   */
  async join(
    store: ObjectStore,
    key: string,
    ck: string,
    i: number,
    expected: CachedMeta | undefined,
    mode: BudgetMode,
    cached?: () => boolean,
    from = 0,
  ): Promise<SliceFill | 'cached' | undefined> {
    const existing = this.get(ck, i);
    if (existing) {
      this.#o.onEvent?.({ type: 'coalesced', storeId: store.id });
      return existing;
    }
    const S = this.#o.sliceBytes;
    const length = expected ? Math.max(0, sliceSpan(i, expected.size, S).end - i * S + 1) : S;
    // A known object's disk-bound slice is filled into its entry file, opened now so that the
    // fill is charged what it holds. An unknown object's fill holds nothing until the store
    // answers; then it holds what the answer needs (#run).
    const file = expected && length > 0 ? this.#o.openFile?.(ck, i, expected.size, length) : undefined;
    const reserveBytes = file || !expected ? Math.min(length, STREAMING_FILL_BYTES) : length;
    const budget = this.#o.budget;
    let ok = budget.tryReserve(reserveBytes);
    if (!ok && mode === 'wait') ok = await this.#waitForRoom(store, reserveBytes);
    if (!ok) {
      file?.release();
      return undefined;
    }
    // While this fill waited for room, another may have started, or finished and been cached.
    const raced = this.get(ck, i);
    if (raced || cached?.()) {
      file?.release();
      budget.release(reserveBytes);
      return raced ?? 'cached';
    }
    return this.#start(store, key, ck, i, expected, reserveBytes, mode, from, file);
  }

  /** Wait for room for `bytes` (a fill a reader needs), observed as a `fill-budget-wait`. */
  async #waitForRoom(store: ObjectStore, bytes: number): Promise<boolean> {
    const waitStarted = performance.now();
    const ok = await this.#o.budget.reserve(bytes, this.#o.budgetWaitMs);
    this.#o.onEvent?.({ type: 'fill-budget-wait', storeId: store.id, waitedMs: performance.now() - waitStarted, granted: ok });
    return ok;
  }

  /** Forget every fill of `ck`: they finish, but never commit their bytes. */
  detach(ck: string): void {
    const m = this.#byObject.get(ck);
    if (m) for (const f of m.values()) f.detached = true;
    this.#byObject.delete(ck);
  }

  #isCurrent(ck: string, i: number, fill: SliceFill): boolean {
    return this.#byObject.get(ck)?.get(i) === fill;
  }

  #remove(ck: string, i: number, fill: SliceFill): void {
    const m = this.#byObject.get(ck);
    if (m?.get(i) !== fill) return;
    m.delete(i);
    if (m.size === 0) this.#byObject.delete(ck);
  }

  #start(
    store: ObjectStore,
    key: string,
    ck: string,
    i: number,
    expected: CachedMeta | undefined,
    reserved: number,
    mode: BudgetMode,
    from: number,
    file: EntryFile | undefined,
  ): SliceFill {
    let settle!: () => void;
    const fill: SliceFill = {
      index: i,
      ready: undefined as unknown as Promise<FillReady>,
      settled: new Promise<void>((r) => (settle = r)),
      complete: false,
      over: false,
      detached: false,
    };
    let held = reserved;
    const release = (bytes: number) => {
      const n = Math.min(bytes, held);
      held -= n;
      this.#o.budget.release(n);
    };
    /** More room, now or not at all (a file fill whose disk failed moves its bytes to memory). */
    const reserve = (bytes: number) => {
      if (fill.over || !this.#o.budget.tryReserve(bytes)) return false;
      held += bytes;
      return true;
    };
    /**
     * Hold exactly `bytes` (an unknown object's fill, once the answer gives its size): at once,
     * or, in `wait` mode, after waiting for room with nothing held meanwhile, so that two fills
     * never wait for each other's bytes.
     */
    const hold = async (bytes: number): Promise<boolean> => {
      if (bytes <= held) {
        release(held - bytes);
        return true;
      }
      if (reserve(bytes - held)) return true;
      release(held);
      if (mode !== 'wait' || !(await this.#waitForRoom(store, bytes))) return false;
      held = bytes;
      return true;
    };
    const end = () => {
      fill.over = true;
      release(held);
      this.#remove(ck, i, fill);
      settle();
    };
    (fill as { ready: Promise<FillReady> }).ready = this.#run(store, key, ck, i, expected, fill, release, reserve, hold, end, from, file);
    // A failure before the first byte settles every waiter through `ready`.
    fill.ready.then(
      (r) => {
        if (r.kind !== 'data') end();
      },
      (err: unknown) => {
        if (expected && err instanceof StoreError && err.kind === 'changed') this.#o.changed?.(ck, expected.etag);
        end();
      },
    );
    let m = this.#byObject.get(ck);
    if (!m) this.#byObject.set(ck, (m = new Map()));
    m.set(i, fill);
    return fill;
  }

  async #run(
    store: ObjectStore,
    key: string,
    ck: string,
    i: number,
    expected: CachedMeta | undefined,
    fill: SliceFill,
    release: (bytes: number) => void,
    reserve: (bytes: number) => boolean,
    hold: (bytes: number) => Promise<boolean>,
    end: () => void,
    from: number,
    opened: EntryFile | undefined,
  ): Promise<FillReady> {
    const S = this.#o.sliceBytes;
    const asked: ByteRange = expected ? sliceSpan(i, expected.size, S) : { start: i * S, end: (i + 1) * S - 1 };
    // Where the fill starts in the slice: the reader's byte, for a seek deep into a known slice.
    const seek = expected && from >= SEEK_FIRST_MIN_BYTES && asked.start + from <= asked.end ? from : 0;
    // The entry file until the FillBuffer owns it: released on every way out before that.
    let file = opened;
    let res: GetResult | undefined;
    let size: number;
    let span: ByteRange;
    let length: number;
    let fb: FillBuffer;
    try {
      try {
        res = await this.#o.calls.timed(store, 'get', (signal) =>
          store.get(key, { signal, range: { start: asked.start + seek, end: asked.end }, ...(expected ? { ifMatch: expected.etag } : {}) }),
        );
      } catch (err) {
        if (err instanceof StoreError && err.kind === 'precondition_failed') throw objectChanged(store, key);
        if (!expected && err instanceof StoreError && err.kind === 'range_not_satisfiable') return { kind: 'unsatisfiable' };
        throw err;
      }
      if (!res) {
        if (expected) throw objectChanged(store, key);
        return { kind: 'absent' };
      }
      if (expected && res.meta.etag !== undefined && res.meta.etag !== expected.etag) {
        res.body.destroy();
        throw objectChanged(store, key);
      }
      size = expected?.size ?? res.meta.size;
      span = { start: asked.start, end: Math.min(asked.end, size - 1) };
      if (span.end < span.start) {
        res.body.destroy();
        return { kind: 'unsatisfiable' };
      }
      length = span.end - span.start + 1;
      if (!expected) {
        // The first answer of an object: now its size says whether the slice goes to a file,
        // and what the fill holds. Its body waits unread meanwhile.
        file = this.#o.openFile?.(ck, i, size, length);
        if (!(await hold(file ? Math.min(length, STREAMING_FILL_BYTES) : length))) {
          res.body.destroy();
          return { kind: 'no-room', meta: { ...res.meta, size } };
        }
      }
      // Should the disk fail mid-fill, the bytes move to memory when the budget has room for them.
      fb = new FillBuffer(length, file ? undefined : this.#o.lend?.(size, length), seek, file, file ? () => reserve(length) : undefined);
      file = undefined;
    } finally {
      file?.release();
    }
    const started = performance.now();
    const sniff = !expected && i === 0 && sniffsType(key, res.meta.contentType, size, S);
    const storeMeta = res.meta;
    let body = res.body;
    res = undefined;
    return new Promise<FillReady>((resolve, reject) => {
      let meta: CachedMeta | undefined = expected;
      let published = false;
      const publish = () => {
        if (published) return;
        published = true;
        if (!meta) {
          meta = toCachedMeta(key, { ...storeMeta, size }, sniff ? fb.head(SNIFF_BYTES) : undefined);
          if (this.#isCurrent(ck, i, fill)) this.#o.learned(ck, meta);
        }
        resolve({ kind: 'data', meta, span, buffer: fb });
      };
      let completed = false;
      const stalled = () => body.destroy(new StoreError(store.id, 'get', new Error(`body stalled for ${this.#o.calls.idleTimeoutMs} ms`), 'timeout'));
      let idle = new IdleTimer(this.#o.calls.idleTimeoutMs, stalled);
      const fail = (err: unknown) => {
        idle.stop();
        const error = err instanceof StoreError ? err : new StoreError(store.id, 'get', err);
        // Once published, no `ready` rejection reports it (see #start), and no reader may be
        // there to see it (the part before a seek often has none).
        if (published && error.kind === 'changed' && expected) this.#o.changed?.(ck, expected.etag);
        fb.fail(error);
        this.#o.calls.bodyFailed(store, 'get', error, started);
        this.#o.onEvent?.({ type: 'store-bytes', storeId: store.id, bytes: fb.filled });
        if (!published) reject(error);
        fb.release();
        end();
      };
      // The slice is committed the moment its last byte arrives, before any reader can see the
      // end of it (their wake-ups run after this handler), so a request that follows a finished
      // response finds it cached.
      const complete = () => {
        idle.stop();
        let buffer: Buffer;
        try {
          buffer = fb.finish();
        } catch (err) {
          fail(err);
          return;
        }
        completed = true;
        fill.complete = true;
        publish();
        this.#o.onEvent?.({ type: 'store-bytes', storeId: store.id, bytes: length });
        // An invalidation may have detached this fill meanwhile: then it must not commit.
        const current = this.#isCurrent(ck, i, fill);
        const commit = !current ? Promise.resolve(false) : fb.file ? fb.file.commit(meta!) : this.#o.commit(ck, i, meta!, buffer);
        // Once a tier owns the bytes, the fill lets go of them (unless detached: its readers
        // finish from it), so a reader never pins a slice its tier evicted. Bytes no tier took
        // (an uncacheable object) stay for the readers of this fill.
        commit.then(
          (kept) => {
            this.#o.onEvent?.({ type: 'fill-done', storeId: store.id, bytes: length, cached: true });
            if (kept && !fill.detached) fb.release();
            end();
          },
          () => end(),
        );
      };
      // The fill count at which the current body has sent all it should: after the seek's GET,
      // the part before the seek follows in a second one.
      let bodyEnd = length - seek;
      const next = () => {
        if (fb.filled !== bodyEnd) {
          fail(new Error(`store body ended after ${fb.filled} of ${length} bytes`));
          return;
        }
        if (bodyEnd === length) {
          complete();
          return;
        }
        bodyEnd = length;
        idle.stop();
        this.#o.calls
          .timed(store, 'get', (signal) => store.get(key, { signal, range: { start: span.start, end: span.start + seek - 1 }, ifMatch: expected!.etag }))
          .then(
            (r) => {
              if (fb.error) {
                r?.body.destroy();
                return;
              }
              if (!r || (r.meta.etag !== undefined && r.meta.etag !== expected!.etag)) {
                r?.body.destroy();
                fail(objectChanged(store, key));
                return;
              }
              body = r.body;
              idle = new IdleTimer(this.#o.calls.idleTimeoutMs, stalled);
              attach(body);
            },
            (err) => fail(err instanceof StoreError && err.kind === 'precondition_failed' ? objectChanged(store, key) : err),
          );
      };
      const attach = (b: Readable) => {
        let over = false;
        b.on('data', (chunk: Buffer) => {
          if (completed || over) return;
          idle.touch();
          if (fb.filled + chunk.length > bodyEnd) {
            b.destroy(new Error(`store sent more than the announced ${length} bytes`));
            return;
          }
          try {
            fb.append(chunk);
          } catch (err) {
            b.destroy(err as Error);
            return;
          }
          if (!published && (!sniff || fb.filled >= Math.min(SNIFF_BYTES, length))) publish();
          if (fb.filled === bodyEnd) {
            over = true;
            next();
          }
        });
        b.on('error', (err) => {
          if (!completed && !over) fail(err);
        });
        b.on('end', () => {
          if (completed || over) return;
          over = true;
          next();
        });
        b.on('close', () => {
          // Destroyed without an error and without its end: a cut body.
          if (!completed && !over && !fb.error) fail(new Error(`store body closed after ${fb.filled} of ${length} bytes`));
        });
      };
      attach(body);
    });
  }
}

