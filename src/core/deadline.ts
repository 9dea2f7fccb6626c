/**
 * Deadlines for store calls: nothing the gateway waits on can hang. A store must answer within
 * `storeTimeoutMs`, and a body must keep moving: no gap between chunks longer than the idle timeout.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { StoreTimeoutError } from '../errors.js';
import type { StopSignal } from '../stores/types.js';

/**
 * The signal of one store call, with AbortSignal's shape (`StopSignal`) in a plain class. On
 * Node 20 a real AbortSignal is an EventTarget whose construction defines its symbol-keyed
 * fields in V8's runtime and leaves every load from it and its listener calls megamorphic:
 * about 31,000 instructions per store call with undici's listener on it, 7 % of a 4 KiB cold
 * miss (callgrind, `npm run bench:instructions -- cold`; on Node 24 it is cheap). This one
 * costs a few hundred. undici takes it as it is; APIs that want a real AbortSignal get one that
 * follows it (stores/abort.ts).
 */
export class CallSignal implements StopSignal {
  aborted = false;
  reason: unknown = undefined;
  #listeners: (() => void)[] | undefined;

  /** Like EventTarget's: a listener added after the abort is never called. */
  addEventListener(type: 'abort', listener: () => void): void {
    if (type === 'abort' && !this.aborted) (this.#listeners ??= []).push(listener);
  }

  removeEventListener(type: 'abort', listener: () => void): void {
    const listeners = this.#listeners;
    const i = type === 'abort' && listeners ? listeners.indexOf(listener) : -1;
    if (i !== -1) listeners!.splice(i, 1);
  }

  /** Abort once, calling each listener once; `reason` defaults as undici's does (it sees undefined). */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }
}

/**
 * Run `fn` with a signal that aborts after `ms`. The deadline holds even if `fn` ignores the
 * signal: the returned promise rejects on time, and a result that arrives late is handed to
 * `disposeLate` (to destroy a body that nobody will read). The timer stops once `fn` settles.
 */
export function withDeadline<T>(
  ms: number,
  what: string,
  fn: (signal: StopSignal) => Promise<T>,
  disposeLate?: (late: T) => void,
): Promise<T> {
  const signal = new CallSignal();
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      const reason = new StoreTimeoutError(`${what} took longer than ${ms} ms`);
      signal.abort(reason);
      reject(reason);
    }, ms);
    fn(signal).then(
      (value) => {
        clearTimeout(timer);
        if (settled) disposeLate?.(value);
        else resolve(value);
        settled = true;
      },
      (err: unknown) => {
        clearTimeout(timer);
        // SDKs report an abort as their own AbortError; the deadline is the real cause.
        if (!settled) reject(signal.aborted ? signal.reason : err);
        settled = true;
      },
    );
  });
}

/** A timer that fires when `touch()` has not been called for `ms`. */
export class IdleTimer {
  #timer: NodeJS.Timeout | undefined;

  constructor(ms: number, onIdle: () => void) {
    this.#timer = setTimeout(onIdle, ms);
  }

  touch(): void {
    this.#timer?.refresh();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Pass a store body through, failing it with a StoreTimeoutError if it stalls for `ms`.
 * Destroying the returned stream destroys the source too (releasing the store's socket).
 */
export function idleGuard(source: Readable, ms: number, what: string): Readable {
  const timer = new IdleTimer(ms, () => guard.destroy(new StoreTimeoutError(`${what} stalled for ${ms} ms`)));
  const guard = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      timer.touch();
      cb(null, chunk);
    },
    destroy(err, cb) {
      timer.stop();
      source.destroy();
      cb(err);
    },
    flush(cb) {
      timer.stop();
      cb();
    },
  });
  source.on('error', (err) => guard.destroy(err));
  // A body may fail (its idle deadline, a reset socket) after its request is over and nobody
  // reads it any more; that must end the body, never the process. Whoever reads it (pipeline,
  // finished) still sees the error through its own listener.
  guard.on('error', ignoreLateError);
  source.pipe(guard);
  return guard;
}

function ignoreLateError(): void {}
