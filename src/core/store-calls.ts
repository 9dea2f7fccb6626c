/**
 * Calling stores from the core: every call runs under the answer deadline (and bodies under the
 * idle deadline), failures become StoreErrors, and each call is reported as a `store-op` event.
 */
import type { Readable } from 'node:stream';
import { GatewayError, KeyRejectedError, StoreError, type StoreOp } from '../errors.js';
import type { CachedMeta } from '../cache/types.js';
import type { ByteRange, GetResult, ObjectMeta, ObjectStore, StopSignal } from '../stores/types.js';
import { resolveContentType } from './content-type.js';
import { idleGuard, withDeadline } from './deadline.js';
import type { CoreEventListener } from './events.js';
import { DEFAULT_RETRY_BASE_MS, StoreGuard, type StoreProtection } from './store-guard.js';

export interface StoreCallOptions {
  storeTimeoutMs: number;
  storeIdleTimeoutMs: number;
  /** Retries, breaker, concurrency cap and hedging for reads (none when absent). */
  protection?: StoreProtection | undefined;
  onEvent?: CoreEventListener | undefined;
}

/** No protection: one attempt, no breaker, no cap. */
const UNPROTECTED: StoreProtection = { retries: 0, retryBaseMs: DEFAULT_RETRY_BASE_MS, breakerFailures: 0, breakerCooldownMs: 0, maxConcurrent: 0, queueTimeoutMs: 0 };

export class StoreCalls {
  readonly #o: StoreCallOptions;
  readonly #guards = new Map<string, StoreGuard>();

  constructor(options: StoreCallOptions) {
    this.#o = options;
  }

  /** The protection guard of a store (made on first use). */
  guardOf(storeId: string): StoreGuard {
    let g = this.#guards.get(storeId);
    if (!g) {
      const emit = this.#o.onEvent;
      g = new StoreGuard(storeId, this.#o.protection ?? UNPROTECTED, {
        retry: (id) => emit?.({ type: 'store-retry', storeId: id }),
        hedge: (id) => emit?.({ type: 'store-hedge', storeId: id }),
        failFast: (id, reason) => emit?.({ type: 'store-fail-fast', storeId: id, reason }),
        breaker: (id, state) => emit?.({ type: 'breaker', storeId: id, state }),
      });
      this.#guards.set(storeId, g);
    }
    return g;
  }

  /** Every guard made so far (queue depth and breaker state at scrape time). */
  guards(): ReadonlyMap<string, StoreGuard> {
    return this.#guards;
  }

  get idleTimeoutMs(): number {
    return this.#o.storeIdleTimeoutMs;
  }

  get timeoutMs(): number {
    return this.#o.storeTimeoutMs;
  }

  /** Report a failure noticed while reading a body (after the call itself succeeded). */
  bodyFailed(store: ObjectStore, op: StoreOp, error: StoreError, startedMs: number): void {
    // A body the store cut or stalled is a store failure for its breaker too.
    if (op === 'get') this.guardOf(store.id).failed(false);
    this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op, outcome: 'error', errorKind: error.kind, durationMs: performance.now() - startedMs });
  }

  /** A store body guarded by the idle deadline, its bytes counted as fetched from the store. */
  guard(store: ObjectStore, body: Readable): Readable {
    const guarded = idleGuard(body, this.#o.storeIdleTimeoutMs, `store '${store.id}' body`);
    let bytes = 0;
    guarded.on('data', (c: Buffer) => (bytes += c.length));
    guarded.once('close', () => this.#o.onEvent?.({ type: 'store-bytes', storeId: store.id, bytes }));
    return guarded;
  }

  /**
   * Bytes of an object straight from the store, uncached: the whole object, or `range` of it,
   * conditional on `ifMatch` (and checked against the ETag the answer carries). The caller owns
   * the stream. A vanished or changed object is a StoreError of kind `changed`.
   */
  async direct(store: ObjectStore, key: string, range: ByteRange | undefined, ifMatch: string | undefined): Promise<Readable> {
    let res;
    try {
      res = await this.timed(store, 'get', (signal) => store.get(key, { signal, ...(range ? { range } : {}), ...(ifMatch ? { ifMatch } : {}) }));
    } catch (err) {
      if (err instanceof StoreError && err.kind === 'precondition_failed') throw objectChanged(store, key);
      throw err;
    }
    if (!res) throw objectChanged(store, key);
    if (ifMatch && res.meta.etag !== undefined && res.meta.etag !== ifMatch) {
      res.body.destroy();
      throw objectChanged(store, key);
    }
    return this.guard(store, res.body);
  }

  /**
   * Call the store under the answer deadline, turning failures into StoreErrors and emitting a
   * `store-op` event. The deadline stops once the store answers, so a body may flow on.
   */
  async timed<T>(store: ObjectStore, op: StoreOp, fn: (signal: StopSignal) => Promise<T>): Promise<T> {
    // Reads go through the store's guard (store-guard.ts); a refusal there never asks the store.
    const guard = op === 'head' || op === 'get' ? this.guardOf(store.id) : undefined;
    const admitted = guard?.admit();
    const admission = admitted instanceof Promise ? await admitted : admitted;
    const probe = admission?.probe ?? false;
    const started = performance.now();
    try {
      const call = guard ? (signal: StopSignal) => guard.run(fn, signal, { hedge: op === 'get', disposeLate: destroyLateBody }) : fn;
      const result = await withDeadline(this.#o.storeTimeoutMs, `store '${store.id}' ${op}`, call, destroyLateBody);
      guard?.succeeded(probe);
      if (op === 'get') guard?.observeGet(performance.now() - started);
      this.#o.onEvent?.({
        type: 'store-op',
        storeId: store.id,
        op,
        outcome: result === undefined ? 'not_found' : 'ok',
        durationMs: performance.now() - started,
      });
      return result;
    } catch (err) {
      // The client's doing (a key the store cannot hold): a 4xx, not a store failure.
      if (err instanceof KeyRejectedError) {
        guard?.succeeded(probe); // the store answered
        this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op, outcome: 'rejected', durationMs: performance.now() - started });
        throw err;
      }
      const error = err instanceof StoreError ? err : new StoreError(store.id, op, err);
      guard?.failed(probe);
      this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op, outcome: 'error', errorKind: error.kind, durationMs: performance.now() - started });
      throw error;
    } finally {
      admission?.release();
    }
  }
}

/** A store answer that arrived after its deadline: release its body (and socket). */
function destroyLateBody(late: unknown): void {
  (late as GetResult | undefined)?.body?.destroy?.();
}

/** The cache key of an object: bucket id and key, separated by a byte no key may hold. */
export function cacheKey(bucket: string, key: string): string {
  return `${bucket}\u0000${key}`;
}

/** The object changed (or vanished) in the store while it was being read. */
export function objectChanged(store: ObjectStore, key: string): StoreError {
  return new StoreError(store.id, 'get', new Error(`object '${key}' changed in the store during a read`), 'changed');
}

/** The error for a missing object. */
export function notFound(bucket: string, key: string): GatewayError {
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
