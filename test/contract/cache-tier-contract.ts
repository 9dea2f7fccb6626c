/**
 * One contract for every cache tier (after undici's cacheStoreTests): what goes in comes out
 * byte-identical, entries are replaced and deleted, eviction is least-recently-used and by bytes,
 * and after every step the invariant holds: the bytes accounted equal the sum of the entry sizes
 * and stay within the limit.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { finished } from 'node:stream/promises';
import { commitBody, type BodySpan, type CacheTier, type TierHit } from '../../src/cache/tier.js';
import type { CachedMeta, TierStats } from '../../src/cache/types.js';

/** A tier under test, and how to wait for its background work (disk deletes). */
export interface TierHandle {
  tier: CacheTier;
  settled(): Promise<void>;
}

export interface TierFactory {
  /** A fresh tier bounded by `maxBytes`, entries up to `maxEntryBytes`. */
  make(maxBytes: number, maxEntryBytes?: number): Promise<TierHandle>;
  cleanup(): Promise<void>;
  /** Bytes an entry costs beyond its body (metadata, headers), at most. */
  overheadBytes: number;
  /** Whether the tier keeps bodies in files and so must offer `openFile`. */
  files?: boolean;
}

/** The contract's view of a tier: every call goes through the CacheTier interface. */
interface TierUnderTest {
  tier: CacheTier;
  put(key: string, meta: CachedMeta, body: Buffer): Promise<void>;
  get(key: string, range?: BodySpan): Promise<Buffer | undefined>;
  delete(key: string): Promise<void>;
  stats(): TierStats;
  sizes(): Iterable<number>;
}

