/**
 * core/sliced-walk.ts: a long walk gives the event loop back between slices bounded by items and
 * by time. Checked on structure (how many items between yields, that others run meanwhile), with
 * a clock the test drives, never on a timing.
 */
import { describe, expect, it } from 'vitest';
import { CLOCK_EVERY_ITEMS, walkInSlices } from '../../src/core/sliced-walk.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('walkInSlices', () => {
  it('visits every item and yields after at most maxItems', async () => {
    const seen: number[] = [];
    const r = await walkInSlices(range(10_000), (i) => seen.push(i), { maxItems: 1_000, maxMs: 1e9, now: () => 0 });
    expect(seen).toEqual(range(10_000));
    expect(r.items).toBe(10_000);
    expect(r.maxItemsPerSlice).toBe(1_000);
    expect(r.yields).toBe(10);
  });

  it('ends a slice once its time budget is spent, whatever the item count', async () => {
    let clock = 0;
    // Each item "costs" 0.1 ms on this clock: a 2 ms budget is spent after 20 items, noticed at the next clock read.
    const r = await walkInSlices(range(1_000), () => (clock += 0.1), { maxItems: 1_000, maxMs: 2, now: () => clock });
    expect(r.maxItemsPerSlice).toBe(CLOCK_EVERY_ITEMS);
    expect(r.yields).toBe(Math.floor(1_000 / CLOCK_EVERY_ITEMS));
  });

  it('lets timers and I/O callbacks run between slices', async () => {
    const order: string[] = [];
    setImmediate(() => order.push('other'));
    await walkInSlices(range(100), (i) => order.push(`item ${i}`), { maxItems: 10, maxMs: 1e9, now: () => 0 });
    // The other callback ran after the first slice, not after the whole walk.
    expect(order.indexOf('other')).toBe(10);
  });

  it('walks a live Set that shrinks under it, visiting each remaining key once', async () => {
    const keys = new Set(range(5_000).map(String));
    const visited: string[] = [];
    await walkInSlices(keys.values(), (k) => {
      visited.push(k);
      keys.delete(k);
    }, { maxItems: 100, maxMs: 1e9, now: () => 0 });
    expect(visited.length).toBe(5_000);
    expect(keys.size).toBe(0);
  });
});
