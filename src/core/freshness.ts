/**
 * Freshness: every decision about whether a cached copy may be served without asking the store,
 * how it is revalidated, and when a stale copy stands in for a failing store. One place, for
 * every path that serves a copy (GET, HEAD, the memory fast path); grown out of the rejoin rule.
 *
 * Policies (`stores.<id>.cache`, config/schema.ts):
 * - `immutable` (default): a copy is fresh for ever (but see the rejoin rule).
 * - `revalidate`: fresh for `max_age` after it was cached or last revalidated. Then, for
 *   `stale_while_revalidate` more, it is served while one background revalidation runs; after
 *   that the request waits for the revalidation. A revalidation is one conditional HEAD
 *   (`ObjectStore.revalidate`, If-None-Match with the stored ETag), shared by every concurrent
 *   request for the key: `not_modified` refreshes the copy's age; `modified` or `gone` drops it,
 *   and the request goes on as a miss (one GET, through the fills' singleflight).
 * - `no_store`: nothing is cached; every request passes through.
 *
 * The rejoin rule (kept from core/rejoin.ts): a disk entry written before this process started
 * is revalidated on its first hit, whatever the policy. Behind a consistent-hashing balancer a
 * node that was down missed the PUTs its keys got meanwhile (they went to a stand-in); an entry
 * this process cached itself is as current as every write this node saw. Keyed on the entry's
 * `cachedAtMs` against this process's start, so it needs nothing from the disk format.
 *
 * stale_if_error: when a revalidation fails because the store is down (a connect error, 5xx,
 * throttling or a timeout, each switchable with `stale_if_error_on`; an open breaker counts as
 * down), a copy younger than `max_age + stale_if_error` is served, with its age. Otherwise the
 * error propagates (502/503/504, as for a miss): an unchecked copy is never served in its place.
 */
import { LRUCache } from 'lru-cache';
import type { CachedMeta } from '../cache/types.js';
import { DEFAULT_STORE_CACHE, type StoreCacheConfig, type StoreFailureClass } from '../config/schema.js';
import { StoreError, StoreUnavailableError } from '../errors.js';
import type { ObjectStore } from '../stores/types.js';
import { Singleflight } from './singleflight.js';
import type { StoreCalls } from './store-calls.js';

/** How many keys have their last revalidation remembered; a forgotten one is revalidated again. */
export const VALIDATED_ENTRIES = 100_000;

/** Whether a copy may be served as it is. */
export type Verdict =
  /** Serve it. */
  | 'fresh'
  /** Serve it, and revalidate it in the background (stale_while_revalidate). */
  | 'stale'
  /** Revalidate before serving. */
  | 'expired';

/** What a revalidation found. */
export type Revalidated = 'current' | 'changed' | 'gone';

export interface FreshnessOptions {
  calls: StoreCalls;
  /** When this process started (ms since the epoch): older disk entries are revalidated. */
  startedAtMs: number;
  /** Each store's `cache` section (absent: the defaults). */
  policies: ReadonlyMap<string, StoreCacheConfig | undefined>;
  now?: () => number;
}

export class Freshness {
  readonly #calls: StoreCalls;
  readonly #startedAtMs: number;
  readonly #policies: ReadonlyMap<string, StoreCacheConfig | undefined>;
  readonly #now: () => number;
  /** When a key's copy was last found current (ms); bounded, a write or drop removes its key. */
  readonly #validatedAt = new LRUCache<string, number>({ max: VALIDATED_ENTRIES });
  readonly #inflight = new Singleflight<Promise<Revalidated>>();

  constructor(options: FreshnessOptions) {
    this.#calls = options.calls;
    this.#startedAtMs = options.startedAtMs;
    this.#policies = options.policies;
    this.#now = options.now ?? Date.now;
  }

  /** The store's cache policy. */
  policy(storeId: string): StoreCacheConfig {
    return this.#policies.get(storeId) ?? DEFAULT_STORE_CACHE;
  }

  /** Whether the store's objects are cached at all (not `no_store`). */
  caches(storeId: string): boolean {
    return this.policy(storeId).policy !== 'no_store';
  }

