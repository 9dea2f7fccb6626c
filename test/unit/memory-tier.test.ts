import { randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { ENTRY_OVERHEAD_BYTES, createMemoryTier, type MemoryTier } from '../../src/cache/memory-tier.js';
import type { CacheEntry, TierEvent } from '../../src/cache/types.js';

const ETAG = '"x"';
const CONTENT_TYPE = 'application/octet-stream';

function entry(bodyBytes: number, fillByte = 0x61): CacheEntry {
  return {
    meta: { size: bodyBytes, etag: ETAG, lastModifiedMs: undefined, contentType: CONTENT_TYPE, cachedAtMs: Date.now() },
    body: Buffer.alloc(bodyBytes, fillByte),
  };
}

/** What the tier accounts for one entry: body, key, metadata strings and a fixed overhead. */
function accounted(key: string, bodyBytes: number): number {
  return bodyBytes + key.length + ETAG.length + CONTENT_TYPE.length + ENTRY_OVERHEAD_BYTES;
}

/** Bytes accounted = sum of entry sizes ≤ limit, and the entry count agrees. */
function checkInvariant(tier: MemoryTier): void {
  const sizes = [...tier.sizes()];
  const stats = tier.stats();
  expect(stats.bytes).toBe(sizes.reduce((a, b) => a + b, 0));
  expect(stats.bytes).toBeLessThanOrEqual(stats.maxBytes);
  expect(stats.entries).toBe(sizes.length);
}

/** Body size that makes an entry under `key` account for exactly `total` bytes. */
function bodyFor(key: string, total: number): number {
  return total - accounted(key, 0);
}

/** Write an entry through the tier's writer; true when that entry (not an older one) is held. */
function set(tier: MemoryTier, key: string, e: CacheEntry): boolean {
  const w = tier.openWrite(key, e.meta, e.body.length);
  if (!w) return false;
  w.end(e.body);
  return tier.peek(key) === e.meta;
}

function get(tier: MemoryTier, key: string): CacheEntry | undefined {
  const hit = tier.lookup(key);
  return hit ? { meta: hit.meta, body: hit.buffer! } : undefined;
}

describe('memory tier', () => {
  it('stays bounded in bytes, not entries, through many inserts', () => {
    const maxBytes = 200_000;
    const tier = createMemoryTier({ maxBytes });
    // Deterministic pseudo-random sizes from 0 to ~20 KB.
    const seed = randomBytes(400);
    let stored = 0;
    for (let i = 0; i < 400; i++) {
      const key = `obj/${i}`;
      const size = (seed[i]! * 80) % 20_000;
      expect(set(tier, key, entry(size))).toBe(true);
      stored++;
      checkInvariant(tier);
    }
    expect(stored).toBe(400);
    // Many entries were evicted: the bound is on bytes.
    expect(tier.stats().entries).toBeLessThan(400);
    expect(tier.stats().bytes).toBeGreaterThan(maxBytes / 2);
  });

  it('holds many tiny entries when they fit, and accounts each at its real size', () => {
    const tier = createMemoryTier({ maxBytes: 4_000_000 });
    for (let i = 0; i < 1000; i++) set(tier, `k${i}`, entry(10));
    checkInvariant(tier);
    const expected = Array.from({ length: 1000 }, (_, i) => accounted(`k${i}`, 10)).reduce((a, b) => a + b, 0);
    expect(tier.stats().bytes).toBe(expected);
    expect(tier.stats().entries).toBe(1000);
  });

  it('counts per-entry overhead, so tiny objects cannot exceed the limit', () => {
    const maxBytes = 10_000;
    const tier = createMemoryTier({ maxBytes });
    for (let i = 0; i < 1000; i++) {
      set(tier, `k${i}`, entry(0));
      checkInvariant(tier);
    }
    const per = accounted('k999', 0);
    expect(tier.stats().entries).toBeLessThanOrEqual(Math.floor(maxBytes / per));
  });

  it('returns the stored bytes and metadata on get', () => {
    const tier = createMemoryTier({ maxBytes: 100_000 });
    const e = { ...entry(0), body: randomBytes(1234) };
    set(tier, 'a/b', e);
    const got = get(tier, 'a/b');
    expect(got?.body.equals(e.body)).toBe(true);
    expect(got?.meta).toEqual(e.meta);
    expect(get(tier, 'missing')).toBeUndefined();
  });

  it('evicts the least recently used entry first, and get refreshes recency', () => {
    const slot = 10_000;
    const tier = createMemoryTier({ maxBytes: 3 * slot });
    set(tier, 'a', entry(bodyFor('a', slot)));
    set(tier, 'b', entry(bodyFor('b', slot)));
    set(tier, 'c', entry(bodyFor('c', slot)));
    expect(tier.stats()).toEqual({ entries: 3, bytes: 3 * slot, maxBytes: 3 * slot });

    expect(get(tier, 'a')).toBeDefined(); // a is now the most recent; b is the oldest
    set(tier, 'd', entry(bodyFor('d', slot)));
    expect(tier.has('b')).toBe(false);
    expect(tier.has('a')).toBe(true);
    expect(tier.has('c')).toBe(true);
    expect(tier.has('d')).toBe(true);

    set(tier, 'e', entry(bodyFor('e', slot))); // c is now the oldest
    expect(tier.has('c')).toBe(false);
    expect(tier.has('a')).toBe(true);
    checkInvariant(tier);
  });

  it('has() does not refresh recency', () => {
    const slot = 10_000;
    const tier = createMemoryTier({ maxBytes: 2 * slot });
    set(tier, 'a', entry(bodyFor('a', slot)));
    set(tier, 'b', entry(bodyFor('b', slot)));
    expect(tier.has('a')).toBe(true);
    set(tier, 'c', entry(bodyFor('c', slot)));
    expect(tier.has('a')).toBe(false);
    expect(tier.has('b')).toBe(true);
  });

  it('evicts as many old entries as a large insert needs', () => {
    const slot = 10_000;
    const tier = createMemoryTier({ maxBytes: 4 * slot });
    for (const k of ['a', 'b', 'c', 'd']) set(tier, k, entry(bodyFor(k, slot)));
    set(tier, 'big', entry(bodyFor('big', 3 * slot)));
    expect([...['a', 'b', 'c', 'd', 'big']].filter((k) => tier.has(k))).toEqual(['d', 'big']);
    checkInvariant(tier);
  });

  it('replacing a key accounts only the new entry', () => {
    const tier = createMemoryTier({ maxBytes: 100_000 });
    set(tier, 'k', entry(5000));
    set(tier, 'k', entry(100, 0x62));
    expect(tier.stats()).toEqual({ entries: 1, bytes: accounted('k', 100), maxBytes: 100_000 });
    expect(get(tier, 'k')?.body.equals(Buffer.alloc(100, 0x62))).toBe(true);
  });

  it('rejects an entry larger than maxEntryBytes and stores nothing', () => {
    const events: TierEvent[] = [];
    const tier = createMemoryTier({ maxBytes: 100_000, maxEntryBytes: 10_000, onEvent: (e) => events.push(e) });
    set(tier, 'small', entry(100));
    expect(set(tier, 'huge', entry(20_000))).toBe(false);
    expect(tier.has('huge')).toBe(false);
    expect(get(tier, 'huge')).toBeUndefined();
    expect(tier.has('small')).toBe(true);
    expect(tier.stats().entries).toBe(1);
    expect(events).toContainEqual({ type: 'rejected', tier: 'memory', bytes: accounted('huge', 20_000), reason: 'too_large' });
    checkInvariant(tier);
  });

  it('rejects an entry larger than the whole tier when maxEntryBytes is not given', () => {
    const tier = createMemoryTier({ maxBytes: 5000 });
    expect(set(tier, 'k', entry(6000))).toBe(false);
    expect(tier.stats().entries).toBe(0);
  });

  it('caps maxEntryBytes at maxBytes', () => {
    const tier = createMemoryTier({ maxBytes: 5000, maxEntryBytes: 1_000_000 });
    expect(set(tier, 'k', entry(6000))).toBe(false);
    expect(tier.has('k')).toBe(false);
  });

  // The admission check must use the same size the tier accounts (body + key + etag + content
  // type + overhead): set() returning true promises the entry is held.
  it.each([1, 14, 27])('rejects, and does not report as stored, an entry %d bytes over the limit', (over) => {
    const events: TierEvent[] = [];
    const maxBytes = 20_000;
    const tier = createMemoryTier({ maxBytes, onEvent: (e) => events.push(e) });
    const ok = set(tier, 'k', entry(bodyFor('k', maxBytes + over)));
    expect({ ok, held: tier.has('k') }).toEqual({ ok: false, held: false });
    expect(events.map((e) => e.type)).toEqual(['rejected']);
    checkInvariant(tier);
  });

  it('accepts an entry whose accounted size is exactly maxEntryBytes', () => {
    const maxBytes = 20_000;
    const tier = createMemoryTier({ maxBytes });
    expect(set(tier, 'k', entry(bodyFor('k', maxBytes)))).toBe(true);
    expect(tier.has('k')).toBe(true);
    expect(tier.stats().bytes).toBe(maxBytes);
  });

  it('rejects an entry one byte over maxEntryBytes, and keeps what was held under that key', () => {
    const maxBytes = 20_000;
    const tier = createMemoryTier({ maxBytes });
    expect(set(tier, 'k', entry(10, 0x62))).toBe(true);
    expect(set(tier, 'k', entry(bodyFor('k', maxBytes) + 1))).toBe(false);
    expect(get(tier, 'k')?.body.equals(Buffer.alloc(10, 0x62))).toBe(true);
  });

  it('emits evicted events with the evicted entry bytes', () => {
    const events: TierEvent[] = [];
    const slot = 10_000;
    const tier = createMemoryTier({ maxBytes: 2 * slot, onEvent: (e) => events.push(e) });
    set(tier, 'a', entry(bodyFor('a', slot)));
    set(tier, 'bb', entry(bodyFor('bb', slot - 100)));
    set(tier, 'c', entry(bodyFor('c', slot)));
    set(tier, 'd', entry(bodyFor('d', slot)));
    const evicted = events.filter((e) => e.type === 'evicted');
    expect(evicted).toEqual([
      { type: 'evicted', tier: 'memory', bytes: slot },
      { type: 'evicted', tier: 'memory', bytes: slot - 100 },
    ]);
  });

  it('emits stored, hit and miss events, and no eviction for delete or replace', () => {
    const events: TierEvent[] = [];
    const tier = createMemoryTier({ maxBytes: 100_000, onEvent: (e) => events.push(e) });
    set(tier, 'k', entry(10));
    get(tier, 'k');
    get(tier, 'nope');
    set(tier, 'k', entry(20));
    tier.delete('k');
    expect(events).toEqual([
      { type: 'stored', tier: 'memory', bytes: accounted('k', 10) },
      { type: 'hit', tier: 'memory' },
      { type: 'miss', tier: 'memory' },
      { type: 'stored', tier: 'memory', bytes: accounted('k', 20) },
    ]);
  });

  it('delete and clear free the accounted bytes', () => {
    const tier = createMemoryTier({ maxBytes: 100_000 });
    set(tier, 'a', entry(1000));
    set(tier, 'b', entry(1000));
    expect(tier.delete('a')).toBe(true);
    expect(tier.delete('a')).toBe(false);
    expect(tier.stats().bytes).toBe(accounted('b', 1000));
    tier.clear();
    expect(tier.stats()).toEqual({ entries: 0, bytes: 0, maxBytes: 100_000 });
    expect([...tier.sizes()]).toEqual([]);
  });

  it('is off when maxBytes is 0', () => {
    const events: TierEvent[] = [];
    const tier = createMemoryTier({ maxBytes: 0, onEvent: (e) => events.push(e) });
    expect(set(tier, 'k', entry(0))).toBe(false);
    expect(set(tier, 'k', entry(10))).toBe(false);
    expect(get(tier, 'k')).toBeUndefined();
    expect(tier.has('k')).toBe(false);
    expect(tier.accepts(0)).toBe(false);
    expect(tier.delete('k')).toBe(false);
    expect(tier.stats()).toEqual({ entries: 0, bytes: 0, maxBytes: 0 });
    expect([...tier.sizes()]).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(['rejected', 'rejected', 'miss']);
  });
});
