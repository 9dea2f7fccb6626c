/**
 * The fill budget (`cache.max_fill_memory`): the bytes that all fills in flight may hold together.
 * A fill of a known object reserves its slice before its store GET and releases it once the
 * slice is handed to the tiers. A fill into a disk entry file holds no slice and reserves only
 * STREAMING_FILL_BYTES; so does the first fill of an unknown object until the store's answer
 * gives the size it needs (fills.ts). A fill a reader needs waits for room, first come first
 * served, for at most a short while: fills finish at store speed (never at a slow client's:
 * readers copy out of a fill and never pin it), so room comes back quickly. When it does not,
 * the reader is served straight from the store, uncached, rather than made to wait on other
 * clients. Read-ahead never waits.
 */
export class FillBudget {
  readonly maxBytes: number;
  #used = 0;
  readonly #waiters: { bytes: number; grant: (ok: boolean) => void; timer: NodeJS.Timeout }[] = [];

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get usedBytes(): number {
    return this.#used;
  }

  /** Reserve now, or not at all. */
  tryReserve(bytes: number): boolean {
    if (this.#waiters.length > 0 || (this.#used + bytes > this.maxBytes && this.#used > 0)) return false;
    this.#used += bytes;
    return true;
  }

  /** Reserve, waiting up to `waitMs` for room; false when none came. */
  reserve(bytes: number, waitMs: number): Promise<boolean> {
    if (this.tryReserve(bytes)) return Promise.resolve(true);
    // A fill larger than the whole budget could never start: let it run alone, once all is free.
    return new Promise((resolve) => {
      const waiter = {
        bytes,
        grant: resolve,
        timer: setTimeout(() => {
          const i = this.#waiters.indexOf(waiter);
          if (i !== -1) this.#waiters.splice(i, 1);
          resolve(false);
          this.#drain();
        }, waitMs),
      };
      this.#waiters.push(waiter);
    });
  }

  release(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
    this.#drain();
  }

  #drain(): void {
    while (this.#waiters.length > 0) {
      const w = this.#waiters[0]!;
      const fits = this.#used + w.bytes <= this.maxBytes || this.#used === 0;
      if (!fits) return;
      this.#waiters.shift();
      clearTimeout(w.timer);
      this.#used += w.bytes;
      w.grant(true);
    }
  }
}
