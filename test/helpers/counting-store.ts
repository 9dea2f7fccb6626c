/**
 * A real store with its calls counted: the test sees exactly how many requests reached the
 * backend. Optionally a `tap` may intercept get() to slow, gate or break the real body.
 */
import type { Readable } from 'node:stream';
import { PROBE_KEY } from '../../src/core/readiness.js';
import type { GetOptions, GetResult, ObjectStore, PutOptions, StoreRequestOptions } from '../../src/stores/types.js';

export interface StoreCalls {
  head: number;
  /** Readiness probes (HEAD of the probe key), kept apart from client-driven calls. */
  probe: number;
  get: number;
  getRanged: number;
  put: number;
  delete: number;
}

export type CountingStore = ObjectStore & {
  calls: StoreCalls;
  /** Replace get()'s behaviour for the next calls; receives the real get. */
  tap: ((key: string, opts: GetOptions, real: () => Promise<GetResult | undefined>) => Promise<GetResult | undefined>) | undefined;
};

/** Every GET the store received, whole or ranged (the gateway's reads are slice GETs). */
export function gets(calls: StoreCalls): number {
  return calls.get + calls.getRanged;
}

/** Wrap `inner`, counting every call. */
export function countingStore(inner: ObjectStore): CountingStore {
  const calls: StoreCalls = { head: 0, probe: 0, get: 0, getRanged: 0, put: 0, delete: 0 };
  const store: CountingStore = {
    id: inner.id,
    type: inner.type,
    calls,
    tap: undefined,
    head(key: string, opts?: StoreRequestOptions) {
      if (key === PROBE_KEY) calls.probe++;
      else calls.head++;
      return inner.head(key, opts);
    },
    // A conditional HEAD counts as a HEAD: it is one to the store.
    revalidate(key: string, etag: string, opts?: StoreRequestOptions) {
      calls.head++;
      return inner.revalidate(key, etag, opts);
    },
    get(key: string, opts: GetOptions = {}) {
      if (opts.range) calls.getRanged++;
      else calls.get++;
      const real = () => inner.get(key, opts);
      return store.tap ? store.tap(key, opts, real) : real();
    },
    put(key: string, body: Readable, opts?: PutOptions) {
      calls.put++;
      return inner.put(key, body, opts);
    },
    delete(key: string, opts?: StoreRequestOptions) {
      calls.delete++;
      return inner.delete(key, opts);
    },
    close: () => inner.close(),
  };
  return store;
}
