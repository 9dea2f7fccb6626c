/**
 * A buffer that fills once from a store while any number of readers stream from it.
 *
 * The buffer is allocated at the slice's full size (at most `cache.slice_size`), with a backing
 * store of its own, so every byte is copied once and the finished buffer becomes the cache entry
 * with no second copy. Or it is lent by a pool (a disk-bound slice, whose tier copies it out):
 * then `release()` gives it back, and nothing may keep a view of it past that (readers copy out
 * what they take, synchronously, after checking `released`).
 * Readers get copies of the filled part (a view could outlive a lent buffer); each is paced by its
 * own consumer, so a slow client never holds back the fill or the other readers.
 */
import { Readable } from 'node:stream';
import type { Loan } from '../cache/buffer-pool.js';

export class FillBuffer {
  readonly size: number;
  #buf: Buffer;
  #released = false;
  #filled = 0;
  #done = false;
  #error: Error | undefined;
  readonly #wakers = new Set<() => void>();

  #loan: Loan | undefined;

  /** A buffer of `size` bytes, of its own or out of `loan` (at least `size` bytes long). */
  constructor(size: number, loan?: Loan) {
    this.size = size;
    this.#loan = loan;
    this.#buf = loan ? loan.buffer.subarray(0, size) : Buffer.allocUnsafeSlow(size);
  }

  get filled(): number {
    return this.#filled;
  }

  get done(): boolean {
    return this.#done;
  }

  /** Whether the bytes are in a buffer lent by a pool (given back on release) rather than its own. */
  get lent(): boolean {
    return this.#loan !== undefined;
  }

  /** Copy a chunk in. Throws when the store sends more bytes than it announced. */
  append(chunk: Buffer): void {
    if (this.#done || this.#error) return;
    if (this.#filled + chunk.length > this.size) {
      throw new Error(`store sent more than the announced ${this.size} bytes`);
    }
    chunk.copy(this.#buf, this.#filled);
    this.#filled += chunk.length;
    this.#wake();
  }

  /** Mark the fill complete. Throws when fewer bytes arrived than announced (a truncated body). */
  finish(): Buffer {
    if (this.#filled !== this.size) {
      throw new Error(`store body ended after ${this.#filled} of ${this.size} bytes`);
    }
    this.#done = true;
    this.#wake();
    return this.#buf;
  }

  /**
   * Let go of the bytes once the tiers own them (or the fill failed): a reader that still holds
   * this fill (even as a stale value in a suspended generator's registers) then pins nothing,
   * and reads on from the tiers or a new fill. Readers waiting are woken.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#buf = Buffer.alloc(0);
    const loan = this.#loan;
    this.#loan = undefined;
    loan?.release();
    this.#wake();
  }

  /** Whether `release()` dropped the bytes: read them from the tiers now. */
  get released(): boolean {
    return this.#released;
  }

  /** Fail every reader, present and future. */
  fail(err: Error): void {
    if (this.#done || this.#error) return;
    this.#error = err;
    this.#wake();
  }

  /** The first up to `n` bytes filled so far (for sniffing a content type). */
  head(n: number): Buffer {
    return this.#buf.subarray(0, Math.min(n, this.#filled));
  }

  /** Resolves once byte `pos` is filled, or the fill ended or failed (check `filled`/`error`). */
  waitFor(pos: number): Promise<void> {
    if (pos < this.#filled || this.#done || this.#error || this.#released) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (pos < this.#filled || this.#done || this.#error || this.#released) resolve();
        else this.onProgress(check);
      };
      this.onProgress(check);
    });
  }

  /** A stream of bytes `start..end` (inclusive), delivered as they arrive. */
  createReader(start = 0, end = this.size - 1): Readable {
    return new FillReader(this, start, end);
  }

  /** @internal used by FillReader */
  view(from: number, toExclusive: number): Buffer {
    return this.#buf.subarray(from, Math.min(toExclusive, this.#filled));
  }

  /** @internal */
  get error(): Error | undefined {
    return this.#error;
  }

  /** @internal call `waker` once when more bytes, the end or an error arrive. */
  onProgress(waker: () => void): () => void {
    this.#wakers.add(waker);
    return () => this.#wakers.delete(waker);
  }

  #wake(): void {
    if (this.#wakers.size === 0) return;
    const wakers = [...this.#wakers];
    this.#wakers.clear();
    for (const w of wakers) w();
  }
}

class FillReader extends Readable {
  readonly #fill: FillBuffer;
  #pos: number;
  readonly #endExclusive: number;
  #unsubscribe: (() => void) | undefined;

  constructor(fill: FillBuffer, start: number, end: number) {
    super({ highWaterMark: 0 });
    this.#fill = fill;
    this.#pos = start;
    this.#endExclusive = end + 1;
  }

  override _read(): void {
    this.#unsubscribe = undefined;
    const fill = this.#fill;
    if (fill.error) {
      this.destroy(fill.error);
      return;
    }
    if (this.#pos >= this.#endExclusive) {
      this.push(null);
      return;
    }
    if (this.#pos < fill.filled) {
      const chunk = Buffer.from(fill.view(this.#pos, this.#endExclusive));
      this.#pos += chunk.length;
      this.push(chunk);
      return;
    }
    // Nothing new yet: wait for the fill to make progress, then try again.
    this.#unsubscribe = fill.onProgress(() => this._read());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    cb(err);
  }
}
