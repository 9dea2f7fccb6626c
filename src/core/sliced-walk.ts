/**
 * Walking a large collection without holding the event loop: work is done synchronously in
 * slices bounded both by items and by wall time, with a yield to the event loop (setImmediate,
 * so timers and sockets run) between two slices.
 *
 * Why both bounds: a fixed item count (the purge used 1,000 keys) costs 3 ms a slice on an idle
 * machine and 30 ms or more on a loaded one, and a single item may be slow (a hash table of
 * 100,000 keys rehashing as it shrinks). A time budget adapts to the machine; the item bound
 * keeps the clock reads cheap and gives a structure tests can check.
 */

export interface WalkBudget {
  /** Most items between two yields. */
  maxItems: number;
  /** Most wall time between two yields, checked every `CLOCK_EVERY_ITEMS` items. */
  maxMs: number;
  /** The clock (tests may pass their own). */
  now?: () => number;
}

/** The clock is read once per this many items (a read costs about as much as a cheap item). */
export const CLOCK_EVERY_ITEMS = 32;

/** What a walk did. */
export interface WalkResult {
  items: number;
  /** How many times the walk gave the event loop back. */
  yields: number;
  /** Most items visited between two yields. */
  maxItemsPerSlice: number;
  /** Longest slice, in ms of wall time (reported, never asserted). */
  maxSliceMs: number;
}

/**
 * Call `visit` for every item of `items` (a live iterator is fine: it is advanced only inside
 * slices), yielding between slices as `budget` says.
 */
export async function walkInSlices<T>(items: Iterable<T>, visit: (item: T) => void, budget: WalkBudget): Promise<WalkResult> {
  const now = budget.now ?? (() => performance.now());
  const result: WalkResult = { items: 0, yields: 0, maxItemsPerSlice: 0, maxSliceMs: 0 };
  let inSlice = 0;
  let sliceStart = now();
  for (const item of items) {
    visit(item);
    result.items++;
    inSlice++;
    const full = inSlice >= budget.maxItems || (inSlice % CLOCK_EVERY_ITEMS === 0 && now() - sliceStart >= budget.maxMs);
    if (!full) continue;
    result.maxItemsPerSlice = Math.max(result.maxItemsPerSlice, inSlice);
    result.maxSliceMs = Math.max(result.maxSliceMs, now() - sliceStart);
    inSlice = 0;
    result.yields++;
    await new Promise<void>((resolve) => setImmediate(resolve));
    sliceStart = now();
  }
  result.maxItemsPerSlice = Math.max(result.maxItemsPerSlice, inSlice);
  result.maxSliceMs = Math.max(result.maxSliceMs, now() - sliceStart);
  return result;
}
