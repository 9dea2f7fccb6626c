/**
 * The lean S3 read path: HeadObject and (ranged) GetObject as plain SigV4-signed requests on a
 * keep-alive undici pool. On a cold miss about 40% of the gateway's CPU went to the SDK's
 * per-request machinery (endpoint rule evaluation, the middleware stack, response
 * deserialisation); a read needs none of it. What stays the SDK's own:
 * - the signer (`@smithy/signature-v4`, the one the SDK signs with; it caches signing keys);
 * - the credentials and region: the S3Client's resolved providers, so the default chain
 *   (environment, shared profile, web identity, container and instance metadata) and its
 *   refresh apply unchanged;
 * - writes (PutObject and lib-storage multipart), in `s3.ts`.
 * The endpoint (virtual-host or path style) is resolved once per store.
 */
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { ReadPool, readErrorBody, type ReadRequest, type ReadResponse } from './http-read.js';

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
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
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
  /** The signer's view of the target, built once: hostname without the port, and the port. */
  readonly #signTarget: { protocol: string; hostname: string; port?: number };
  readonly #signer: SignatureV4;
  readonly #pool: ReadPool;

  constructor(options: S3ReaderOptions) {
    this.#target = options.target;
    const t = options.target;
    this.#signTarget = { protocol: t.protocol, hostname: t.host.replace(/:\d+$/, ''), ...(t.port !== undefined ? { port: t.port } : {}) };
    this.#signer = new SignatureV4({
      service: 's3',
      region: options.region,
      credentials: options.credentials,
      sha256: Hash.bind(null, 'sha256'),
      // S3 signs the path as sent (already encoded once), unlike other services.
      uriEscapePath: false,
      applyChecksum: false,
    });
    this.#pool = new ReadPool(options.target.origin, { connections: options.maxSockets, connectTimeoutMs: options.connectTimeoutMs });
  }

  /** The request as it will be sent: path and signed headers (exposed for tests). */
  async sign(req: Omit<S3ReadRequest, 'signal'>): Promise<{ path: string; headers: Record<string, string> }> {
    const t = this.#target;
    const path = `${t.basePath}/${encodeS3Key(req.key)}`;
    const headers: Record<string, string> = { host: t.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
    if (req.range) headers.range = `bytes=${req.range.start}-${req.range.end}`;
    if (req.ifMatch) headers['if-match'] = req.ifMatch;
    if (req.ifNoneMatch) headers['if-none-match'] = req.ifNoneMatch;
    const signed = await this.#signer.sign({
      ...this.#signTarget,
      method: req.method,
      path,
      query: {},
      headers,
    });
    return { path, headers: signed.headers };
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
