/**
 * Deadlines for store calls: nothing the gateway waits on can hang. A store must answer within
 * `storeTimeoutMs`, and a body must keep moving: no gap between chunks longer than the idle timeout.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { StoreTimeoutError } from '../errors.js';

/**
 * Run `fn` with a signal that aborts after `ms`. The deadline holds even if `fn` ignores the
 * signal: the returned promise rejects on time, and a result that arrives late is handed to
 * `disposeLate` (to destroy a body that nobody will read). The timer stops once `fn` settles.
 */
export function withDeadline<T>(
  ms: number,
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
  disposeLate?: (late: T) => void,
): Promise<T> {
  const controller = new AbortController();
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      const reason = new StoreTimeoutError(`${what} took longer than ${ms} ms`);
      controller.abort(reason);
      reject(reason);
    }, ms);
    fn(controller.signal).then(
      (value) => {
        clearTimeout(timer);
        if (settled) disposeLate?.(value);
        else resolve(value);
        settled = true;
      },
      (err: unknown) => {
        clearTimeout(timer);
        // SDKs report an abort as their own AbortError; the deadline is the real cause.
        if (!settled) reject(controller.signal.aborted ? controller.signal.reason : err);
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
