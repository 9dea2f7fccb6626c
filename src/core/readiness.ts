/**
 * Readiness: every store must have answered its last probe. A probe is a HEAD of a key that does
 * not exist: "not found" is an answer (the store is reachable and the bucket exists); an error or
 * a timeout is not.
 */
import type { StoreRegistry } from '../stores/registry.js';
import { withDeadline } from './deadline.js';

/** A key no client is expected to use; its absence is the healthy answer. */
export const PROBE_KEY = 'cachegate-readiness-probe';

export interface ReadinessOptions {
  stores: StoreRegistry;
  intervalMs: number;
  timeoutMs: number;
  onProbeFailed?: (storeId: string, err: unknown) => void;
}

export class Readiness {
  readonly #o: ReadinessOptions;
  readonly #ok = new Map<string, boolean>();
  #timer: NodeJS.Timeout | undefined;
  #draining = false;

  constructor(options: ReadinessOptions) {
    this.#o = options;
  }

  /** Probe now and then every interval. Resolves after the first round. */
  async start(): Promise<void> {
    await this.probeAll();
    this.#timer = setInterval(() => void this.probeAll(), this.#o.intervalMs);
    this.#timer.unref();
  }

  async probeAll(): Promise<void> {
    await Promise.all(
      this.#o.stores.ids().map(async (id) => {
        const store = this.#o.stores.get(id)!;
        try {
          await withDeadline(this.#o.timeoutMs, `probe of store '${id}'`, (signal) => store.head(PROBE_KEY, { signal }));
          this.#ok.set(id, true);
        } catch (err) {
          this.#ok.set(id, false);
          this.#o.onProbeFailed?.(id, err);
        }
      }),
    );
  }

  /** From now on not ready: the process is shutting down. */
  drain(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Ready: not draining, and every store answered its last probe. */
  ready(): { ready: boolean; stores: Record<string, boolean> } {
    const stores = Object.fromEntries(this.#o.stores.ids().map((id) => [id, this.#ok.get(id) ?? false]));
    return { ready: !this.#draining && Object.values(stores).every(Boolean), stores };
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
