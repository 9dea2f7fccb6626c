/**
 * Signals for APIs that take only a real AbortSignal: the AWS and Azure SDKs, Node's pipeline.
 * The lean read paths hand a store call's signal to undici as it is (undici needs only
 * `aborted`, `reason` and the abort listeners), so only writes, deletes and SDK HEADs pay for this.
 */
import type { StopSignal } from './types.js';

/** `signal` itself when it is an AbortSignal; otherwise a new AbortSignal that aborts with it. */
export function abortSignalOf(signal: StopSignal): AbortSignal {
  if (signal instanceof AbortSignal) return signal;
  const controller = new AbortController();
  if (signal.aborted) controller.abort(signal.reason);
  else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  return controller.signal;
}
