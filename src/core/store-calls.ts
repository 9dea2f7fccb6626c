/**
 * Calling stores from the core: every call runs under the answer deadline (and bodies under the
 * idle deadline), failures become StoreErrors, and each call is reported as a `store-op` event.
 */
import type { Readable } from 'node:stream';
import { GatewayError, StoreError, type StoreOp } from '../errors.js';
import type { CachedMeta } from '../cache/types.js';
import type { ByteRange, GetResult, ObjectMeta, ObjectStore } from '../stores/types.js';
import { resolveContentType, SNIFF_BYTES } from './content-type.js';
import { idleGuard, IdleTimer, withDeadline } from './deadline.js';
import type { CoreEventListener } from './events.js';

export interface StoreCallOptions {
  storeTimeoutMs: number;
  storeIdleTimeoutMs: number;
  onEvent?: CoreEventListener | undefined;
}

export class StoreCalls {
  readonly #o: StoreCallOptions;

  constructor(options: StoreCallOptions) {
    this.#o = options;
  }

  get idleTimeoutMs(): number {
    return this.#o.storeIdleTimeoutMs;
  }

  get timeoutMs(): number {
    return this.#o.storeTimeoutMs;
  }

  /** Report a failure noticed while reading a body (after the call itself succeeded). */
  bodyFailed(store: ObjectStore, op: StoreOp, error: StoreError, startedMs: number): void {
    this.#o.onEvent?.({ type: 'store-op', storeId: store.id, op, outcome: 'error', errorKind: error.kind, durationMs: performance.now() - startedMs });
  }

  /** A store body guarded by the idle deadline. */
  guard(store: ObjectStore, body: Readable): Readable {
    return idleGuard(body, this.#o.storeIdleTimeoutMs, `store '${store.id}' body`);
  }

  /** A stream of the whole object straight from the store, for a second caller of an oversized object. */
  async directGet(store: ObjectStore, key: string): Promise<Readable> {
    const res = await this.timed(store, 'get', (signal) => store.get(key, { signal }));
    if (!res) throw notFound(store.id, key);
    return this.guard(store, res.body);
  }

  /** The first bytes of an object, for sniffing its type when neither store nor extension says. */
  async readHead(store: ObjectStore, key: string, size: number): Promise<Buffer | undefined> {
    const range: ByteRange = { start: 0, end: Math.min(size, SNIFF_BYTES) - 1 };
    const res = await this.timed(store, 'get', (signal) => store.get(key, { signal, range }));
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
  async timed<T>(store: ObjectStore, op: StoreOp, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
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

/** A store answer that arrived after its deadline: release its body (and socket). */
function destroyLateBody(late: unknown): void {
  (late as GetResult | undefined)?.body?.destroy?.();
}

/** The cache key of an object: bucket id and key, separated by a byte no key may hold. */
export function cacheKey(bucket: string, key: string): string {
  return `${bucket}\u0000${key}`;
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
