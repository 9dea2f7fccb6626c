/**
 * The stream a PUT body passes through on its way to the store: it counts bytes, fails as soon
 * as a limit is crossed, notices a stalled upload, keeps the first bytes (to sniff a type), and
 * hands every chunk to the write-through sink (paced by it, so the cache never buffers ahead).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { GatewayError, StoreTimeoutError } from '../errors.js';
import { SNIFF_BYTES } from './content-type.js';
import { IdleTimer } from './deadline.js';

export interface UploadTeeOptions {
  /** Most bytes accepted; crossing it fails the upload with GW_ERR_PAYLOAD_TOO_LARGE. */
  maxBytes: number;
  /** The announced length, when there is one. */
  expectedBytes?: number | undefined;
  /** Fail when no byte moves for this long (a stalled client or store). */
  idleTimeoutMs: number;
  /** Where the write-through copy goes; its failures never fail the upload. */
  sink?: { write(chunk: Buffer): Promise<void>; abort(): void } | undefined;
}

export class UploadTee extends Transform {
  bytes = 0;
  /** The error that stopped the upload on our side (limit or stall), if any. */
  limitError: Error | undefined;
  readonly #o: UploadTeeOptions;
  readonly #head = Buffer.allocUnsafe(SNIFF_BYTES);
  #headBytes = 0;
  /** Started when the store first reads: time spent before that (the existence HEAD) is ours. */
  #idle: IdleTimer | undefined;

  constructor(options: UploadTeeOptions) {
    super();
    this.#o = options;
  }

  override _read(size: number): void {
    this.#idle ??= new IdleTimer(this.#o.idleTimeoutMs, () => this.#fail(new StoreTimeoutError(`upload stalled for ${this.#o.idleTimeoutMs} ms`)));
    super._read(size);
  }

  /** The body's first bytes (up to SNIFF_BYTES). */
  get head(): Buffer {
    return this.#head.subarray(0, this.#headBytes);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#idle?.touch();
    const next = this.bytes + chunk.length;
    if (next > this.#o.maxBytes) {
      this.#fail(new GatewayError('GW_ERR_PAYLOAD_TOO_LARGE', `body exceeds the limit of ${this.#o.maxBytes} bytes`));
      cb();
      return;
    }
    if (this.#headBytes < SNIFF_BYTES) this.#headBytes += chunk.copy(this.#head, this.#headBytes, 0, SNIFF_BYTES - this.#headBytes);
    this.bytes = next;
    const sink = this.#o.sink;
    if (!sink) {
      cb(null, chunk);
      return;
    }
    sink.write(chunk).then(
      () => cb(null, chunk),
      () => {
        sink.abort();
        cb(null, chunk);
      },
    );
  }

  override _flush(cb: TransformCallback): void {
    this.#idle?.stop();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#idle?.stop();
    if (err) this.#o.sink?.abort();
    cb(err);
  }

  #fail(err: Error): void {
    this.limitError ??= err;
    this.destroy(err);
  }
}
