/**
 * The stream a PUT body passes through on its way to the store: it counts bytes, fails as soon
 * as a limit is crossed, notices a stalled upload, and keeps a copy of bodies small enough to
 * cache write-through (one copy, into a buffer of the announced size when it is known).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { GatewayError, StoreTimeoutError } from '../errors.js';
import { IdleTimer } from './deadline.js';

export interface UploadTeeOptions {
  /** Most bytes accepted; crossing it fails the upload with GW_ERR_PAYLOAD_TOO_LARGE. */
  maxBytes: number;
  /** Bodies up to this many bytes are kept for the cache; 0 keeps nothing. */
  keepUpTo: number;
  /** The announced length, when there is one (lets the copy go into one exact buffer). */
  expectedBytes?: number | undefined;
  /** Fail when no byte moves for this long (a stalled client or store). */
  idleTimeoutMs: number;
}

export class UploadTee extends Transform {
  bytes = 0;
  /** The error that stopped the upload on our side (limit or stall), if any. */
  limitError: Error | undefined;
  readonly #o: UploadTeeOptions;
  #kept: Buffer[] | undefined = [];
  #exact: Buffer | undefined;
  readonly #idle: IdleTimer;

  constructor(options: UploadTeeOptions) {
    super();
    this.#o = options;
    const e = options.expectedBytes;
    if (options.keepUpTo <= 0 || (e !== undefined && e > options.keepUpTo)) this.#kept = undefined;
    else if (e !== undefined) this.#exact = Buffer.allocUnsafe(e);
    this.#idle = new IdleTimer(options.idleTimeoutMs, () => this.#fail(new StoreTimeoutError(`upload stalled for ${options.idleTimeoutMs} ms`)));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#idle.touch();
    const next = this.bytes + chunk.length;
    if (next > this.#o.maxBytes) {
      this.#fail(new GatewayError('GW_ERR_PAYLOAD_TOO_LARGE', `body exceeds the limit of ${this.#o.maxBytes} bytes`));
      cb();
      return;
    }
    if (this.#exact) {
      if (next <= this.#exact.length) chunk.copy(this.#exact, this.bytes);
    } else if (this.#kept) {
      if (next <= this.#o.keepUpTo) this.#kept.push(chunk);
      else this.#kept = undefined; // too large to cache: stop keeping, free what was kept
    }
    this.bytes = next;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#idle.stop();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#idle.stop();
    // autoDestroy also lands here after a clean end: keep the body then, it is the cache entry.
    if (err) {
      this.#kept = undefined;
      this.#exact = undefined;
    }
    cb(err);
  }

  /** The whole body, if it was kept and is complete. */
  keptBody(): Buffer | undefined {
    if (this.#exact) return this.bytes === this.#exact.length ? this.#exact : undefined;
    return this.#kept ? Buffer.concat(this.#kept, this.bytes) : undefined;
  }

  #fail(err: Error): void {
    this.limitError ??= err;
    this.destroy(err);
  }
}
