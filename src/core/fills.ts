/**
 * Fills: one store GET per key however many ask (singleflight). A cacheable object streams from
 * the store into a buffer of its full size, and every waiter, the first included, reads from it
 * as bytes arrive, so joining adds no wait. A larger object is never buffered: the first caller
 * takes the store's stream (`passthrough`), anyone else asks the store for their own.
 */
import type { Readable } from 'node:stream';
import { finished } from 'node:stream';
import { StoreError } from '../errors.js';
import type { CachedMeta } from '../cache/types.js';
import type { GetResult, ObjectStore } from '../stores/types.js';
import { needsSniff, SNIFF_BYTES } from './content-type.js';
import { IdleTimer } from './deadline.js';
import type { CoreEventListener } from './events.js';
import { FillBuffer } from './fill-buffer.js';
import { Singleflight } from './singleflight.js';
import { toCachedMeta, type StoreCalls } from './store-calls.js';

/** What a fill found once the store answered (and the first bytes, or the end, arrived). */
export type FillState =
  | { kind: 'absent' }
  | { kind: 'buffered'; meta: CachedMeta; buffer: FillBuffer }
  | { kind: 'passthrough'; meta: CachedMeta; take(): Readable | undefined };

export interface Fill {
  ready: Promise<FillState>;
}

export interface FillsOptions {
  calls: StoreCalls;
  /** Whether an object of this size is buffered and cached. */
  isCacheable(storeId: string, key: string, size: number): boolean;
  /** Put a complete object in the cache tiers; returns whether any tier kept it. */
  commit(ck: string, meta: CachedMeta, body: Buffer): boolean;
  onEvent?: CoreEventListener | undefined;
}

export class Fills {
  readonly #o: FillsOptions;
  readonly #fills = new Singleflight<Fill>();

  constructor(options: FillsOptions) {
    this.#o = options;
  }

  /** The fill in flight for `ck`, or a new one. */
  join(store: ObjectStore, key: string, ck: string): { value: Fill; leader: boolean } {
    return this.#fills.join(ck, () => this.#startFill(store, key, ck));
  }

  get(ck: string): Fill | undefined {
    return this.#fills.get(ck);
  }

  /** Forget the fill in flight for `ck`: it may finish, but must not publish its bytes. */
  detach(ck: string): void {
    this.#fills.detach(ck);
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
    const res = await this.#o.calls.timed(store, 'get', (signal) => store.get(key, { signal }));
    if (!res) return { kind: 'absent' };
    if (!this.#o.isCacheable(store.id, key, res.meta.size)) return this.#passthrough(store, key, res);
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
          cached = this.#o.commit(ck, meta!, buffer);
          this.#fills.release(ck, fill);
        }
        this.#o.onEvent?.({ type: 'fill-done', storeId: store.id, bytes: buffer.length, cached });
      };
      const idle = new IdleTimer(this.#o.calls.idleTimeoutMs, () =>
        body.destroy(new StoreError(store.id, 'get', new Error(`body stalled for ${this.#o.calls.idleTimeoutMs} ms`), 'timeout')),
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
        this.#o.calls.bodyFailed(store, 'get', error, started);
        this.#fills.release(ck, fill);
        reject(error);
      });
    });
  }

  async #passthrough(store: ObjectStore, key: string, res: GetResult): Promise<FillState> {
    let sniffHead: Buffer | undefined;
    if (res.meta.size > 0 && needsSniff(key, res.meta.contentType)) {
      sniffHead = await this.#o.calls.readHead(store, key, res.meta.size);
    }
    let body: Readable | undefined = this.#o.calls.guard(store, res.body);
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

}
