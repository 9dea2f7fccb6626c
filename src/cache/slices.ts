/**
 * Slice arithmetic (after nginx's slice module and Cachey's pages). An object larger than the
 * slice size S is cached as aligned slices: slice i holds bytes [i·S, (i+1)·S). An object up to S
 * is one entry under its own key; a sliced object keeps its metadata under its own key and each
 * slice under a key of its own.
 */
import type { ByteRange } from '../stores/types.js';

/** Whether an object of `size` bytes is cached in slices. */
export function isSliced(size: number, sliceBytes: number): boolean {
  return size > sliceBytes;
}

/** How many slices (entries with a body) an object of `size` bytes has. */
export function sliceCount(size: number, sliceBytes: number): number {
  return size === 0 ? 1 : Math.ceil(size / sliceBytes);
}

/** The index of the slice holding byte `offset`. */
export function sliceIndex(offset: number, sliceBytes: number): number {
  return Math.floor(offset / sliceBytes);
}

/** The bytes slice `i` holds in an object of `size` bytes (empty, end < start, when none). */
export function sliceSpan(i: number, size: number, sliceBytes: number): ByteRange {
  return { start: i * sliceBytes, end: Math.min((i + 1) * sliceBytes, size) - 1 };
}

/** The object's cache key, from the key of the object or of one of its slices. */
export function objectKeyOf(tierKey: string): string {
  const i = tierKey.indexOf('\u0001');
  return i === -1 ? tierKey : tierKey.slice(0, i);
}

/** The cache key of slice `i`'s body: the object's own key when it is not sliced. */
export function sliceKey(objectKey: string, i: number, size: number, sliceBytes: number): string {
  return isSliced(size, sliceBytes) ? `${objectKey}\u0001${i}` : objectKey;
}
