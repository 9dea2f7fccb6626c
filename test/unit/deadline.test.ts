/**
 * Store-call deadlines (core/deadline.ts): the call's CallSignal aborts with a StoreTimeoutError
 * when the deadline passes, the caller's promise rejects then even if the call ignores its
 * signal, and a late answer is handed to `disposeLate`. abortSignalOf (stores/abort.ts) gives the
 * SDKs a real AbortSignal that follows a CallSignal.
 */
import { describe, expect, it } from 'vitest';
import { StoreTimeoutError } from '../../src/errors.js';
import { CallSignal, withDeadline } from '../../src/core/deadline.js';
import { abortSignalOf } from '../../src/stores/abort.js';
import type { StopSignal } from '../../src/stores/types.js';

describe('CallSignal', () => {
  it('calls each listener still added once, with the reason set, and none added after', () => {
    const s = new CallSignal();
    const calls: string[] = [];
    const a = () => calls.push(`a:${String(s.reason)}`);
    const b = () => calls.push('b');
    s.addEventListener('abort', a);
    s.addEventListener('abort', b);
    s.removeEventListener('abort', b);
    s.abort('why');
    s.abort('again');
    s.addEventListener('abort', () => calls.push('late'));
    expect(s.aborted).toBe(true);
    expect(s.reason).toBe('why');
    expect(calls).toEqual(['a:why']);
  });

  it('gives APIs that want one a real AbortSignal that aborts with it', () => {
    const s = new CallSignal();
    const dom = abortSignalOf(s);
    expect(dom).toBeInstanceOf(AbortSignal);
    expect(dom.aborted).toBe(false);
    s.abort(new Error('deadline'));
    expect(dom.aborted).toBe(true);
    expect((dom.reason as Error).message).toBe('deadline');
    const gone = new CallSignal();
    gone.abort('before');
    expect(abortSignalOf(gone).reason).toBe('before');
    const real = new AbortController().signal;
    expect(abortSignalOf(real)).toBe(real);
  });
});

describe('withDeadline', () => {
  it('aborts the call and rejects on time when the call ignores its signal; a late answer is disposed', async () => {
    let seen: StopSignal | undefined;
    let answer!: (v: string) => void;
    const disposed: string[] = [];
    const call = withDeadline(
      20,
      'probe',
      (signal) => {
        seen = signal;
        return new Promise<string>((r) => (answer = r));
      },
      (late) => disposed.push(late),
    );
    const err = await call.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreTimeoutError);
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBe(err);
    answer('late body');
    await new Promise((r) => setImmediate(r));
    expect(disposed).toEqual(['late body']);
  });

  it('answers with the call and leaves its signal alone once it has', async () => {
    let seen: StopSignal | undefined;
    await expect(withDeadline(1000, 'probe', async (signal) => ((seen = signal), 'ok'))).resolves.toBe('ok');
    expect(seen?.aborted).toBe(false);
  });
});
