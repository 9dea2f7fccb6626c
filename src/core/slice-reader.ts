/**
 * Reading bytes `start..end` of an object slice after slice: each slice from the tiers when they
 * hold it, from its fill in flight when one runs (joining it), or by starting its fill; the next
 * slice's fill starts while the current one streams (read-ahead). When the fill budget has no
 * room, the bytes come straight from the store, uncached.
 *
 * Bytes from a fill or from memory are copied out in chunks, so a slow client holds at most a
 * chunk and never pins a slice buffer that its tier has evicted. A disk stream that hits a bad
 * block (the tier drops the entry) is replaced by a fill from where it stopped, so no corrupt
 * byte is sent and the response goes on. A change of the object in the store cuts the response:
 * it is never finished with bytes of another version.
 *
 * The generator owns whatever it opened (a disk stream, an uncached store body) and releases it
 * in `finally`, which runs when the response ends, fails or is destroyed.
 */
import type { Readable } from 'node:stream';
import { sliceIndex, sliceSpan } from '../cache/slices.js';
import { CorruptEntryError, type BodySpan, type TierHit } from '../cache/tier.js';
import type { CachedMeta } from '../cache/types.js';
import { StoreError } from '../errors.js';
import type { BudgetMode, SliceFill } from './fills.js';

/** Largest chunk copied out of a buffer at once. */
export const COPY_CHUNK_BYTES = 256 * 1024;

/**
 * An answer up to this size is taken out of a fill in one piece, once all of it has arrived,
 * rather than as bytes arrive: it then goes out as one buffer, like a hit, with no stream per
 * reader (a herd of 100 readers of one small object woke 100 streams per store chunk). Waiting
 * for the rest of a small body costs its transfer time only. Larger answers stream from the
 * first byte.
 */
export const WHOLE_ANSWER_BYTES = COPY_CHUNK_BYTES;

/** What the reader needs from the object service for one object. */
export interface SliceSource {
  meta: CachedMeta;
  sliceBytes: number;
  /** Whether slices of this object are cached (false: everything past a fill in flight comes uncached). */
  cacheable: boolean;
  fill(i: number): SliceFill | undefined;
  /**
   * Slice `i`'s fill, started for a reader at byte `from` of the slice when none runs; `cached`
   * when it landed in a tier meanwhile; `undefined` without budget room.
   */
  join(i: number, mode: BudgetMode, from?: number): Promise<SliceFill | 'cached' | undefined>;
  /** Slice `i`'s bytes from a tier (checked against the object's ETag). */
  lookup(i: number, span: BodySpan): Promise<TierHit | undefined>;
  inTiers(i: number): boolean;
  /** Object bytes `start..end` straight from the store (conditional on the ETag), uncached. */
  direct(start: number, end: number): Promise<Readable>;
  /** The object changed in the store: drop what is cached of this version. */
  changed(): void;
}

