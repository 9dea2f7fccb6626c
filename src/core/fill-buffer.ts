/**
 * A buffer that fills once from a store while any number of readers stream from it.
 *
 * The buffer is allocated at the object's full size (it is at most `max_object_size`), so every
 * byte is copied once and the finished buffer becomes the cache entry with no second copy.
 * Readers get zero-copy views of the filled part; each is paced by its own consumer, so a slow
 * client never holds back the fill or the other readers.
 */
import { Readable } from 'node:stream';

export class FillBuffer {
  readonly size: number;
  readonly #buf: Buffer;
  #filled = 0;
  #done = false;
  #error: Error | undefined;
  readonly #wakers = new Set<() => void>();

  constructor(size: number) {
    this.size = size;
    this.#buf = Buffer.allocUnsafe(size);
  }

  get filled(): number {
    return this.#filled;
  }

  get done(): boolean {
    return this.#done;
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
      const chunk = fill.view(this.#pos, this.#endExclusive);
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
