/**
 * One contract for every cache tier (after undici's cacheStoreTests): what goes in comes out
 * byte-identical, entries are replaced and deleted, eviction is least-recently-used and by bytes,
 * and after every step the invariant holds: the bytes accounted equal the sum of the entry sizes
 * and stay within the limit.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CachedMeta, TierStats } from '../../src/cache/types.js';

/** A tier seen through one async shape, whatever its native API. */
export interface TierUnderTest {
  put(key: string, meta: CachedMeta, body: Buffer): Promise<void>;
  get(key: string): Promise<Buffer | undefined>;
  delete(key: string): Promise<void>;
  stats(): TierStats;
  sizes(): Iterable<number>;
}

export interface TierFactory {
  /** A fresh tier bounded by `maxBytes`, entries up to `maxEntryBytes`. */
  make(maxBytes: number, maxEntryBytes?: number): Promise<TierUnderTest>;
  cleanup(): Promise<void>;
  /** Bytes an entry costs beyond its body (metadata, headers), at most. */
  overheadBytes: number;
}

export function meta(size: number): CachedMeta {
  return { size, etag: `"${size.toString(16)}"`, lastModifiedMs: 1_700_000_000_000, contentType: 'application/octet-stream', cachedAtMs: Date.now() };
}

function checkInvariant(tier: TierUnderTest, maxBytes: number): void {
  const stats = tier.stats();
  const sum = [...tier.sizes()].reduce((a, b) => a + b, 0);
  expect(stats.bytes).toBe(sum);
  expect(stats.bytes).toBeLessThanOrEqual(maxBytes);
  expect(stats.entries).toBe([...tier.sizes()].length);
}

/** Define the contract for one tier implementation. */
export function describeCacheTierContract(name: string, factory: TierFactory): void {
  describe(`cache tier contract: ${name}`, () => {
    const MAX = 1024 * 1024;
    let tier: TierUnderTest;

    beforeEach(async () => {
      tier = await factory.make(MAX);
    });
    afterEach(async () => {
      await factory.cleanup();
    });

    it('returns what was stored, byte for byte, and nothing for unknown keys', async () => {
      const body = randomBytes(12_345);
      await tier.put('a', meta(body.length), body);
      expect((await tier.get('a'))!.equals(body)).toBe(true);
      expect(await tier.get('b')).toBeUndefined();
      checkInvariant(tier, MAX);
    });

    it('stores empty bodies and keys with any characters', async () => {
      for (const key of ['media\u0000empty', 'b\u0000dir/ü ñ/日本.bin', 'c\u0000a+b%20c?d#e']) {
        const body = key.includes('empty') ? Buffer.alloc(0) : randomBytes(100);
        await tier.put(key, meta(body.length), body);
        expect((await tier.get(key))!.equals(body)).toBe(true);
      }
      checkInvariant(tier, MAX);
    });

    it('replaces an entry and deletes one', async () => {
      await tier.put('k', meta(10), Buffer.alloc(10, 1));
      await tier.put('k', meta(20), Buffer.alloc(20, 2));
      expect((await tier.get('k'))!.equals(Buffer.alloc(20, 2))).toBe(true);
      expect(tier.stats().entries).toBe(1);
      checkInvariant(tier, MAX);
      await tier.delete('k');
      expect(await tier.get('k')).toBeUndefined();
      expect(tier.stats().entries).toBe(0);
      checkInvariant(tier, MAX);
    });

    it('evicts by bytes, least recently used first, and keeps the invariant at every step', async () => {
      const size = 100 * 1024; // ten of these plus overhead do not fit in 1 MiB
      const bodies = new Map<string, Buffer>();
      for (let i = 0; i < 8; i++) {
        const b = randomBytes(size);
        bodies.set(`k${i}`, b);
        await tier.put(`k${i}`, meta(size), b);
        checkInvariant(tier, MAX);
      }
      // Touch k0 so it is the most recently used; then overflow the tier.
      expect((await tier.get('k0'))!.equals(bodies.get('k0')!)).toBe(true);
      for (let i = 8; i < 14; i++) {
        const b = randomBytes(size);
        bodies.set(`k${i}`, b);
        await tier.put(`k${i}`, meta(size), b);
        checkInvariant(tier, MAX);
      }
      expect(await tier.get('k1')).toBeUndefined(); // least recently used went first
      expect((await tier.get('k0'))!.equals(bodies.get('k0')!)).toBe(true);
      expect((await tier.get('k13'))!.equals(bodies.get('k13')!)).toBe(true);
      expect(tier.stats().bytes).toBeGreaterThan(MAX - size - factory.overheadBytes * 2);
    });

    it('refuses an entry larger than its limit and keeps what it holds', async () => {
      const small = await factory.make(MAX, 64 * 1024);
      await small.put('keep', meta(1000), Buffer.alloc(1000, 9));
      await small.put('huge', meta(200 * 1024), randomBytes(200 * 1024));
      expect(await small.get('huge')).toBeUndefined();
      expect((await small.get('keep'))!.equals(Buffer.alloc(1000, 9))).toBe(true);
      checkInvariant(small, MAX);
    });

    it('holds many small entries within the byte limit, not an entry count', async () => {
      for (let i = 0; i < 3000; i++) await tier.put(`s${i}`, meta(1000), Buffer.alloc(1000, i % 256));
      checkInvariant(tier, MAX);
      const stats = tier.stats();
      expect(stats.entries).toBeLessThan(3000);
      expect(stats.entries).toBeGreaterThan(MAX / (1000 + factory.overheadBytes) - 50);
    });
  });
}
