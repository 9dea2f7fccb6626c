import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { BufferPool } from '../../src/cache/buffer-pool.js';
import { createDiskTier, type DiskTier } from '../../src/cache/disk-tier.js';
import type { EntryFile } from '../../src/cache/tier.js';
import { FillBuffer } from '../../src/core/fill-buffer.js';

async function collect(reader: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of reader) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Split `data` into chunks of uneven sizes, as a store would send them. */
function chunksOf(data: Buffer, sizes: readonly number[] = [1, 7, 100, 4096, 65_536, 13]): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const n = sizes[i++ % sizes.length]!;
    out.push(data.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

/** A promise for the outcome of `p`, so a rejection is never left unhandled while the test runs on. */
function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

describe('FillBuffer', () => {
  it('gives readers created before, during and after the fill byte-identical data', async () => {
    const data = randomBytes(300_000);
    const fill = new FillBuffer(data.length);
    const before = [collect(fill.createReader()), collect(fill.createReader())];
    const during: Array<Promise<Buffer>> = [];

    const chunks = chunksOf(data);
    for (const [i, chunk] of chunks.entries()) {
      fill.append(chunk);
      if (i === 3 || i === Math.floor(chunks.length / 2)) during.push(collect(fill.createReader()));
      await tick();
    }
    const finished = fill.finish();
    const after = collect(fill.createReader());

    expect(finished.equals(data)).toBe(true);
    expect(fill.done).toBe(true);
    expect(fill.filled).toBe(data.length);
    expect(during).toHaveLength(2);
    for (const got of await Promise.all([...before, ...during, after])) {
      expect(got.length).toBe(data.length);
      expect(got.equals(data)).toBe(true);
    }
  });

  it('gives a reader created mid-fill the bytes from 0, not from where the fill is', async () => {
    const data = randomBytes(10_000);
    const fill = new FillBuffer(data.length);
    fill.append(data.subarray(0, 6000));
    const reader = collect(fill.createReader());
    await tick();
    fill.append(data.subarray(6000));
    fill.finish();
    expect((await reader).equals(data)).toBe(true);
  });

  it('serves exactly the requested inclusive range', async () => {
    const data = randomBytes(5000);
    const fill = new FillBuffer(data.length);
    const mid = collect(fill.createReader(1000, 1999));
    const first = collect(fill.createReader(0, 0));
    const last = collect(fill.createReader(4999, 4999));
    const tail = collect(fill.createReader(4000));
    for (const chunk of chunksOf(data, [333])) {
      fill.append(chunk);
      await tick();
    }
    fill.finish();
    const afterFill = collect(fill.createReader(17, 4321));

    expect((await mid).equals(data.subarray(1000, 2000))).toBe(true);
    expect((await first).equals(data.subarray(0, 1))).toBe(true);
    expect((await last).equals(data.subarray(4999))).toBe(true);
    expect((await tail).equals(data.subarray(4000))).toBe(true);
    expect((await afterFill).equals(data.subarray(17, 4322))).toBe(true);
  });

  it('ends a range reader as soon as its range is filled, before the fill finishes', async () => {
    const data = randomBytes(1000);
    const fill = new FillBuffer(data.length);
    const reader = collect(fill.createReader(0, 99));
    fill.append(data.subarray(0, 500));
    // Never finished: the reader must still end, having all of its range.
    expect((await reader).equals(data.subarray(0, 100))).toBe(true);
    expect(fill.done).toBe(false);
  });

  it('delivers early bytes before finish() is called', async () => {
    const data = randomBytes(2000);
    const fill = new FillBuffer(data.length);
    const reader = fill.createReader();
    const firstChunk = once(reader, 'data') as Promise<[Buffer]>;

    fill.append(data.subarray(0, 500));
    const [chunk] = await firstChunk;
    expect(fill.done).toBe(false);
    expect(fill.filled).toBe(500);
    expect(chunk.equals(data.subarray(0, 500))).toBe(true);

    const rest = collect(reader);
    fill.append(data.subarray(500));
    fill.finish();
    expect((await rest).equals(data.subarray(500))).toBe(true);
  });

  it('serves an empty object', async () => {
    const fill = new FillBuffer(0);
    const before = collect(fill.createReader());
    expect(fill.finish().length).toBe(0);
    expect((await before).length).toBe(0);
    expect((await collect(fill.createReader())).length).toBe(0);
  });

  it('exposes the filled head for sniffing', () => {
    const fill = new FillBuffer(100);
    fill.append(Buffer.from('abc'));
    expect(fill.head(64).toString()).toBe('abc');
    fill.append(Buffer.alloc(97, 0x61));
    expect(fill.head(64).length).toBe(64);
  });

  it('destroys waiting readers, and readers created later, with the fill error', async () => {
    const data = randomBytes(1000);
    const fill = new FillBuffer(data.length);
    const waiting = settle(collect(fill.createReader()));
    fill.append(data.subarray(0, 100));
    const midway = settle(collect(fill.createReader(50)));
    await tick();

    const boom = new Error('upstream reset');
    fill.fail(boom);
    const later = settle(collect(fill.createReader()));

    for (const outcome of await Promise.all([waiting, midway, later])) {
      expect(outcome.ok).toBe(false);
      expect(!outcome.ok && outcome.error).toBe(boom);
    }
  });

  it('ignores appends and a second failure after fail()', async () => {
    const fill = new FillBuffer(10);
    const first = new Error('first');
    fill.fail(first);
    fill.fail(new Error('second'));
    fill.append(Buffer.alloc(5));
    expect(fill.filled).toBe(0);
    const outcome = await settle(collect(fill.createReader()));
    expect(!outcome.ok && outcome.error).toBe(first);
  });

  it('does not fail readers of a completed fill', async () => {
    const data = randomBytes(100);
    const fill = new FillBuffer(data.length);
    fill.append(data);
    fill.finish();
    fill.fail(new Error('too late'));
    expect((await collect(fill.createReader())).equals(data)).toBe(true);
  });

  it('throws when the store sends more than the announced size', () => {
    const fill = new FillBuffer(10);
    fill.append(Buffer.alloc(8));
    expect(() => fill.append(Buffer.alloc(3))).toThrow(/more than the announced 10 bytes/);
    expect(fill.filled).toBe(8);
  });

  it('throws when finish() is called before every announced byte arrived', () => {
    const fill = new FillBuffer(10);
    fill.append(Buffer.alloc(7));
    expect(() => fill.finish()).toThrow(/7 of 10 bytes/);
    expect(fill.done).toBe(false);
  });

  it('lets one reader be destroyed without affecting another', async () => {
    const data = randomBytes(50_000);
    const fill = new FillBuffer(data.length);
    const quitter = fill.createReader();
    const survivor = collect(fill.createReader());
    const quitterDone = once(quitter, 'close');
    quitter.resume();

    fill.append(data.subarray(0, 10_000));
    await tick();
    quitter.destroy();
    await quitterDone;

    for (const chunk of chunksOf(data.subarray(10_000), [4096])) {
      fill.append(chunk);
      await tick();
    }
    fill.finish();
    expect((await survivor).equals(data)).toBe(true);
    expect(quitter.destroyed).toBe(true);
  });

  it('keeps serving other readers when a slow reader has not read anything', async () => {
    const data = randomBytes(20_000);
    const fill = new FillBuffer(data.length);
    const slow = fill.createReader();
    const fast = collect(fill.createReader());
    for (const chunk of chunksOf(data, [1000])) {
      fill.append(chunk);
      await tick();
    }
    fill.finish();
    expect((await fast).equals(data)).toBe(true);
    expect((await collect(slow)).equals(data)).toBe(true);
  });

  it('lets go of its bytes on release, waking a waiter, while the finished buffer lives on where it was handed', async () => {
    const data = randomBytes(10_000);
    const fill = new FillBuffer(data.length);
    fill.append(data.subarray(0, 4000));
    const waiting = fill.waitFor(9000);
    fill.append(data.subarray(4000));
    const body = fill.finish();
    fill.release();
    await waiting;
    expect(fill.released).toBe(true);
    expect(fill.view(0, 10_000).length).toBe(0);
    expect(fill.head(64).length).toBe(0);
    expect(body.equals(data)).toBe(true);
    // A wait that starts after the release does not hang.
    await fill.waitFor(20_000);
  });
});

describe('FillBuffer with a lent buffer', () => {
  it('fills the loan, gives it back once on release, and what readers took stays intact when the buffer is reused', async () => {
    const pool = new BufferPool(4096, 4);
    const data = randomBytes(3000);
    const loan = pool.lend(3000)!;
    const fill = new FillBuffer(data.length, loan);
    const reader = collect(fill.createReader());
    for (const chunk of chunksOf(data, [700])) {
      fill.append(chunk);
      await tick();
    }
    const body = fill.finish();
    expect(body.equals(data)).toBe(true);
    expect(body.buffer).toBe(loan.buffer.buffer);
    const got = await reader;

    fill.release();
    fill.release();
    expect(pool.idle).toBe(1);
    // The next fill takes the same memory and overwrites it: the reader's bytes were its own.
    const next = new FillBuffer(3000, pool.lend(3000));
    next.append(Buffer.alloc(3000, 0xee));
    expect(pool.idle).toBe(0);
    expect(got.equals(data)).toBe(true);
    expect(fill.view(0, 3000).length).toBe(0);
  });
});

describe('FillBuffer filled from a seek', () => {
  it('puts the bytes from the seek first, then the part before it, and finishes as the same buffer', () => {
    const data = randomBytes(10_000);
    const from = 6_000;
    const fill = new FillBuffer(data.length, undefined, from);
    // Fill order: from..end (chunks that do not line up with the end), then 0..from-1.
    const order = Buffer.concat([data.subarray(from), data.subarray(0, from)]);
    const chunks = chunksOf(order, [999, 1, 2500]);
    let fed = 0;
    for (const chunk of chunks) {
      fill.append(chunk);
      fed += chunk.length;
      const tail = Math.min(fed, data.length - from);
      const head = Math.max(0, fed - (data.length - from));
      expect(fill.available(from)).toBe(tail);
      expect(fill.available(0)).toBe(head);
      expect(fill.available(from - 1)).toBe(head === from ? 1 : 0);
      expect(fill.covers(from, from + tail - 1)).toBe(true);
      expect(fill.covers(from - 1, from)).toBe(fed === data.length);
      if (tail > 0) expect(fill.view(from, data.length).equals(data.subarray(from, from + tail))).toBe(true);
      if (head > 0) expect(fill.view(0, data.length).equals(data.subarray(0, head))).toBe(true);
    }
    expect(fill.finish().equals(data)).toBe(true);
  });

  it('copes with a chunk that runs across the end of the buffer', () => {
    const data = randomBytes(1000);
    const fill = new FillBuffer(data.length, undefined, 900);
    fill.append(Buffer.concat([data.subarray(900), data.subarray(0, 50)]));
    expect(fill.available(900)).toBe(100);
    expect(fill.available(0)).toBe(50);
    fill.append(data.subarray(50, 900));
    expect(fill.finish().equals(data)).toBe(true);
  });

  it('wakes a reader of bytes after the seek at once, and one of bytes before it only when they arrive', async () => {
    const data = randomBytes(8192);
    const from = 4096;
    const fill = new FillBuffer(data.length, undefined, from);
    let after = false;
    let before = false;
    let across = false;
    void fill.waitFor(from + 10).then(() => (after = true));
    void fill.waitFor(10).then(() => (before = true));
    void fill.waitForRange(from - 10, from + 10).then(() => (across = true));
    fill.append(data.subarray(from, from + 100));
    await tick();
    expect([after, before, across]).toEqual([true, false, false]);
    fill.append(data.subarray(from + 100));
    fill.append(data.subarray(0, 20));
    await tick();
    expect([before, across]).toEqual([true, false]);
    fill.append(data.subarray(20, from));
    await tick();
    expect(across).toBe(true);
    // A reader over the whole buffer reads it in order, whatever order it filled in.
    expect((await collect(fill.createReader())).equals(data)).toBe(true);
  });

  it('refuses a seek outside the buffer', () => {
    expect(() => new FillBuffer(100, undefined, 100)).toThrow(RangeError);
    expect(() => new FillBuffer(100, undefined, -1)).toThrow(RangeError);
    expect(() => new FillBuffer(0, undefined, 0)).not.toThrow();
  });
});

describe('FillBuffer over an entry file', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  /** A real disk tier's entry file; `failAfter` bytes in, its writes fail as a full disk's would. */
  async function entryFile(size: number, failAfter = Infinity): Promise<{ file: EntryFile; tier: DiskTier }> {
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-fillfile-'));
    dirs.push(dir);
    const tier = createDiskTier({ dir, maxBytes: 64 * 2 ** 20 });
    await tier.start();
    const real = tier.openFile('k', size)!;
    let written = 0;
    const file: EntryFile = {
      write(at, chunk) {
        if (written + chunk.length > failAfter) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        written += chunk.length;
        real.write(at, chunk);
      },
      read: (at, n) => real.read(at, n),
      commit: (m) => real.commit(m),
      release: () => real.release(),
    };
    return { file, tier };
  }

  it('holds no bytes in memory: readers read what the file holds, in any fill order, and the commit makes the entry', async () => {
    const data = randomBytes(300_000);
    const { file, tier } = await entryFile(data.length);
    const fill = new FillBuffer(data.length, undefined, 200_000, file);
    expect(fill.shareable).toBe(false);
    const whole = collect(fill.createReader());
    for (const c of chunksOf(data.subarray(200_000))) fill.append(c);
    expect(fill.copy(200_000, 50).equals(data.subarray(200_000, 200_050))).toBe(true);
    expect(fill.available(0)).toBe(0);
    for (const c of chunksOf(data.subarray(0, 200_000))) fill.append(c);
    expect(fill.finish().length).toBe(0);
    expect((await whole).equals(data)).toBe(true);
    expect(await file.commit({ size: data.length, etag: '"e"', lastModifiedMs: undefined, contentType: 'application/octet-stream', cachedAtMs: 0 })).toBe(true);
    fill.release();
    expect(fill.copy(0, 10).length).toBe(0);
    const hit = await tier.lookup('k', { start: 0, end: data.length - 1 });
    const got = hit?.buffer ?? (await collect(hit!.stream!));
    expect(got.equals(data)).toBe(true);
  });

  it('moves its bytes to memory when the disk fails mid-fill and the budget has room, and fails when it has none', async () => {
    const data = randomBytes(300_000);
    const granted = await entryFile(data.length, 150_000);
    let asked = 0;
    const fill = new FillBuffer(data.length, undefined, 100_000, granted.file, () => (asked++, true));
    const whole = collect(fill.createReader());
    for (const c of chunksOf(data.subarray(100_000))) fill.append(c);
    for (const c of chunksOf(data.subarray(0, 100_000))) fill.append(c);
    expect(asked).toBe(1);
    expect(fill.file).toBeUndefined();
    expect(fill.finish().equals(data)).toBe(true);
    expect((await whole).equals(data)).toBe(true);

    const refused = await entryFile(data.length, 150_000);
    const failing = new FillBuffer(data.length, undefined, 0, refused.file, () => false);
    expect(() => {
      for (const c of chunksOf(data)) failing.append(c);
    }).toThrow(/no space left/);
  });
});
