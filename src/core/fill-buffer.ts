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
 *
 * Or the bytes go to the slice's entry file as they arrive (`file`: a disk-bound slice, see
 * `EntryFile`), and readers read them back from it: the fill then holds no body in memory, and
 * the file becomes the entry on commit.
 *
 * A buffer may fill from an offset (`from`, a seek into the slice): bytes `from..size-1` arrive
 * first, then `0..from-1`. Byte `p` is filled when it lies in either filled run, and a read
 * takes the contiguous filled bytes from where it stands (`available`).
 */
import { Readable } from 'node:stream';
import type { Loan } from '../cache/buffer-pool.js';
import type { EntryFile } from '../cache/tier.js';

/**
 * A fill's entry file is released with the fill's bytes (`release()`), except when the fill never
 * commits and its readers finish from it (a fill a write or a change detached): then once no
 * reader holds the fill any more.
 */
const unreleasedFiles = new FinalizationRegistry<EntryFile>((file) => file.release());

export class FillBuffer {
  readonly size: number;
  #buf: Buffer;
  #released = false;
  #filled = 0;
  #done = false;
  #error: Error | undefined;
  readonly #wakers = new Set<() => void>();

  #loan: Loan | undefined;
  #file: EntryFile | undefined;
  /** Where the fill starts: `from..size-1` first, then `0..from-1`. */
  readonly from: number;

  readonly #spill: (() => boolean) | undefined;

  /**
   * A buffer of `size` bytes, of its own, out of `loan` (at least `size` bytes long), or kept in
   * `file`; filled from `from`. `spill` is asked, when a write to `file` fails (a full or failing
   * disk), for room in memory for the whole buffer: when it grants it, the bytes so far are read
   * back and the fill goes on in memory, its readers unaffected; else the append throws and the
   * fill fails.
   */
  constructor(size: number, loan?: Loan, from = 0, file?: EntryFile, spill?: () => boolean) {
    if (!(from >= 0 && (from < size || from === 0))) throw new RangeError(`fill start ${from} outside 0..${size - 1}`);
    this.size = size;
    this.from = from;
    this.#file = file;
    this.#spill = spill;
    this.#loan = file ? undefined : loan;
    this.#buf = file ? Buffer.alloc(0) : loan ? loan.buffer.subarray(0, size) : Buffer.allocUnsafeSlow(size);
    if (file) unreleasedFiles.register(this, file, this);
  }

  /** The entry file the bytes go to (`undefined`: they are in memory). */
  get file(): EntryFile | undefined {
    return this.#file;
  }

  /** How many bytes arrived so far (in fill order, not a position). */
  get filled(): number {
    return this.#filled;
  }

  /** How many filled bytes follow `pos` without a gap (0: byte `pos` has not arrived). */
  available(pos: number): number {
    const tail = this.size - this.from;
    if (pos >= this.from) return Math.max(0, Math.min(this.#filled, tail) - (pos - this.from));
    return Math.max(0, Math.min(this.#filled - tail, this.from) - pos);
  }

  /** Whether every byte of `start..end` (inclusive) has arrived. */
  covers(start: number, end: number): boolean {
    if (end < start) return true;
    // A run across `from` needs the part before it, which arrives last: the whole buffer.
    if (start < this.from && end >= this.from) return this.#filled === this.size;
    return this.available(start) > end - start;
  }

  get done(): boolean {
    return this.#done;
  }

  /** Whether the bytes are in a buffer lent by a pool (given back on release) rather than its own. */
  get lent(): boolean {
    return this.#loan !== undefined;
  }

  /** Whether readers may share views of the finished bytes (a buffer of its own, not lent, not a file). */
  get shareable(): boolean {
    return this.#loan === undefined && this.#file === undefined;
  }

  /** Copy a chunk in. Throws when the store sends more bytes than it announced. */
  append(chunk: Buffer): void {
    if (this.#done || this.#error) return;
    if (this.#filled + chunk.length > this.size) {
      throw new Error(`store sent more than the announced ${this.size} bytes`);
    }
    const at = (this.from + this.#filled) % Math.max(1, this.size);
    const first = Math.min(chunk.length, this.size - at);
    if (this.#file) {
      try {
        this.#file.write(at, first < chunk.length ? chunk.subarray(0, first) : chunk);
        if (first < chunk.length) this.#file.write(0, chunk.subarray(first));
      } catch (err) {
        if (!this.#toMemory()) throw err;
      }
    }
    if (!this.#file) {
      chunk.copy(this.#buf, at, 0, first);
      if (first < chunk.length) chunk.copy(this.#buf, 0, first);
    }
    this.#filled += chunk.length;
    this.#wake();
  }

  /** Move the bytes from the file into a buffer of its own (see `spill`); false when not granted or unreadable. */
  #toMemory(): boolean {
    const file = this.#file!;
    if (!this.#spill?.()) return false;
    const buf = Buffer.allocUnsafeSlow(this.size);
    try {
      const tail = Math.min(this.#filled, this.size - this.from);
      if (tail > 0) file.read(this.from, tail).copy(buf, this.from);
      if (this.#filled > tail) file.read(0, this.#filled - tail).copy(buf, 0);
    } catch {
      return false;
    }
    this.#buf = buf;
    this.#file = undefined;
    unreleasedFiles.unregister(this);
    file.release();
    return true;
  }

  /**
   * Mark the fill complete. Throws when fewer bytes arrived than announced (a truncated body).
   * The bytes, or an empty buffer when they are in `file`.
   */
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
    if (this.#file) {
      unreleasedFiles.unregister(this);
      this.#file.release();
    }
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

  /** The first up to `n` bytes of the buffer filled so far (for sniffing a content type). */
  head(n: number): Buffer {
    return this.copy(0, Math.min(n, this.available(0)));
  }

  /**
   * A copy of up to `n` filled bytes from `start` (as many as follow it without a gap): a reader's
   * own, valid after `release()`. Empty once released.
   */
  copy(start: number, n: number): Buffer {
    const len = Math.min(n, this.available(start));
    if (len <= 0 || this.#released) return Buffer.alloc(0);
    return this.#file ? this.#file.read(start, len) : Buffer.from(this.#buf.subarray(start, start + len));
  }

  /** Resolves once byte `pos` is filled, or the fill ended or failed (check `available`/`error`). */
  waitFor(pos: number): Promise<void> {
    return this.waitForRange(pos, pos);
  }

  /** Resolves once every byte of `start..end` is filled, or the fill ended or failed. */
  waitForRange(start: number, end: number): Promise<void> {
    const ready = () => this.covers(start, end) || this.#done || this.#error !== undefined || this.#released;
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (ready()) resolve();
        else this.onProgress(check);
      };
      this.onProgress(check);
    });
  }

  /** A stream of bytes `start..end` (inclusive), delivered as they arrive. */
  createReader(start = 0, end = this.size - 1): Readable {
    return new FillReader(this, start, end);
  }

  /** The filled bytes from `start`, up to `toExclusive`: a view where `shareable`, else a copy. */
  view(start: number, toExclusive: number): Buffer {
    if (!this.shareable) return this.copy(start, toExclusive - start);
    return this.#buf.subarray(start, Math.min(toExclusive, start + this.available(start)));
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
    if (fill.available(this.#pos) > 0) {
      const chunk = fill.copy(this.#pos, this.#endExclusive - this.#pos);
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
