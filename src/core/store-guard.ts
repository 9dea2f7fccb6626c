/**
 * Store protection, one guard per store: what keeps a store's bad minute from becoming the
 * gateway's. Used by `StoreCalls.timed` for reads (HEAD, GET, ranged GET); writes are never
 * retried once their body has started, so they go to the store directly.
 *
 * - Retries: a read that fails with a connection error, a 5xx or throttling is tried again after
 *   a jittered exponential backoff ("full jitter"), within the call's one deadline
 *   (`store_timeout`). Behind the singleflight a retry is one fill's, never a herd's.
 * - Circuit breaker: after `breaker_failures` consecutive failures the store is "open": misses
 *   fail fast with 503 and Retry-After for `breaker_cooldown` (hits never ask the store, so they
 *   keep being served). Then one probe call may go; its success closes the breaker, its failure
 *   opens it again.
 * - Concurrency cap: at most `store_max_concurrent` calls in flight per store (until the store
 *   answers; streaming bodies do not hold a slot). More wait in a FIFO queue; one that waits
 *   longer than `store_queue_timeout` is a 503, never an unbounded pile-up.
 * - Hedging (optional, after Cachey): a GET that has not answered by the chosen quantile of
 *   recent GET latencies gets a second, identical GET; the first answer wins and the other is
 *   aborted (and its body, if any, destroyed).
 */
import { StoreError, StoreUnavailableError } from '../errors.js';
import type { StopSignal } from '../stores/types.js';
import { CallSignal } from './deadline.js';

export interface StoreProtection {
  /** Extra attempts for a read. */
  retries: number;
  /** First backoff step; each retry doubles it, and the wait is uniform in [0, step). */
  retryBaseMs: number;
  /** Consecutive failures that open the breaker; 0 disables it. */
  breakerFailures: number;
  breakerCooldownMs: number;
  /** Calls in flight per store; 0: no cap. */
  maxConcurrent: number;
  queueTimeoutMs: number;
  /** Hedge GETs after this quantile of recent GET latencies; undefined: never. */
  hedgeQuantile?: number | undefined;
}

export const DEFAULT_RETRY_BASE_MS = 25;
/** GET latencies kept per store for the hedging quantile. */
const LATENCY_SAMPLES = 256;
/** No hedging before this many samples: a quantile of a handful means nothing. */
const MIN_HEDGE_SAMPLES = 20;

/** Whether a failed read may be tried again: the store's transient failures only. */
export function isRetryable(err: unknown): boolean {
  // The kind is the store's, or errors.ts's reading of the driver's error.
  return err instanceof StoreError && (err.kind === 'network' || err.kind === 'server_error' || err.kind === 'throttled');
}

export type BreakerState = 'closed' | 'open' | 'half_open';

/** Listeners for what the guard did (metrics). */
export interface GuardEvents {
  retry(storeId: string): void;
  hedge(storeId: string): void;
  failFast(storeId: string, reason: 'breaker' | 'queue'): void;
  breaker(storeId: string, state: BreakerState): void;
}

/** An admitted call: `release` once the store answered; `probe` when it is the half-open probe. */
export interface Admission {
  release: () => void;
  probe: boolean;
}

export class StoreGuard {
  readonly #id: string;
  readonly #p: StoreProtection;
  readonly #events: GuardEvents | undefined;
  #failures = 0;
  #state: BreakerState = 'closed';
  #openUntil = 0;
  #probing = false;
  #inFlight = 0;
  readonly #queue: Array<{ start: () => void; timer: NodeJS.Timeout }> = [];
  readonly #latencies: number[] = [];
  #latencyAt = 0;
  #hedgeAfterMs: number | undefined;

  constructor(storeId: string, protection: StoreProtection, events?: GuardEvents) {
    this.#id = storeId;
    this.#p = protection;
    this.#events = events;
  }

  get state(): BreakerState {
    return this.#state;
  }

  get queueDepth(): number {
    return this.#queue.length;
  }

  /**
   * Admit a call: throws StoreUnavailableError while the breaker is open (or a probe is already
   * out), then waits for a slot. Returns the release function; call it once the store answered.
   * With a slot free it answers at once, not through a promise (no microtask per store call).
   */
  admit(): Admission | Promise<Admission> {
    const probe = this.#checkBreaker();
    if (this.#tryAcquire()) return this.#admission(probe);
    return this.#queued().then(
      () => this.#admission(probe),
      (err: unknown) => {
        if (probe) this.#probing = false;
        throw err;
      },
    );
  }

