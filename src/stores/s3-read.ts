/**
 * The lean S3 read path: HeadObject and (ranged) GetObject as plain SigV4-signed requests on a
 * keep-alive undici pool. On a cold miss about 40% of the gateway's CPU went to the SDK's
 * per-request machinery (endpoint rule evaluation, the middleware stack, response
 * deserialisation); a read needs none of it. What stays the SDK's own:
 * - the credentials and region: the S3Client's resolved providers, so the default chain
 *   (environment, shared profile, web identity, container and instance metadata) and its
 *   refresh apply unchanged (an answer is reused until the SDK's own refresh window, so a read
 *   that has them is signed and sent without waiting on a promise);
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

/**
 * Resolved credentials are reused until this long before they expire, the window in which the
 * SDK's own memoized provider (@smithy/core's memoizeIdentityProvider) fetches new ones; ones
 * without an expiry (static keys, the environment) are reused for good, as the SDK does.
 */
export const CREDENTIALS_REFRESH_MS = 5 * 60_000;

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
  /** The provider's last answer (see CREDENTIALS_REFRESH_MS). */
  #resolved: S3Credentials | undefined;
  readonly #pool: ReadPool;

  constructor(options: S3ReaderOptions) {
    this.#target = options.target;
    this.#region = options.region;
    this.#credentials = options.credentials;
    this.#pool = new ReadPool(options.target.origin, { connections: options.maxSockets, connectTimeoutMs: options.connectTimeoutMs });
  }

  /** The request as it will be sent: path and signed headers (exposed for tests). */
  async sign(req: Omit<S3ReadRequest, 'signal'>): Promise<{ path: string; headers: Record<string, string> }> {
    this.#signer ??= new ReadSigner('s3', typeof this.#region === 'string' ? this.#region : await this.#region());
    const credentials = this.#current() ?? (this.#resolved = typeof this.#credentials === 'function' ? await this.#credentials() : this.#credentials);
    return this.#signed(req, this.#signer, credentials);
  }

  /**
   * Send a read. Once the region and current credentials are known, the request is signed and
   * handed to the pool at once: no await per request before it is sent (each costs a
   * microtask and a promise; a cold miss has a dozen).
   */
  request(req: S3ReadRequest): Promise<S3ReadResponse> {
    const signer = this.#signer;
    const credentials = this.#current();
    if (signer === undefined || credentials === undefined) return this.sign(req).then((s) => this.#send(req, s));
    try {
      return this.#send(req, this.#signed(req, signer, credentials));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The credentials last resolved, while they are not due for a refresh. */
  #current(): S3Credentials | undefined {
    const c = this.#resolved;
    if (c === undefined || (c.expiration !== undefined && c.expiration.getTime() - CREDENTIALS_REFRESH_MS <= Date.now())) return undefined;
    return c;
  }

  #send(req: S3ReadRequest, signed: { path: string; headers: Record<string, string> }): Promise<S3ReadResponse> {
    return this.#pool.request({ method: req.method, path: signed.path, headers: signed.headers, signal: req.signal });
  }

  #signed(req: Omit<S3ReadRequest, 'signal'>, signer: ReadSigner, credentials: S3Credentials): { path: string; headers: Record<string, string> } {
    const t = this.#target;
    const path = `${t.basePath}/${encodeS3Key(req.key)}`;
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
