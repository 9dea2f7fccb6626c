/**
 * How the disk tier puts bytes in a file: in small pieces, synchronously while the page cache
 * takes them in microseconds, through the thread pool once the kernel starts to hold writers back.
 *
 * Why small pieces: ext4 (Linux 6.x large folios) sizes its page-cache folios by the write's
 * length. On this Firecracker VM (virtio-balloon free page reporting) filling high-order folios
 * cost 2-3.5 ms per MiB against 0.2-0.3 ms for small ones (448 MiB of 8 MiB slices). In the
 * gateway 64 KiB pieces still paid it once the VM's free pages had moved on, and 32 KiB did not.
 * Our reading, not proven: 32 KiB is order 3 (PAGE_ALLOC_COSTLY_ORDER), the largest the kernel
 * serves from its per-CPU page lists; larger folios take blocks from the buddy allocator that the
 * guest has handed back to the host. nginx writes its cache files the same way: `pwritev` of
 * about 36 KiB as bytes arrive.
 *
 * Why synchronously: a thread-pool hop per 32 KiB piece (two context switches) cost as much CPU as
 * the small pieces saved. A sync batch is at most `batchBytes` (about 0.3 ms here), then the
 * event loop runs. A page-cache write blocks only when dirty pages pass the kernel's limit and it
 * throttles writers (a slow disk): a batch slower than `slowMs` switches every write to the
 * thread pool for `holdMs`, so a slow disk never stalls the event loop for long.
 */
import { writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

export interface FileWritesOptions {
  pieceBytes?: number;
  batchBytes?: number;
  slowMs?: number;
  holdMs?: number;
  now?: () => number;
}

export class FileWrites {
  readonly #piece: number;
  readonly #batch: number;
  readonly #slowMs: number;
  readonly #holdMs: number;
  readonly #now: () => number;
  #asyncUntil = -Infinity;
  /** Counts, for tests and diagnostics. */
  syncBatches = 0;
  asyncPieces = 0;

  constructor(o: FileWritesOptions = {}) {
    this.#piece = o.pieceBytes ?? 32 * 1024;
    this.#batch = o.batchBytes ?? 1024 * 1024;
    this.#slowMs = o.slowMs ?? 20;
    this.#holdMs = o.holdMs ?? 5000;
    this.#now = o.now ?? (() => performance.now());
  }

  /** Whether writes go through the thread pool now (the last sync batch was slow). */
  get throttled(): boolean {
    return this.#now() < this.#asyncUntil;
  }

  /**
   * Write all of `buf` at `position` now, synchronously, in pieces (a fill's bytes as they
   * arrive, read back at once). A write slower than `slowMs` switches the tier's other writes to
   * the thread pool, and `throttled` tells new fills to keep their bytes in memory instead.
   */
  writeNow(fd: number, buf: Buffer, position: number): void {
    this.#syncBatch(fd, buf, 0, buf.length, position);
  }

  /** Bytes `from..to-1` of `buf` at `position + from`, synchronously in pieces; a slow batch throttles. */
  #syncBatch(fd: number, buf: Buffer, from: number, to: number, position: number): void {
    const t0 = this.#now();
    for (let done = from; done < to; ) done += writeSync(fd, buf, done, Math.min(to - done, this.#piece), position + done);
    this.syncBatches++;
    if (this.#now() - t0 > this.#slowMs) this.#asyncUntil = this.#now() + this.#holdMs;
  }

  /**
   * Write all of `buf` at `position`. `live()` is checked before every synchronous batch: it must
   * be false once anything may close `fh` (a raw descriptor closed meanwhile could be reused by
   * another file). A write that finds it false fails without writing.
   */
  async writeAll(fh: FileHandle, buf: Buffer, position: number, live: () => boolean): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      if (!live()) throw new Error('file closed during a write');
      if (this.throttled) {
        const { bytesWritten } = await fh.write(buf, done, Math.min(buf.length - done, this.#piece), position + done);
        this.asyncPieces++;
        done += bytesWritten;
        continue;
      }
      const stop = Math.min(buf.length, done + this.#batch);
      this.#syncBatch(fh.fd, buf, done, stop, position);
      done = stop;
      if (done < buf.length) await new Promise<void>((r) => setImmediate(r));
    }
  }
}