  /** How long a 404 of this store is remembered (0: not at all). */
  negativeTtlMs(storeId: string): number {
    return this.policy(storeId).negative_ttl;
  }

  /** Age of a copy in ms: since it was cached, or last found current. */
  ageMs(ck: string, meta: CachedMeta): number {
    return Math.max(0, this.#now() - this.#since(ck, meta));
  }

  /** Whether the copy `meta` describes may be served now, and how. */
  verdict(storeId: string, ck: string, meta: CachedMeta): Verdict {
    const p = this.policy(storeId);
    // Every hit asks this (the fast path too): an immutable copy this process cached is decided
    // without looking up when it was last validated.
    if (p.policy !== 'revalidate' && meta.cachedAtMs > this.#startedAtMs) return 'fresh';
    const since = this.#since(ck, meta);
    // `<=`: an entry cached in the very millisecond this process started came from the old one.
    if (since <= this.#startedAtMs) return 'expired';
    if (p.policy !== 'revalidate') return 'fresh';
    const age = this.#now() - since;
    if (age < p.max_age) return 'fresh';
    return age < p.max_age + p.stale_while_revalidate ? 'stale' : 'expired';
  }

  /**
   * Ask the store whether the copy is still current (one conditional HEAD, shared by concurrent
   * callers). `current` refreshes its age. Throws the StoreError when the store cannot say.
   */
  revalidate(store: ObjectStore, key: string, ck: string, meta: CachedMeta): Promise<Revalidated> {
    return this.#inflight.join(ck, () => {
      const check: Promise<Revalidated> = this.#ask(store, key, meta).then(
        (found) => {
          // Not remembered when a write replaced the entry meanwhile (forget() detached us).
          if (found === 'current' && this.#inflight.isCurrent(ck, check)) this.#validatedAt.set(ck, this.#now());
          this.#inflight.release(ck, check);
          return found;
        },
        (err: unknown) => {
          this.#inflight.release(ck, check);
          throw err;
        },
      );
      return check;
    }).value;
  }

  /**
   * Whether a copy may stand in for a store that failed with `err`: stale_if_error is set, the
   * failure is of a class switched on, and the copy is younger than max_age + stale_if_error.
   */
  servesStale(storeId: string, ck: string, meta: CachedMeta, err: unknown): boolean {
    const p = this.policy(storeId);
    if (p.stale_if_error <= 0) return false;
    const cls = failureClass(err);
    if (cls === undefined || (cls === 'breaker' ? p.stale_if_error_on.length === 0 : !p.stale_if_error_on.includes(cls))) return false;
    const maxAge = p.policy === 'revalidate' ? p.max_age : 0;
    return this.ageMs(ck, meta) < maxAge + p.stale_if_error;
  }

  /** Forget a key (its entry was replaced or dropped). */
  forget(ck: string): void {
    this.#validatedAt.delete(ck);
    this.#inflight.detach(ck);
  }

  #since(ck: string, meta: CachedMeta): number {
    return Math.max(meta.cachedAtMs, this.#validatedAt.get(ck) ?? 0);
  }

  async #ask(store: ObjectStore, key: string, meta: CachedMeta): Promise<Revalidated> {
    const r = await this.#calls.timed(store, 'head', (signal) => store.revalidate(key, meta.etag, { signal }));
    if (r.kind === 'not_modified') return 'current';
    return r.kind === 'gone' ? 'gone' : 'changed';
  }
}

/**
 * The class of a store failure, for `stale_if_error_on`; `breaker` for a store left alone by its
 * open breaker; `undefined` for failures that say nothing about the store being down.
 */
export function failureClass(err: unknown): StoreFailureClass | 'breaker' | undefined {
  if (err instanceof StoreUnavailableError) return 'breaker';
  if (!(err instanceof StoreError)) return undefined;
  switch (err.kind) {
    case 'timeout':
      return 'timeout';
    case 'network':
      return 'connect';
    case 'throttled':
      return 'throttle';
    case 'server_error':
      return '5xx';
  }
  // (The kind is the store's, or errors.ts's reading of the driver's error: one place.)
  return undefined;
}
