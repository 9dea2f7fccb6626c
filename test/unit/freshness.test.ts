/**
 * core/freshness.ts: the one place that decides whether a copy is served as it is, served stale,
 * or revalidated first, and whether a store failure lets a stale copy stand in. A clock the
 * test drives; the store side (one conditional HEAD per herd) is in integration/freshness.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { CachedMeta } from '../../src/cache/types.js';
import { DEFAULT_STORE_CACHE, type StoreCacheConfig } from '../../src/config/schema.js';
import { failureClass, Freshness } from '../../src/core/freshness.js';
import { StoreCalls } from '../../src/core/store-calls.js';
import { StoreError, StoreUnavailableError } from '../../src/errors.js';

const START = 1_000_000;

function freshness(policies: Record<string, Partial<StoreCacheConfig>>, clock: { now: number }) {
  const map = new Map(Object.entries(policies).map(([id, p]) => [id, { ...DEFAULT_STORE_CACHE, ...p }]));
  return new Freshness({ calls: new StoreCalls({ storeTimeoutMs: 1000, storeIdleTimeoutMs: 1000 }), startedAtMs: START, policies: map, now: () => clock.now });
}

const meta = (cachedAtMs: number): CachedMeta => ({ size: 1, etag: '"e"', lastModifiedMs: undefined, contentType: 'text/plain', cachedAtMs });

describe('Freshness.verdict', () => {
  it('immutable: fresh for ever, except an entry from before this process (the rejoin rule)', () => {
    const clock = { now: START + 10_000_000 };
    const f = freshness({ imm: {} }, clock);
    expect(f.verdict('imm', 'k', meta(START + 1))).toBe('fresh');
    expect(f.verdict('imm', 'k', meta(START))).toBe('expired');
    expect(f.verdict('unconfigured', 'k', meta(START + 1))).toBe('fresh');
  });

  it('revalidate: fresh within max_age, stale within stale_while_revalidate, then expired', () => {
    const clock = { now: START + 1 };
    const f = freshness({ rev: { policy: 'revalidate', max_age: 60_000, stale_while_revalidate: 10_000 } }, clock);
    const m = meta(START + 1);
    expect(f.verdict('rev', 'k', m)).toBe('fresh');
    clock.now += 59_999;
    expect(f.verdict('rev', 'k', m)).toBe('fresh');
    clock.now += 1;
    expect(f.verdict('rev', 'k', m)).toBe('stale');
    clock.now += 10_000;
    expect(f.verdict('rev', 'k', m)).toBe('expired');
  });

  it('no_store caches nothing; negative_ttl is per store', () => {
    const f = freshness({ ns: { policy: 'no_store' }, neg: { negative_ttl: 5_000 } }, { now: START });
    expect(f.caches('ns')).toBe(false);
    expect(f.caches('neg')).toBe(true);
    expect(f.negativeTtlMs('neg')).toBe(5_000);
    expect(f.negativeTtlMs('ns')).toBe(0);
  });
});

describe('Freshness.servesStale', () => {
  const down = new StoreError('s', 'head', new Error('boom'), 'server_error');

  it('serves a copy younger than max_age + stale_if_error, for failure classes switched on', () => {
    const clock = { now: START + 1 };
    const f = freshness(
      {
        sie: { policy: 'revalidate', max_age: 1_000, stale_if_error: 10_000 },
        only5xx: { policy: 'revalidate', max_age: 1_000, stale_if_error: 10_000, stale_if_error_on: ['5xx'] },
        none: { policy: 'revalidate', max_age: 1_000 },
      },
      clock,
    );
    const m = meta(START + 1);
    clock.now += 10_999;
    expect(f.servesStale('sie', 'k', m, down)).toBe(true);
    expect(f.servesStale('none', 'k', m, down)).toBe(false);
    const timeout = new StoreError('s', 'head', new Error('slow'), 'timeout');
    expect(f.servesStale('sie', 'k', m, timeout)).toBe(true);
    expect(f.servesStale('only5xx', 'k', m, timeout)).toBe(false);
    expect(f.servesStale('only5xx', 'k', m, down)).toBe(true);
    // A store the breaker leaves alone is down.
    expect(f.servesStale('only5xx', 'k', m, new StoreUnavailableError('s', 'open', 1))).toBe(true);
    // Not a store outage: never stale.
    expect(f.servesStale('sie', 'k', m, new StoreError('s', 'head', new Error('denied'), 'access_denied'))).toBe(false);
    clock.now += 1;
    expect(f.servesStale('sie', 'k', m, down)).toBe(false);
  });
});

describe('failureClass', () => {
  it('maps store failures to connect, 5xx, throttle and timeout', () => {
    expect(failureClass(new StoreError('s', 'get', Object.assign(new Error('x'), { code: 'ECONNREFUSED' })))).toBe('connect');
    expect(failureClass(new StoreError('s', 'get', new Error('x'), 'server_error'))).toBe('5xx');
    expect(failureClass(new StoreError('s', 'get', new Error('x'), 'throttled'))).toBe('throttle');
    expect(failureClass(new StoreError('s', 'get', Object.assign(new Error('x'), { name: 'TimeoutError' })))).toBe('timeout');
    expect(failureClass(new StoreError('s', 'get', Object.assign(new Error('x'), { statusCode: 502 })))).toBe('5xx');
    expect(failureClass(new StoreError('s', 'get', Object.assign(new Error('x'), { statusCode: 429 })))).toBe('throttle');
    expect(failureClass(new Error('not a store error'))).toBeUndefined();
  });
});