/** The bytes `start..end` (inclusive) of the object, as a stream of chunks. */
export async function* readSlices(src: SliceSource, start: number, end: number, first?: SliceFill): AsyncGenerator<Buffer> {
  const S = src.sliceBytes;
  const size = src.meta.size;
  const lastSlice = sliceIndex(Math.max(0, end), S);
  const whole = end - start + 1 <= WHOLE_ANSWER_BYTES;
  let pos = start;
  let aheadFor = -1;
  let held: SliceFill | undefined = first;
  // The parameter would pin the first fill's slice buffer for the whole response (the generator
  // keeps its frame): only `held` may hold it, and it lets go when the reader moves on.
  first = undefined;
  let open: Readable | undefined;
  try {
    while (pos <= end) {
      const i = sliceIndex(pos, S);
      const span = sliceSpan(i, size, S);
      const to = Math.min(end, span.end);
      if (held && held.index !== i) held = undefined;
      if (aheadFor !== i) {
        aheadFor = i;
        if (src.cacheable && i + 1 <= lastSlice && !src.fill(i + 1) && !src.inTiers(i + 1)) void src.join(i + 1, 'try');
      }

      // 1. A fill this reader holds (the one it started or joined), or one in flight.
      held ??= src.fill(i);
      if (held && !held.over) {
        const chunk = await copyFromFill(src, held, pos - span.start, to - span.start, whole);
        if (chunk) {
          pos += chunk.length;
          yield chunk;
        } else {
          // The fill ended without the bytes (it failed before its first byte): look again.
          await held.settled;
          held = undefined;
        }
        continue;
      }

      // 2. The tiers.
      if (src.cacheable || src.inTiers(i)) {
        let hit = await src.lookup(i, { start: pos - span.start, end: to - span.start });
        if (hit?.buffer) {
          held = undefined;
          // A memory hit is a view of the whole entry (at most a chunk of it is asked for): copy
          // it and let go of the view before a slow consumer takes the copy, or every suspended
          // reader would pin a slice its tier may already have evicted.
          const copies: Buffer[] = [];
          for (let at = 0; at < hit.buffer.length; at += COPY_CHUNK_BYTES) copies.push(Buffer.from(hit.buffer.subarray(at, at + COPY_CHUNK_BYTES)));
          hit = undefined;
          for (const chunk of copies) {
            pos += chunk.length;
            yield chunk;
          }
          continue;
        }
        if (hit?.stream) {
          held = undefined;
          open = hit.stream;
          try {
            for await (const chunk of hit.stream as AsyncIterable<Buffer>) {
              pos += chunk.length;
              yield chunk;
            }
          } catch (err) {
            // A bad block: the tier dropped the slice; fetch it again from where we are.
            if (!(err instanceof CorruptEntryError)) throw err;
          } finally {
            open.destroy();
            open = undefined;
          }
          continue;
        }
      }

      // A detached fill (a write or a change detached it) no tier holds: its readers finish from
      // it, so they never mix versions. A fill that committed has released its bytes
      // (fill-buffer.ts): a slice evicted before its reader finished is fetched again, within
      // the fill budget, rather than pinned per reader outside any bound.
      if (held) {
        const chunk = await copyFromFill(src, held, pos - span.start, to - span.start, whole);
        if (chunk) {
          pos += chunk.length;
          yield chunk;
        } else held = undefined;
        continue;
      }

      // 3. Start (or join) the slice's fill; without budget room, the store directly.
      if (src.cacheable) {
        const started = await src.join(i, 'wait', pos - span.start);
        if (started === 'cached') continue;
        if (started) {
          held = started;
          continue;
        }
      }
      const directEnd = src.cacheable ? to : end;
      open = await src.direct(pos, directEnd);
      try {
        for await (const chunk of open as AsyncIterable<Buffer>) {
          pos += chunk.length;
          yield chunk;
        }
      } finally {
        open.destroy();
        open = undefined;
      }
      if (pos <= directEnd) throw new Error(`store body ended at byte ${pos} of ${directEnd + 1}`);
    }
  } catch (err) {
    if (err instanceof StoreError && err.kind === 'changed') src.changed();
    throw err;
  } finally {
    open?.destroy();
  }
}

/**
 * Up to COPY_CHUNK_BYTES of bytes `from..to` (relative to the slice) out of a fill, waiting for
 * the first of them to arrive (for all of them, with `whole`); `undefined` when the fill is over
 * without holding them (it failed before its first byte and was retried, or another version was
 * seen).
 */
async function copyFromFill(src: SliceSource, fill: SliceFill, from: number, to: number, whole: boolean): Promise<Buffer | undefined> {
  const ready = await fill.ready;
  if (ready.kind !== 'data') {
    if (ready.kind === 'absent') throw new StoreError('store', 'get', new Error('object vanished from the store during a read'), 'changed');
    return undefined;
  }
  if (ready.meta.etag !== src.meta.etag) {
    throw new StoreError('store', 'get', new Error('object changed in the store during a read'), 'changed');
  }
  const fb = ready.buffer;
  const spanStart = ready.span.start - fill.index * src.sliceBytes;
  const rel = from - spanStart;
  await (whole ? fb.waitForRange(rel, rel + (to - from)) : fb.waitFor(rel));
  if (fb.error) throw fb.error;
  const available = fb.released ? 0 : fb.available(rel);
  if (available === 0) return undefined;
  const n = Math.min(to - from + 1, available, COPY_CHUNK_BYTES);
  // All of a finished buffer of the fill's own (a small object's): it never changes again and a
  // view pins no more than a copy would, so readers share it, as hits share a memory entry (a
  // herd of 100 readers of a 64 KiB object spent 26 ms copying it, in fresh pages).
  if (whole && fb.done && fb.shareable && rel === 0 && n === fb.size) return fb.view(0, n);
  return fb.copy(rel, n);
}
