/**
 * S3 and S3-compatible stores. Reads (HEAD, GET, ranged GET) go through the lean read path
 * (`s3-read.ts`: SDK signer and credentials, undici pool); writes, deletes and the bucket check
 * stay on @aws-sdk/client-s3 and lib-storage.
 *
 * For non-AWS endpoints (s3rver, MinIO, R2, …) the client uses path-style addressing and
 * `WHEN_REQUIRED` checksums: with the SDK's default CRC32 checksums, the aws-chunked framing is
 * stored by several S3-compatible servers as object bytes.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { statusKind, StoreError, type StoreOp } from '../errors.js';
import type { S3StoreConfig } from '../config/schema.js';
import { abortSignalOf } from './abort.js';
import { collectExact } from './collect.js';
import { checkContentRange } from './content-range.js';
import { header, metaOf, READ_CONNECT_TIMEOUT_MS } from './http-read.js';
import { readS3Error, resolveS3ReadTarget, S3Reader, type S3ReadResponse } from './s3-read.js';
import type { GetOptions, GetResult, ObjectMeta, ObjectStore, PutOptions, PutResult, Revalidation, StoreRequestOptions } from './types.js';

/** Bodies up to this size with a known length go in one PutObject; larger ones use multipart. */
export const SINGLE_PUT_MAX_BYTES = 8 * 2 ** 20;
/** Multipart part size and how many parts are in flight: bounds upload memory to ~40 MiB. */
export const MULTIPART_PART_BYTES = 8 * 2 ** 20;
export const MULTIPART_QUEUE_SIZE = 4;
/** How long a confirmed bucket is trusted when a HEAD says 404 (HEAD has no error body). */
const BUCKET_CHECK_TTL_MS = 30_000;

/** Add a scheme to an endpoint given without one: `localhost:9000` is http only with allow_http. */
export function resolveS3Endpoint(endpoint: string, allowHttp: boolean): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `${allowHttp ? 'http' : 'https'}://${endpoint}`;
  const url = new URL(withScheme);
  if (url.protocol === 'http:' && !allowHttp) {
    throw new Error(`endpoint ${endpoint} is plain http; set allow_http: true to allow it`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`endpoint ${endpoint} must be http or https`);
  return withScheme.replace(/\/+$/, '');
}

/** Create an S3 store. Throws a plain Error on a bad endpoint (reported at startup). */
export function createS3Store(id: string, config: S3StoreConfig): ObjectStore {
  return new S3Store(id, config);
}

class S3Store implements ObjectStore {
  readonly type = 's3';
  readonly id: string;
  readonly #client: S3Client;
  readonly #reader: S3Reader;
  readonly #bucket: string;
  #bucketConfirmedAt = -Infinity;

