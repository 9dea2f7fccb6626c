/**
 * How often each key was asked for lately, in a few KiB whatever the number of keys: a count-min
 * sketch with small saturating counters that halve every `sampleSize` increments (TinyLFU, as in
 * Caffeine and Ristretto). Estimates never undercount a key's recent accesses; collisions can
 * only overcount. Used to admit disk hits into memory (core/placement.ts).
 */

const ROWS = 4;
/** Counters saturate here (4 bits' worth, as in TinyLFU). */
const MAX_COUNT = 15;

export class FrequencySketch {
  readonly #table: Uint8Array;
  readonly #mask: number;
  readonly #sampleSize: number;
  #additions = 0;

  /**
   * `capacity`: about how many keys the cache it serves holds. Each row has four counters per
   * key held (so few keys share all four of theirs), and counts halve every 10 × capacity.
   */
  constructor(capacity: number) {
    const keys = Math.max(256, Math.min(1 << 18, Math.ceil(capacity)));
    const width = nextPowerOfTwo(4 * keys);
    this.#table = new Uint8Array(ROWS * width);
    this.#mask = width - 1;
    this.#sampleSize = 10 * keys;
  }

  /** Count one access to `key`. */
  increment(key: string): void {
    const h = hash(key);
    const step = rehash(h);
    let added = false;
    for (let row = 0; row < ROWS; row++) {
      const at = row * (this.#mask + 1) + ((h + row * step) & this.#mask);
      if (this.#table[at]! < MAX_COUNT) {
        this.#table[at]!++;
        added = true;
      }
    }
    if (added && ++this.#additions >= this.#sampleSize) this.#age();
  }

  /** Recent accesses to `key` (an upper bound, at most MAX_COUNT). */
  estimate(key: string): number {
    const h = hash(key);
    const step = rehash(h);
    let min = MAX_COUNT;
    for (let row = 0; row < ROWS; row++) {
      const v = this.#table[row * (this.#mask + 1) + ((h + row * step) & this.#mask)]!;
      if (v < min) min = v;
    }
    return min;
  }

  /** Halve every counter: old popularity fades, so the sketch follows a changing workload. */
  #age(): void {
    for (let i = 0; i < this.#table.length; i++) this.#table[i] = this.#table[i]! >>> 1;
    this.#additions = Math.floor(this.#additions / 2);
  }
}

/** FNV-1a over the key's UTF-16 code units. */
function hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A second, odd hash from the first (murmur3's finalizer), for the rows' double hashing. */
function rehash(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h | 1) >>> 0;
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
