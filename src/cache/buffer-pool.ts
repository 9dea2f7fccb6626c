/**
 * Read buffers for disk hits, reused. A fresh 1 MiB buffer per hit costs more than the hit's
 * read and checksum together (its pages are faulted in and zeroed by the kernel, then collected);
 * a reused one is already mapped and warm. A buffer is lent with a `release` that gives it back
 * once, and only once, its bytes have left (the HTTP layer calls it when the response finished or
 * its connection closed). A buffer never released is simply collected: forgetting costs reuse,
 * never correctness.
 *
 * The pool keeps what a burst needed, up to `maxIdle`, and lets go of buffers that stayed idle
 * through a whole `trimMs` interval, so memory held after a burst goes back within two intervals.
 */

export interface Loan {
  buffer: Buffer;
  /** Give the buffer back; later calls do nothing. */
  release: () => void;
}

export class BufferPool {
  readonly #idle: Buffer[] = [];
  /** The fewest idle buffers seen since the last trim: that many were not needed all along. */
  #lowWater = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    /** Every pooled buffer has this size; larger requests are not pooled. */
    readonly bufferBytes: number,
    /** Most buffers kept idle. */
    readonly maxIdle: number,
    readonly trimMs = 5_000,
  ) {}

  /** A buffer of at least `bytes` (a pooled one when it fits), or `undefined` when `bytes` is too large. */
  lend(bytes: number): Loan | undefined {
    if (bytes > this.bufferBytes) return undefined;
    const buffer = this.#idle.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
    if (this.#idle.length < this.#lowWater) this.#lowWater = this.#idle.length;
    let out = true;
    return {
      buffer,
      release: () => {
        if (!out) return;
        out = false;
        if (this.#idle.length >= this.maxIdle) return;
        this.#idle.push(buffer);
        this.#timer ??= setInterval(() => this.#trim(), this.trimMs).unref();
      },
    };
  }

  /** Idle buffers held now. */
  get idle(): number {
    return this.#idle.length;
  }

  #trim(): void {
    this.#idle.splice(0, this.#lowWater);
    this.#lowWater = this.#idle.length;
    if (this.#idle.length === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
