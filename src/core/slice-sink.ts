/**
 * Write-through of a PUT as slices: the body is cut into the same aligned slices a read would
 * cache, each streamed into its tiers' writers as it passes (`placement.forPut`). Nothing is
 * committed until `finish(meta)`, called once the store acknowledged, with the validators the
 * store gave; `abort()` (or any failure) leaves nothing.
 *
 * With a known length the slicing is known at once. Without one, up to one slice is held until
 * the body proves larger than a slice (then sliced) or ends (then one entry); that slice is
 * charged to the fill budget, and without room the body is simply not written through.
 */
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { sliceKey, sliceSpan } from '../cache/slices.js';
import type { CachedMeta } from '../cache/types.js';
import type { FillBudget } from './fill-budget.js';
import type { Placement } from './placement.js';

export interface SliceSinkOptions {
  ck: string;
  placement: Placement;
  budget: FillBudget;
  /** The announced body length, when known. */
  length: number | undefined;
}

export class SliceSink {
  readonly #o: SliceSinkOptions;
  /** Filled in by `finish`; every writer holds this object and reads it when it commits. */
  readonly #meta: CachedMeta = { size: 0, etag: '""', lastModifiedMs: undefined, contentType: '', cachedAtMs: 0 };
  #off = false;
  #bytes = 0;
  /** Writers of the current slice, and of every finished slice awaiting the commit. */
  #current: Writable[] = [];
  #currentIndex = -1;
  readonly #finished: Writable[] = [];
  /** Without a length: the first slice's chunks until slicing is decided. */
  #pending: Buffer[] | undefined;
  #reserved = 0;

  constructor(options: SliceSinkOptions) {
    this.#o = options;
    const { length, placement } = options;
    if (length !== undefined && !placement.cacheable(length)) this.#off = true;
    if (length === undefined) {
      if (options.budget.tryReserve(placement.sliceBytes)) {
        this.#reserved = placement.sliceBytes;
        this.#pending = [];
      } else this.#off = true;
    }
  }

  /** Take the next chunk of the body; resolves when the writers can take more. */
  async write(chunk: Buffer): Promise<void> {
    if (this.#off) return;
    const S = this.#o.placement.sliceBytes;
    if (this.#pending) {
      this.#pending.push(chunk);
      this.#bytes += chunk.length;
      if (this.#bytes <= S) return;
      // Larger than a slice: sliced, of a size not known yet.
      const held = this.#pending;
      this.#pending = undefined;
      this.#releaseReserve();
      this.#bytes = 0;
      for (const c of held) await this.#feed(c, undefined);
      return;
    }
    await this.#feed(chunk, this.#o.length);
  }

  /** Commit every slice under `meta` (the stored object's); resolves with whether any tier kept it. */
  async finish(meta: CachedMeta): Promise<boolean> {
    if (this.#off) return false;
    if (this.#pending) {
      // The whole body fit in one slice: one entry under the object's own key.
      const held = this.#pending;
      this.#pending = undefined;
      const size = held.reduce((a, c) => a + c.length, 0);
      this.#releaseReserve();
      if (!this.#o.placement.cacheable(size)) return false;
      this.#bytes = 0;
      this.#open(0, size, size);
      for (const c of held) await this.#writeAll(c);
    }
    Object.assign(this.#meta, meta);
    if (meta.size !== this.#bytes || this.#off) {
      this.abort();
      return false;
    }
    this.#finished.push(...this.#current);
    this.#current = [];
    const writers = this.#finished.splice(0);
    if (this.#o.placement.sliced(meta.size)) {
      for (const tier of this.#o.placement.forMeta(meta.size)) {
        const w = tier.openWrite(this.#o.ck, this.#meta, 0);
        if (w) writers.push(w);
      }
    }
    const results = await Promise.all(
      writers.map(async (w) => {
        if (w.destroyed) return false;
        w.end();
        try {
          await finished(w);
          return true;
        } catch {
          return false;
        }
      }),
    );
    return results.length > 0 && results.every(Boolean);
  }

  /** Drop everything written so far. */
  abort(): void {
    this.#off = true;
    this.#pending = undefined;
    this.#releaseReserve();
    for (const w of [...this.#current, ...this.#finished.splice(0)]) w.destroy();
    this.#current = [];
  }

  async #feed(chunk: Buffer, length: number | undefined): Promise<void> {
    const S = this.#o.placement.sliceBytes;
    const objectSize = length ?? Number.MAX_SAFE_INTEGER;
    if (length === undefined && this.#bytes + chunk.length > this.#o.placement.maxObjectBytes) {
      this.abort();
      return;
    }
    let at = 0;
    while (at < chunk.length && !this.#off) {
      const i = Math.floor(this.#bytes / S);
      if (i !== this.#currentIndex) {
        this.#finished.push(...this.#current);
        const span = sliceSpan(i, objectSize, S);
        this.#open(i, length === undefined ? undefined : span.end - span.start + 1, length === undefined ? S + 1 : objectSize);
      }
      const room = (i + 1) * S - this.#bytes;
      const piece = chunk.subarray(at, at + Math.min(room, chunk.length - at));
      await this.#writeAll(piece);
      at += piece.length;
    }
  }

  /** Open slice `i`'s writers: `bodyBytes` when known; `sizeForKey` decides sliced or not. */
  #open(i: number, bodyBytes: number | undefined, sizeForKey: number): void {
    const p = this.#o.placement;
    const key = sliceKey(this.#o.ck, i, sizeForKey, p.sliceBytes);
    this.#currentIndex = i;
    this.#current = p
      .forPut(sizeForKey, bodyBytes)
      .map((t) => t.openWrite(key, this.#meta, bodyBytes))
      .filter((w): w is Writable => w !== undefined);
    for (const w of this.#current) w.on('error', () => {}); // a tier that fails just keeps nothing
  }

  async #writeAll(piece: Buffer): Promise<void> {
    this.#bytes += piece.length;
    const waits: Promise<unknown>[] = [];
    for (const w of this.#current) {
      if (w.destroyed) continue;
      if (!w.write(piece)) waits.push(Promise.race([once(w, 'drain'), once(w, 'close')]).catch(() => {}));
    }
    await Promise.all(waits);
  }

  #releaseReserve(): void {
    if (this.#reserved > 0) this.#o.budget.release(this.#reserved);
    this.#reserved = 0;
  }
}
