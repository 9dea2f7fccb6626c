import { describe, expect, it, vi } from 'vitest';
import { BufferPool } from '../../src/cache/buffer-pool.js';

describe('BufferPool', () => {
  it('lends a buffer again only after it was released, once, however often release is called', () => {
    const pool = new BufferPool(1024, 4);
    const a = pool.lend(1000)!;
    const b = pool.lend(1000)!;
    expect(a.buffer).not.toBe(b.buffer);
    a.release();
    a.release();
    expect(pool.idle).toBe(1);
    const c = pool.lend(10)!;
    const d = pool.lend(10)!;
    expect(c.buffer).toBe(a.buffer);
    expect(d.buffer).not.toBe(a.buffer); // a second release did not put it in twice
    expect(pool.lend(1025)).toBeUndefined();
    for (const l of [b, c, d]) l.release();
  });

  it('keeps at most maxIdle, and lets go of buffers idle through a whole interval', () => {
    vi.useFakeTimers();
    try {
      const pool = new BufferPool(16, 3, 1000);
      const loans = Array.from({ length: 5 }, () => pool.lend(16)!);
      for (const l of loans) l.release();
      expect(pool.idle).toBe(3);
      vi.advanceTimersByTime(1000); // first interval: the low-water mark starts at 0
      pool.lend(16)!.release(); // one in use during the next interval: low water 2
      vi.advanceTimersByTime(1000);
      expect(pool.idle).toBe(1);
      vi.advanceTimersByTime(1000);
      expect(pool.idle).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
