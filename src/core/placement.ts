/**
 * The one place that decides what is cached, where, and in which slices.
 *
 * - An object up to `max_object_size` is cacheable; a larger one is served uncached.
 * - An object up to `slice_size` is one entry; a larger one is aligned slices plus a metadata entry.
 * - A small object fetched from the store goes to every tier that accepts its size.
 * - The slices of a large object go to disk when there is a disk tier, and to memory only when
 *   there is none; so do a PUT's, written through as the body streams. Memory keeps whole
 *   objects, which the hit path sends as they are; a slice is read in ranges, and from disk
 *   those come out of the page cache about as fast. A fill of a disk-bound slice
 *   (`slicesOnDiskOnly`) therefore writes its bytes to the slice's entry file as they arrive and
 *   its readers read them back from there, so it holds no slice in memory. Where the disk takes
 *   no synchronous writes just then, it fills a reused buffer that comes back once the slice is
 *   on disk: on this class of VM a fresh 8 MiB buffer costs 20-60 ms of page faults, a reused
 *   one 0.3 ms.
 * - A disk hit is copied into memory only when memory has room for it, or when the object is
 *   asked for more often lately than the entry memory would evict for it (TinyLFU admission, on
 *   a frequency sketch of every read). Promoting every disk hit would, with a working set larger
 *   than memory, evict on every hit and serve almost nothing from memory, while copying each
 *   body and churning the collector; a second-hit rule would not help, since in such a workload
 *   every object is hit again. The sketch keeps the most asked-for objects in memory instead.
 */
import type { CacheLimits } from '../config/resolve.js';
import { FrequencySketch } from '../cache/frequency-sketch.js';
import type { MemoryTier } from '../cache/memory-tier.js';
import { isSliced, objectKeyOf } from '../cache/slices.js';
import type { CacheTier } from '../cache/tier.js';
import type { CachedMeta } from '../cache/types.js';

/** The sketch is sized for about this many entries per byte of memory tier (4 KiB average). */
const SKETCH_BYTES_PER_ENTRY = 4096;

export class Placement {
  readonly sliceBytes: number;
  readonly maxObjectBytes: number;
  readonly #memory: MemoryTier;
  readonly #disk: CacheTier | undefined;
  /** Made on the first read counted: a placement that never admits (no_store) holds none. */
  #sketch: FrequencySketch | undefined;

  constructor(limits: CacheLimits, memory: MemoryTier, disk: CacheTier | undefined) {
    this.sliceBytes = limits.sliceBytes;
    this.maxObjectBytes = limits.maxObjectBytes;
    this.#memory = memory;
    this.#disk = disk;
  }

  /** Count a read of object `ck` (every read, hits included: the admission rule compares counts). */
  touch(ck: string): void {
    (this.#sketch ??= new FrequencySketch(this.#memory.stats().maxBytes / SKETCH_BYTES_PER_ENTRY)).increment(ck);
  }

  /**
   * Whether an object described by `meta`, just hit on disk, is copied into memory: when it fits
   * without evicting, or when it is asked for more often than memory's next victim.
   */
  promoteOnDiskHit(ck: string, meta: CachedMeta): boolean {
    if (!this.#memory.accepts(meta.size)) return false;
    if (this.#memory.fitsWithoutEviction(ck, meta, meta.size)) return true;
    const victim = this.#memory.coldestKey();
    const sketch = this.#sketch;
    return victim === undefined || (sketch !== undefined && sketch.estimate(ck) > sketch.estimate(objectKeyOf(victim)));
  }

  /** Every tier, first to last. */
  get tiers(): CacheTier[] {
    return this.#disk ? [this.#memory, this.#disk] : [this.#memory];
  }

  /** Whether an object of `size` bytes is cached at all. */
  cacheable(size: number): boolean {
    if (size > this.maxObjectBytes) return false;
    const entry = Math.min(size, this.sliceBytes);
    return this.tiers.some((t) => t.accepts(entry));
  }

  sliced(size: number): boolean {
    return isSliced(size, this.sliceBytes);
  }

  /** Tiers for a slice (or small object) of `bodyBytes` just fetched from the store. */
  forFill(objectSize: number, bodyBytes: number): CacheTier[] {
    if (!this.cacheable(objectSize)) return [];
    return this.#bodyTiers(objectSize).filter((t) => t.accepts(bodyBytes));
  }

  /** Tiers for a slice (or small object) of `bodyBytes` written through by a PUT. */
  forPut(objectSize: number, bodyBytes: number | undefined): CacheTier[] {
    if (!this.cacheable(objectSize)) return [];
    // Without a disk tier, a PUT's slices are not cached: memory would have to hold every slice
    // of the body until the store acknowledges the whole object.
    if (this.sliced(objectSize) && !this.#disk) return [];
    return this.#bodyTiers(objectSize).filter((t) => bodyBytes === undefined || t.accepts(bodyBytes));
  }

  /**
   * Whether the slices of an object of `objectSize` go to disk only: their fills then write to
   * the entry file (or, failing that, take a reused buffer, since no tier keeps the fill's buffer
   * itself and it comes back once the slice is written).
   */
  slicesOnDiskOnly(objectSize: number): boolean {
    return this.sliced(objectSize) && this.#disk !== undefined && this.cacheable(objectSize);
  }

  /** The tiers that hold bodies of an object of `objectSize`. */
  #bodyTiers(objectSize: number): CacheTier[] {
    return this.sliced(objectSize) && this.#disk ? [this.#disk] : this.tiers;
  }

  /** Tiers that keep a sliced object's metadata entry. */
  forMeta(objectSize: number): CacheTier[] {
    return this.cacheable(objectSize) ? this.tiers.filter((t) => t.accepts(0)) : [];
  }
}