  constructor(id: string, config: S3StoreConfig) {
    this.id = id;
    this.#bucket = config.bucket;
    const agentOptions = { keepAlive: true, maxSockets: config.max_sockets, keepAliveMsecs: 1000 };
    const clientConfig: S3ClientConfig = {
      region: config.region,
      // Sized for concurrency: the SDK's default of 50 sockets queues requests under load.
      requestHandler: {
        httpAgent: new HttpAgent(agentOptions),
        httpsAgent: new HttpsAgent(agentOptions),
        connectionTimeout: READ_CONNECT_TIMEOUT_MS,
      },
    };
    if (config.endpoint) {
      clientConfig.endpoint = resolveS3Endpoint(config.endpoint, config.allow_http);
      clientConfig.forcePathStyle = config.force_path_style ?? true;
      clientConfig.requestChecksumCalculation = 'WHEN_REQUIRED';
      clientConfig.responseChecksumValidation = 'WHEN_REQUIRED';
    } else if (config.force_path_style !== undefined) {
      clientConfig.forcePathStyle = config.force_path_style;
    }
    if (config.access_key && config.secret_key) {
      clientConfig.credentials = { accessKeyId: config.access_key, secretAccessKey: config.secret_key };
    }
    this.#client = new S3Client(clientConfig);
    // The client's resolved providers: the default credential chain with its refresh, and the region.
    this.#reader = new S3Reader({
      target: resolveS3ReadTarget(config.bucket, config.region, clientConfig.endpoint as string | undefined, clientConfig.forcePathStyle),
      region: this.#client.config.region,
      credentials: this.#client.config.credentials,
      maxSockets: config.max_sockets,
      connectTimeoutMs: READ_CONNECT_TIMEOUT_MS,
    });
  }

  async head(key: string, opts: StoreRequestOptions = {}): Promise<ObjectMeta | undefined> {
    const res = await this.#read('head', { method: 'HEAD', key, signal: opts.signal });
    res.body.resume();
    if (res.status === 404) {
      // HEAD has no error body: a missing bucket must not pass for a missing key.
      await this.#confirmBucket(opts);
      return undefined;
    }
    if (res.status !== 200) throw new StoreError(this.id, 'head', new Error(`HeadObject answered ${res.status}`), statusKind(res.status));
    return metaOf(res, Number(res.headers['content-length'] ?? 0));
  }

  // https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html: 304 while If-None-Match holds.
  async revalidate(key: string, etag: string, opts: StoreRequestOptions = {}): Promise<Revalidation> {
    const res = await this.#read('head', { method: 'HEAD', key, ifNoneMatch: etag, signal: opts.signal });
    res.body.resume();
    if (res.status === 304) return { kind: 'not_modified' };
    if (res.status === 404) {
      await this.#confirmBucket(opts);
      return { kind: 'gone' };
    }
    if (res.status !== 200) throw new StoreError(this.id, 'head', new Error(`HeadObject answered ${res.status}`), statusKind(res.status));
    const meta = metaOf(res, Number(res.headers['content-length'] ?? 0));
    // A store that ignores the condition answers 200 for the same version.
    return meta.etag === etag ? { kind: 'not_modified' } : { kind: 'modified', meta };
  }

  async get(key: string, opts: GetOptions = {}): Promise<GetResult | undefined> {
    const range = opts.range;
    const res = await this.#read('get', { method: 'GET', key, range, ifMatch: opts.ifMatch, signal: opts.signal });
    if (res.status !== 200 && res.status !== 206) {
      const err = await readS3Error(res);
      if (isNotFound(err)) return undefined;
      throw new StoreError(this.id, 'get', err, s3ErrorKind(err) ?? statusKind(res.status));
    }
    const body = res.body;
    let size = Number(res.headers['content-length'] ?? 0);
    if (range) size = checkContentRange(header(res, 'content-range'), range, body, this.id);
    const meta = metaOf(res, size);
    return range ? { meta, body, range } : { meta, body };
  }

  /**
   * Send a read; a failure to get any answer (connect, reset, abort) is a StoreError whose kind
   * errors.ts reads from undici's error.
   */
  async #read(op: StoreOp, req: Parameters<S3Reader['request']>[0]): Promise<S3ReadResponse> {
    try {
      return await this.#reader.request(req);
    } catch (err) {
      throw new StoreError(this.id, op, err);
    }
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const common = {
      Bucket: this.#bucket,
      Key: key,
      ...(opts.contentType ? { ContentType: opts.contentType } : {}),
    };
    try {
      if (opts.contentLength !== undefined && opts.contentLength <= SINGLE_PUT_MAX_BYTES) {
        // Collect first: the SDK can then retry, and a client that gives up halfway never
        // leaves a truncated object (some S3-compatible stores commit a cut-off PutObject).
        const bytes = await collectExact(body, opts.contentLength);
        const out = await this.#client.send(
          new PutObjectCommand({ ...common, Body: bytes, ContentLength: bytes.length }),
          sendOpts(opts),
        );
        return { etag: out.ETag, lastModified: undefined };
      }
      // Multipart with a bounded part size and queue; on failure lib-storage aborts the upload
      // (leavePartsOnError: false), so no orphaned parts are left behind.
      const upload = new Upload({
        client: this.#client,
        params: { ...common, Body: body },
        partSize: MULTIPART_PART_BYTES,
        queueSize: MULTIPART_QUEUE_SIZE,
        leavePartsOnError: false,
      });
      const onAbort = () => void upload.abort().catch(() => {});
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const out = await upload.done();
        return { etag: out.ETag, lastModified: undefined };
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
    } catch (err) {
      body.destroy();
      throw new StoreError(this.id, 'put', err);
    }
  }

  async delete(key: string, opts: StoreRequestOptions = {}): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }), sendOpts(opts));
    } catch (err) {
      if (isNotFound(err)) return;
      throw new StoreError(this.id, 'delete', err);
    }
  }

  async close(): Promise<void> {
    this.#client.destroy();
    await this.#reader.close();
  }

  /**
   * A HEAD 404 cannot tell a missing key from a missing bucket, so confirm the bucket (at most
   * every BUCKET_CHECK_TTL_MS): a missing bucket is a misconfiguration, never "not found".
   */
  async #confirmBucket(opts: StoreRequestOptions): Promise<void> {
    const now = performance.now();
    if (now - this.#bucketConfirmedAt < BUCKET_CHECK_TTL_MS) return;
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }), sendOpts(opts));
      this.#bucketConfirmedAt = now;
    } catch (err) {
      throw new StoreError(this.id, 'head', err, isNotFound(err) ? 'no_such_bucket' : s3ErrorKind(err));
    }
  }

}

function sendOpts(opts: StoreRequestOptions): { abortSignal?: AbortSignal } {
  return opts.signal ? { abortSignal: abortSignalOf(opts.signal) } : {};
}

/** Only a missing key is "absent": a missing bucket is a misconfiguration and must surface. */
function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; Code?: string };
  if (e?.name === 'NoSuchBucket' || e?.Code === 'NoSuchBucket') return false;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

function s3ErrorKind(err: unknown): string | undefined {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (e?.name === 'AccessDenied' || e?.$metadata?.httpStatusCode === 403) return 'access_denied';
  if (e?.name === 'NoSuchBucket') return 'no_such_bucket';
  return undefined;
}