  #admission(probe: boolean): Admission {
    let released = false;
    return {
      probe,
      release: () => {
        if (released) return;
        released = true;
        this.#inFlight--;
        this.#next();
      },
    };
  }

  /** The store answered (found or not): the breaker closes, the count restarts. */
  succeeded(probe: boolean): void {
    if (probe) this.#probing = false;
    this.#failures = 0;
    if (this.#state !== 'closed') this.#setState('closed');
  }

  /** The store failed (after any retries). */
  failed(probe: boolean): void {
    if (probe) this.#probing = false;
    this.#failures++;
    if (this.#p.breakerFailures > 0 && (probe || this.#failures >= this.#p.breakerFailures)) {
      this.#openUntil = performance.now() + this.#p.breakerCooldownMs;
      this.#setState('open');
    }
  }

  /** Record a GET's latency (for the hedging quantile). */
  observeGet(ms: number): void {
    if (this.#p.hedgeQuantile === undefined) return;
    this.#latencies[this.#latencyAt] = ms;
    this.#latencyAt = (this.#latencyAt + 1) % LATENCY_SAMPLES;
    // Recomputed every 16 samples: sorting 256 numbers per GET would cost more than it saves.
    if (this.#latencyAt % 16 === 0 && this.#latencies.length >= MIN_HEDGE_SAMPLES) {
      const sorted = [...this.#latencies].sort((a, b) => a - b);
      this.#hedgeAfterMs = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * this.#p.hedgeQuantile))];
    }
  }

  /** When to send a hedge for a GET, or undefined (off, or too few samples yet). */
  get hedgeAfterMs(): number | undefined {
    return this.#hedgeAfterMs;
  }

  /** Run a read with retries (and hedging for GETs); `signal` is the call's one deadline. */
  async run<T>(fn: (signal: StopSignal) => Promise<T>, signal: StopSignal, opts: { hedge: boolean; disposeLate: (late: T) => void }): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return opts.hedge && this.#hedgeAfterMs !== undefined ? await this.#hedged(fn, signal, this.#hedgeAfterMs, opts.disposeLate) : await fn(signal);
      } catch (err) {
        if (attempt >= this.#p.retries || signal.aborted || !isRetryable(err)) throw err;
        this.#events?.retry(this.#id);
        const step = this.#p.retryBaseMs * 2 ** attempt;
        await sleep(Math.random() * step, signal);
        if (signal.aborted) throw err;
      }
    }
  }

  async #hedged<T>(fn: (signal: StopSignal) => Promise<T>, signal: StopSignal, afterMs: number, disposeLate: (late: T) => void): Promise<T> {
    const attempts: CallSignal[] = [];
    let winner: CallSignal | undefined;
    let timer: NodeJS.Timeout | undefined;
    const attempt = (): Promise<T> => {
      // Each attempt stops with the call's deadline, or alone when it loses.
      const own = new CallSignal();
      if (signal.aborted) own.abort(signal.reason);
      else signal.addEventListener('abort', () => own.abort(signal.reason), { once: true });
      attempts.push(own);
      return fn(own).then((value) => {
        // The slower attempt's answer is nobody's: release its body.
        if (winner !== undefined) disposeLate(value);
        else winner = own;
        return value;
      });
    };
    const first = attempt();
    const hedge = new Promise<T>((resolve, reject) => {
      timer = setTimeout(() => {
        if (winner !== undefined) return;
        this.#events?.hedge(this.#id);
        attempt().then(resolve, reject);
      }, afterMs);
    });
    try {
      return await Promise.any([first, hedge]);
    } catch (err) {
      throw (err as AggregateError).errors?.[0] ?? err;
    } finally {
      clearTimeout(timer);
      // Only the losers are aborted: the winner's body is still being read.
      for (const a of attempts) if (a !== winner) a.abort();
    }
  }

  /** Whether this call is the half-open probe; throws while the store is to be left alone. */
  #checkBreaker(): boolean {
    if (this.#state === 'closed') return false;
    const retryAfterSec = Math.max(1, Math.ceil((this.#openUntil - performance.now()) / 1000));
    if (this.#state === 'open' && performance.now() >= this.#openUntil) this.#setState('half_open');
    if (this.#state === 'half_open' && !this.#probing) {
      this.#probing = true;
      return true;
    }
    this.#events?.failFast(this.#id, 'breaker');
    throw new StoreUnavailableError(this.#id, `store '${this.#id}' is failing; retry later`, this.#state === 'open' ? retryAfterSec : 1);
  }

  /** Take a slot if one is free and nobody queues for one. */
  #tryAcquire(): boolean {
    const max = this.#p.maxConcurrent;
    if (max > 0 && (this.#inFlight >= max || this.#queue.length > 0)) return false;
    this.#inFlight++;
    return true;
  }

  /** Wait in the queue for a slot (or fail when the queue deadline passes). */
  #queued(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const entry = {
        start: () => {
          clearTimeout(entry.timer);
          this.#inFlight++;
          resolve();
        },
        timer: setTimeout(() => {
          const i = this.#queue.indexOf(entry);
          if (i !== -1) this.#queue.splice(i, 1);
          this.#events?.failFast(this.#id, 'queue');
          reject(new StoreUnavailableError(this.#id, `store '${this.#id}' is busy; retry later`, 1));
        }, this.#p.queueTimeoutMs),
      };
      this.#queue.push(entry);
    });
  }

  #next(): void {
    while (this.#queue.length > 0 && (this.#p.maxConcurrent <= 0 || this.#inFlight < this.#p.maxConcurrent)) this.#queue.shift()!.start();
  }

  #setState(state: BreakerState): void {
    this.#state = state;
    this.#events?.breaker(this.#id, state);
  }
}

function sleep(ms: number, signal: StopSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
