import { randomBytes } from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import { BufferPool } from '../../src/cache/buffer-pool.js';
import type { CachedMeta } from '../../src/cache/types.js';
import { FillBuffer } from '../../src/core/fill-buffer.js';
import type { SliceFill } from '../../src/core/fills.js';
import { readSlices, WHOLE_ANSWER_BYTES, type SliceSource } from '../../src/core/slice-reader.js';

const S = 8 * 1024 * 1024;

function metaOf(size: number): CachedMeta {
  return { size, etag: '"v1"', lastModifiedMs: undefined, contentType: 'application/octet-stream', cachedAtMs: Date.now() };
}

/** One object of one slice, whose only source of bytes is `fb` (a fill in flight or finished). */
function sourceWith(meta: CachedMeta, fb: FillBuffer): SliceSource {
  const fill: SliceFill = {
    index: 0,
    ready: Promise.resolve({ kind: 'data', meta, span: { start: 0, end: meta.size - 1 }, buffer: fb }),
    settled: new Promise(() => {}),
    complete: false,
    over: false,
    detached: false,
  };
  return {
    meta,
    sliceBytes: S,
    cacheable: true,
    fill: () => fill,
    join: () => Promise.resolve(fill),
    lookup: () => Promise.resolve(undefined),
    inTiers: () => false,
    direct: () => Promise.reject(new Error('no direct reads in this test')),
    changed: () => {},
  };
}

async function firstChunk(src: SliceSource, start: number, end: number): Promise<Buffer> {
  const it = readSlices(src, start, end);
  const r = await it.next();
  void it.return(undefined);
  if (r.done) throw new Error('no bytes');
  return r.value;
}

describe('readSlices from a fill', () => {
  it('answers a small object whole once all of it arrived, and every reader shares the finished buffer', async () => {
    const data = randomBytes(64 * 1024);
    const meta = metaOf(data.length);
    const fb = new FillBuffer(data.length);
    const src = sourceWith(meta, fb);
    const readers = [firstChunk(src, 0, data.length - 1), firstChunk(src, 0, data.length - 1)];
    fb.append(data.subarray(0, 1000));
    await tick();
    fb.append(data.subarray(1000));
    fb.finish();
    const [a, b] = await Promise.all(readers);
    // Whole, not the first 1000 bytes that arrived on their own.
    expect(a!.equals(data)).toBe(true);
    expect(b!.equals(data)).toBe(true);
    expect(a!.buffer).toBe(b!.buffer);
  });

  it('copies out of a lent buffer, so the bytes survive its reuse', async () => {
    const data = randomBytes(64 * 1024);
    const meta = metaOf(data.length);
    const pool = new BufferPool(S, 2);
    const loan = pool.lend(data.length)!;
    const fb = new FillBuffer(data.length, loan);
    const src = sourceWith(meta, fb);
    const reader = firstChunk(src, 0, data.length - 1);
    fb.append(data);
    fb.finish();
    const got = await reader;
    expect(got.buffer).not.toBe(loan.buffer.buffer);
    fb.release();
    pool.lend(S)!.buffer.fill(0xee);
    expect(got.equals(data)).toBe(true);
  });

  it('streams a larger answer from its first bytes, before the fill is done', async () => {
    const size = WHOLE_ANSWER_BYTES * 4;
    const data = randomBytes(size);
    const fb = new FillBuffer(size);
    const src = sourceWith(metaOf(size), fb);
    const reader = firstChunk(src, 0, size - 1);
    fb.append(data.subarray(0, 1000));
    const got = await reader;
    expect(got.equals(data.subarray(0, 1000))).toBe(true);
    expect(fb.done).toBe(false);
  });
});
