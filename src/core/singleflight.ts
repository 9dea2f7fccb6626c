/**
 * Keyed in-flight work: the first caller for a key starts it, later callers join it. The entry
 * is removed by its owner when the work settles (or when it is detached by an invalidation), so
 * a finished or failed fill never traps later callers.
 */
export class Singleflight<T> {
  readonly #inflight = new Map<string, T>();

  /** The work in flight for `key`, or the result of `start()` registered as new work. */
  join(key: string, start: () => T): { value: T; leader: boolean } {
    const existing = this.#inflight.get(key);
    if (existing !== undefined) return { value: existing, leader: false };
    const value = start();
    this.#inflight.set(key, value);
    return { value, leader: true };
  }

  get(key: string): T | undefined {
    return this.#inflight.get(key);
  }

  /** Whether `value` is still the registered work for `key` (not detached or replaced). */
  isCurrent(key: string, value: T): boolean {
    return this.#inflight.get(key) === value;
  }

  /** Remove `key` if `value` is its current work. */
  release(key: string, value: T): void {
    if (this.#inflight.get(key) === value) this.#inflight.delete(key);
  }

  /** Detach whatever is in flight for `key`: it may finish, but must not publish its result. */
  detach(key: string): void {
    this.#inflight.delete(key);
  }

  /** A snapshot of the keys in flight. */
  keys(): string[] {
    return [...this.#inflight.keys()];
  }

  get size(): number {
    return this.#inflight.size;
  }
}
