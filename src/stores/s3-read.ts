/**
 * The lean S3 read path: HeadObject and (ranged) GetObject as plain SigV4-signed requests on a
 * keep-alive undici pool. On a cold miss about 40% of the gateway's CPU went to the SDK's
 * per-request machinery (endpoint rule evaluation, the middleware stack, response
 * deserialisation); a read needs none of it. What stays the SDK's own:
 * - the credentials and region: the S3Client's resolved providers, so the default chain
 *   (environment, shared profile, web identity, container and instance metadata) and its
 *   refresh apply unchanged;
 * - writes (PutObject and lib-storage multipart), in `s3.ts`.
 * The endpoint (virtual-host or path style) and the region are resolved once per store. Requests
 * are signed by `sigv4.ts`, a SigV4 signer for reads only, which costs a quarter of the SDK's
 * general one (`@smithy/signature-v4`; the tests check the two sign alike).
 */
import { ReadPool, readErrorBody, type ReadRequest, type ReadResponse } from './http-read.js';
import { ReadSigner, type SigV4Credentials } from './sigv4.js';

/** Where a bucket's objects are reached: one origin, a path prefix, and the Host to sign. */
export interface S3ReadTarget {
  origin: string;
  host: string;
  protocol: 'http:' | 'https:';
  port: number | undefined;
  /** Prefix of every object path (`/bucket` for path style, `` for virtual-host style). */
  basePath: string;
}

// A bucket name that can be a DNS label under TLS: no dots, no upper case (S3's own rule).
const VIRTUAL_HOST_BUCKET_RE = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

/**
 * Resolve where reads go, once. With an endpoint (S3-compatible stores): path style unless
 * `forcePathStyle` is false. Without one (AWS): virtual-host style
 * (`bucket.s3.region.amazonaws.com`), or path style when forced or the name cannot be a host.
 */
export function resolveS3ReadTarget(bucket: string, region: string, endpoint: string | undefined, forcePathStyle: boolean | undefined): S3ReadTarget {
  let url: URL;
  let pathStyle: boolean;
  if (endpoint) {
    url = new URL(endpoint);
    pathStyle = forcePathStyle ?? true;
  } else {
    url = new URL(`https://s3.${region}.amazonaws.com`);
    pathStyle = forcePathStyle === true || !VIRTUAL_HOST_BUCKET_RE.test(bucket);
  }
  const prefix = url.pathname.replace(/\/+$/, '');
  const host = pathStyle ? url.host : `${bucket}.${url.host}`;
  const protocol = url.protocol as 'http:' | 'https:';
  return {
    origin: `${protocol}//${host}`,
    host,
    protocol,
    port: url.port ? Number(url.port) : undefined,
    basePath: pathStyle ? `${prefix}/${encodeURIComponent(bucket)}` : prefix,
  };
}

const UNRESERVED_KEY_RE = /^[A-Za-z0-9\-._~/]*$/;

/** S3's URI encoding of a key: each segment percent-encoded (RFC 3986 unreserved kept), `/` kept. */
export function encodeS3Key(key: string): string {
  // Most keys need no escaping at all: keep them as they are (no split, no per-segment regex).
  if (UNRESERVED_KEY_RE.test(key)) return key;
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

export type S3ReadRequest = ReadRequest;
export type S3ReadResponse = ReadResponse;

/** Credentials as the SDK resolves them. */
export interface S3Credentials extends SigV4Credentials {
  expiration?: Date;
}
type Provider<T> = () => Promise<T>;

export interface S3ReaderOptions {
  target: S3ReadTarget;
  region: string | Provider<string>;
  credentials: S3Credentials | Provider<S3Credentials>;
  maxSockets: number;
  connectTimeoutMs: number;
}

/** Signed HEAD/GET on a keep-alive pool to one bucket's origin. */
export class S3Reader {
  readonly #target: S3ReadTarget;
  readonly #region: string | Provider<string>;
  readonly #credentials: S3Credentials | Provider<S3Credentials>;
  /** Made on first use, once the region is known. */
  #signer: ReadSigner | undefined;
  readonly #pool: ReadPool;

  constructor(options: S3ReaderOptions) {
    this.#target = options.target;
    this.#region = options.region;
    this.#credentials = options.credentials;
    this.#pool = new ReadPool(options.target.origin, { connections: options.maxSockets, connectTimeoutMs: options.connectTimeoutMs });
  }

  /** The request as it will be sent: path and signed headers (exposed for tests). */
  async sign(req: Omit<S3ReadRequest, 'signal'>): Promise<{ path: string; headers: Record<string, string> }> {
    const t = this.#target;
    const path = `${t.basePath}/${encodeS3Key(req.key)}`;
    const signer = (this.#signer ??= new ReadSigner('s3', typeof this.#region === 'string' ? this.#region : await this.#region()));
    const credentials = typeof this.#credentials === 'function' ? await this.#credentials() : this.#credentials;
    const headers = signer.sign(
      {
        method: req.method,
        path,
        host: t.host,
        range: req.range ? `bytes=${req.range.start}-${req.range.end}` : undefined,
        // An empty condition is no condition (as before this signer).
        ifMatch: req.ifMatch || undefined,
        ifNoneMatch: req.ifNoneMatch || undefined,
      },
      credentials,
    );
    return { path, headers };
  }

  async request(req: S3ReadRequest): Promise<S3ReadResponse> {
    const { path, headers } = await this.sign(req);
    return this.#pool.request({ method: req.method, path, headers, signal: req.signal });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/** An S3 error answer, shaped like the SDK's (`name` is S3's Code, `$metadata` the status). */
export class S3ResponseError extends Error {
  readonly $metadata: { httpStatusCode: number };
  readonly Code: string | undefined;

  constructor(status: number, code: string | undefined, message: string | undefined) {
    super(message ?? `S3 answered ${status}${code ? ` ${code}` : ''}`);
    this.name = code ?? `Http${status}`;
    this.Code = code;
    this.$metadata = { httpStatusCode: status };
  }
}

/** Read an error answer's body (bounded) into an S3ResponseError; the body is consumed. */
export async function readS3Error(res: S3ReadResponse): Promise<S3ResponseError> {
  const { code, message } = await readErrorBody(res);
  return new S3ResponseError(res.status, code, message);
}
