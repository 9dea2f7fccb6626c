/**
 * What the lean read paths (`s3-read.ts`, `azure-read.ts`) share: a keep-alive undici pool to one
 * origin made on first use, the shape of an answer, a bounded reader for error bodies, and the
 * reading of an answer's headers into ObjectMeta and of its status into a StoreError kind.
 */
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import type { ObjectMeta, StopSignal } from './types.js';

/** How long a read waits for a TCP (and TLS) connection to a store. */
export const READ_CONNECT_TIMEOUT_MS = 5_000;
/** Most bytes of an error body read for its `<Code>`; the rest is dropped. */
const ERROR_BODY_MAX_BYTES = 16 * 1024;

/** A read of one object: HEAD or GET, optionally ranged or conditional. */
export interface ReadRequest {
  method: 'GET' | 'HEAD';
  key: string;
  range?: { start: number; end: number } | undefined;
  /** Only answer for this ETag (a 412 otherwise). */
  ifMatch?: string | undefined;
  /** Answer 304 while the ETag is still this one. */
  ifNoneMatch?: string | undefined;
  signal?: StopSignal | undefined;
}

/** A store's answer to a read. The caller must consume or destroy `body` on every path. */
export interface ReadResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

export interface ReadPoolOptions {
  connections: number;
  connectTimeoutMs: number;
  /** Extra trusted certificates for an https origin (PEM). */
  ca?: string | Buffer | undefined;
}

/** Keep-alive connections to one origin, made on first use. */
export class ReadPool {
  readonly #origin: string;
  readonly #options: Pool.Options;
  #pool: Pool | undefined;

  constructor(origin: string, options: ReadPoolOptions) {
    this.#origin = origin;
    this.#options = {
      connections: options.connections,
      connect: { timeout: options.connectTimeoutMs, ...(options.ca ? { ca: options.ca } : {}) },
      // The gateway's own deadlines bound every call.
      headersTimeout: 0,
      bodyTimeout: 0,
    };
  }

  async request(req: { method: 'GET' | 'HEAD'; path: string; headers: Record<string, string>; signal?: StopSignal | undefined }): Promise<ReadResponse> {
    // Made on first use, and again after close(): like an SDK client, a closed store only
    // drops its connections.
    this.#pool ??= new Pool(this.#origin, this.#options);
    const res = await this.#pool.request({
      method: req.method,
      path: req.path,
      headers: req.headers,
      // undici closes the connection after every HEAD unless told otherwise (for servers that
      // send a body with it); S3 and Blob storage do not, and a new connection per HEAD costs
      // a handshake and a socket each.
      reset: false,
      // Any object with `aborted`, `reason` and the abort listeners will do for undici
      // (lib/api/api-request.js, lib/core/util.js addAbortListener); its types name only
      // AbortSignal and EventEmitter.
      ...(req.signal ? { signal: req.signal as unknown as AbortSignal } : {}),
    });
    // The caller may destroy a body it never read (a changed ETag, a refused range, a client
    // gone). Once undici holds the whole answer, that destroy emits an abort error which, with
    // nobody listening, would be an uncaught exception and crash the process; undici only
    // silences it while the request is in flight. Readers that consume the body still get every
    // error through their own listener, iterator or pipeline.
    res.body.on('error', ignore);
    return { status: res.statusCode, headers: res.headers, body: res.body };
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.destroy();
  }
}

function ignore(): void {}

/** The first value of a response header (undici gives lower-case names). */
export function header(res: ReadResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** An object's metadata from a successful answer's headers; `size` as the caller worked it out. */
export function metaOf(res: ReadResponse, size: number): ObjectMeta {
  const lm = header(res, 'last-modified');
  return { size, etag: header(res, 'etag'), lastModified: lm ? new Date(lm) : undefined, contentType: header(res, 'content-type') };
}

/**
 * Consume an error answer's body (bounded) and read the `<Code>` and `<Message>` of its XML,
 * the shape both S3 and Azure Blob use. An empty (HEAD) or broken body gives neither.
 */
export async function readErrorBody(res: ReadResponse): Promise<{ code: string | undefined; message: string | undefined }> {
  let text = '';
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (text.length < ERROR_BODY_MAX_BYTES) text += chunk.toString('utf8');
    }
  } catch {
    // A broken error body still leaves the status to go by.
  }
  return {
    code: /<Code>([^<]{1,100})<\/Code>/.exec(text)?.[1],
    message: /<Message>([^<]{1,300})<\/Message>/.exec(text)?.[1],
  };
}