async function readHit(hit: TierHit | undefined): Promise<Buffer | undefined> {
  if (!hit) return undefined;
  if (hit.buffer) return Buffer.from(hit.buffer);
  const chunks: Buffer[] = [];
  for await (const c of hit.stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function view(h: TierHandle): TierUnderTest {
  const { tier } = h;
  return {
    tier,
    // The core's way to hand a tier a complete body (`put` where the tier has it, else a writer).
    async put(key, m, body) {
      await commitBody(tier, key, m, body);
      await h.settled();
    },
    get: async (key, range) => readHit(await tier.lookup(key, range)),
    async delete(key) {
      tier.delete(key);
      await h.settled();
    },
    stats: () => tier.stats(),
    sizes: () => tier.sizes(),
  };
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
      tier = view(await factory.make(MAX));
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

    it('never answers from a version it replaced or deleted, however often that version was read before', async () => {
      // A tier may keep read state (the disk tier keeps descriptors open for hits): reads first.
      await tier.put('r', meta(10), Buffer.alloc(10, 1));
      for (let i = 0; i < 3; i++) expect((await tier.get('r'))!.equals(Buffer.alloc(10, 1))).toBe(true);
      await tier.put('r', meta(30), Buffer.alloc(30, 2));
      expect((await tier.get('r'))!.equals(Buffer.alloc(30, 2))).toBe(true);
      expect((await tier.get('r', { start: 25, end: 29 }))!.equals(Buffer.alloc(5, 2))).toBe(true);
      // Reads racing the replacement see one version or the other, whole, never a mix.
      const racing = Array.from({ length: 20 }, () => tier.get('r'));
      await tier.put('r', meta(30), Buffer.alloc(30, 3));
      for (const got of await Promise.all(racing)) expect([2, 3]).toContain(got![0]);
      for (const got of await Promise.all(racing)) expect(got!.equals(Buffer.alloc(30, got![0]))).toBe(true);
      expect((await tier.get('r'))!.equals(Buffer.alloc(30, 3))).toBe(true);
      await tier.delete('r');
      expect(await tier.get('r')).toBeUndefined();
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
      const small = view(await factory.make(MAX, 64 * 1024));
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

    it('answers a range of an entry with exactly those bytes', async () => {
      const body = randomBytes(300_000);
      await tier.put('r', meta(body.length), body);
      for (const [start, end] of [[0, 0], [1, 65_536], [65_535, 65_537], [131_072, 299_999], [299_999, 299_999]] as const) {
        expect((await tier.get('r', { start, end }))!.equals(body.subarray(start, end + 1))).toBe(true);
      }
    });

    it('keeps metadata apart from the body: peek gives it without a read, and an empty-bodied entry holds only metadata', async () => {
      const m = { ...meta(50 * 2 ** 20), etag: '"sliced"' };
      await tier.put('m', m, Buffer.alloc(0));
      expect(await tier.tier.peek('m')).toEqual(m);
      expect(tier.tier.has('m')).toBe(true);
      expect(await tier.tier.peek('nope')).toBeUndefined();
    });

    it('holds a complete body committed at once exactly as one written through a writer', async () => {
      const body = randomBytes(5_000);
      const m = meta(body.length);
      await tier.put('at-once', m, body);
      const w = tier.tier.openWrite('written', m, body.length)!;
      w.end(body);
      await finished(w);
      expect((await tier.get('at-once'))!.equals(body)).toBe(true);
      expect((await tier.get('written'))!.equals(body)).toBe(true);
      expect(await tier.get('at-once', { start: 100, end: 199 })).toEqual(body.subarray(100, 200));
      expect(await tier.tier.peek('at-once')).toEqual(await tier.tier.peek('written'));
      // Both keys have one length: an entry's accounted size counts its key.
      const sizes = [...tier.sizes()];
      expect(sizes).toHaveLength(2);
      expect(sizes[0]).toBe(sizes[1]);
      checkInvariant(tier, MAX);
    });

    it('commits a write only when it finishes, reading the metadata at that moment', async () => {
      const m = meta(1000);
      const w = tier.tier.openWrite('late', m, 1000)!;
      w.write(Buffer.alloc(600, 1));
      expect(tier.tier.has('late')).toBe(false);
      m.etag = '"learned-at-the-end"';
      w.end(Buffer.alloc(400, 2));
      await finished(w);
      expect((await tier.tier.peek('late'))?.etag).toBe('"learned-at-the-end"');
      expect((await tier.get('late'))!.equals(Buffer.concat([Buffer.alloc(600, 1), Buffer.alloc(400, 2)]))).toBe(true);
    });

    it('leaves nothing when a writer is destroyed, or ends short of its announced length', async () => {
      await tier.put('keep', meta(10), Buffer.alloc(10, 7));
      const w = tier.tier.openWrite('keep', meta(1000), 1000)!;
      w.write(Buffer.alloc(500));
      w.destroy(new Error('upstream failed'));
      await finished(w).catch(() => {});
      const short = tier.tier.openWrite('short', meta(1000), 1000)!;
      short.on('error', () => {});
      short.end(Buffer.alloc(999));
      await finished(short).catch(() => {});
      const long = tier.tier.openWrite('long', meta(10), 10)!;
      long.on('error', () => {});
      long.end(Buffer.alloc(11));
      await finished(long).catch(() => {});
      expect((await tier.get('keep'))!.equals(Buffer.alloc(10, 7))).toBe(true);
      expect(await tier.get('short')).toBeUndefined();
      expect(await tier.get('long')).toBeUndefined();
      expect(tier.stats().entries).toBe(1);
      checkInvariant(tier, MAX);
    });

    // Only for a tier that keeps bodies in files (openFile).
    if (factory.files === true) {
    it('takes an entry file in any order, reads it back at once, and makes the entry only on commit', async () => {
      const body = randomBytes(100_000);
      const f = tier.tier.openFile!('filled', body.length)!;
      expect(f).toBeDefined();
      // A seek's bytes first, then the part before them, as a seek-first fill writes them.
      f.write(75_000, body.subarray(75_000));
      expect(f.read(75_000, 100).equals(body.subarray(75_000, 75_100))).toBe(true);
      f.write(0, body.subarray(0, 75_000));
      expect(f.read(0, body.length).equals(body)).toBe(true);
      expect(tier.tier.has('filled')).toBe(false);
      expect(await f.commit(meta(body.length))).toBe(true);
      // Readers still holding it read on until it is released.
      expect(f.read(99_000, 1000).equals(body.subarray(99_000))).toBe(true);
      f.release();
      expect(() => f.read(0, 1)).toThrow();
      expect((await tier.get('filled'))!.equals(body)).toBe(true);
      expect((await tier.get('filled', { start: 70_000, end: 90_000 }))!.equals(body.subarray(70_000, 90_001))).toBe(true);
      checkInvariant(tier, MAX);
    });

    it('leaves nothing when an entry file is released before its commit, and refuses writes outside its body', async () => {
      await tier.put('kept', meta(10), Buffer.alloc(10, 7));
      const f = tier.tier.openFile!('kept', 1000)!;
      f.write(0, Buffer.alloc(500, 1));
      expect(() => f.write(900, Buffer.alloc(101))).toThrow(RangeError);
      f.release();
      expect(await f.commit(meta(1000))).toBe(false);
      const late = tier.tier.openFile!('late', 1000)!;
      late.write(0, Buffer.alloc(1000, 2));
      const committing = late.commit(meta(1000));
      late.release(); // before the commit placed it
      expect(await committing).toBe(false);
      expect((await tier.get('kept'))!.equals(Buffer.alloc(10, 7))).toBe(true);
      expect(await tier.get('late')).toBeUndefined();
      expect(tier.stats().entries).toBe(1);
      expect(tier.tier.openFile!('huge', 2 * MAX)).toBeUndefined();
      checkInvariant(tier, MAX);
    });

    it('bounds the entry files in flight together, and takes one again once another is released', async () => {
      const open = [];
      for (let n = 0; n < 1000; n++) {
        const f = tier.tier.openFile!(`inflight-${n}`, 10_000);
        if (!f) break;
        open.push(f);
      }
      expect(open.length).toBeGreaterThan(0);
      expect(open.length).toBeLessThan(1000);
      expect(tier.tier.openFile!('one-more', 10_000)).toBeUndefined();
      open.pop()!.release();
      const again = tier.tier.openFile!('one-more', 10_000);
      expect(again).toBeDefined();
      again!.release();
      for (const f of open) f.release();
    });
    }
  });
}
