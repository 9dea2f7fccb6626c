import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileWrites } from '../../src/cache/file-writes.js';

const dir = mkdtempSync(path.join(tmpdir(), 'file-writes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('FileWrites', () => {
  it('writes every byte at its position, in synchronous batches while writes are quick', async () => {
    const writes = new FileWrites({ pieceBytes: 4096, batchBytes: 64 * 1024 });
    const file = path.join(dir, 'quick');
    const fh = await open(file, 'wx');
    const head = pattern(10, 1);
    const body = pattern(300_001, 2); // not a multiple of the piece or the batch
    await writes.writeAll(fh, body, head.length, () => true);
    await writes.writeAll(fh, head, 0, () => true);
    await fh.close();
    expect(readFileSync(file).equals(Buffer.concat([head, body]))).toBe(true);
    expect(writes.syncBatches).toBe(Math.ceil(body.length / (64 * 1024)) + 1);
    expect(writes.asyncPieces).toBe(0);
  });

  it('turns to the thread pool for holdMs once a synchronous batch was slow, then back', async () => {
    let clock = 0;
    // Every reading of the clock inside a batch sees 50 ms pass: a throttled disk.
    let slow = true;
    const now = () => (slow ? (clock += 50) : clock);
    const writes = new FileWrites({ pieceBytes: 4096, batchBytes: 8192, slowMs: 20, holdMs: 10_000, now });
    const file = path.join(dir, 'slow');
    const fh = await open(file, 'wx');
    const body = pattern(64 * 1024, 3);
    await writes.writeAll(fh, body, 0, () => true);
    // One slow batch, then every piece through the thread pool while the hold lasts.
    expect(writes.syncBatches).toBe(1);
    expect(writes.asyncPieces).toBe((body.length - 8192) / 4096);
    expect(writes.throttled).toBe(true);
    slow = false;
    clock += 10_000;
    expect(writes.throttled).toBe(false);
    const more = pattern(8192, 4);
    await writes.writeAll(fh, more, body.length, () => true);
    expect(writes.syncBatches).toBe(2);
    await fh.close();
    expect(readFileSync(file).equals(Buffer.concat([body, more]))).toBe(true);
  });

  it('writes nothing once the file may be closing, and says so', async () => {
    const writes = new FileWrites({ pieceBytes: 4096, batchBytes: 8192 });
    const file = path.join(dir, 'closing');
    const fh = await open(file, 'wx');
    let live = true;
    const body = pattern(32 * 1024, 5);
    const done = writes.writeAll(fh, body, 0, () => live);
    // The first batch is written synchronously; the writer is destroyed before the next turn.
    live = false;
    await expect(done).rejects.toThrow(/closed during a write/);
    await fh.close();
    expect(readFileSync(file).length).toBe(8192);
  });
});
