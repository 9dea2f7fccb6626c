/**
 * Azure Blob Storage containers (and Azurite in tests). Reads (Get Blob Properties, Get Blob,
 * ranged and conditional) go through the lean read path (`azure-read.ts`: undici pool, the SDK's
 * parsed URL and credential); writes and deletes stay on @azure/storage-blob.
 *
 * Three ways to authenticate: a connection string (account key), `account_url` with a
 * `sas_token`, or `account_url` alone with `DefaultAzureCredential` from @azure/identity
 * (managed identity, AKS workload identity, AZURE_* environment variables, Azure CLI), so a pod
 * or VM needs no static key.
 */
import type { Readable } from 'node:stream';
import { BlobServiceClient, type ContainerClient, type StoragePipelineOptions } from '@azure/storage-blob';
import { statusKind, StoreError, type StoreOp } from '../errors.js';
import type { AzureStoreConfig } from '../config/schema.js';
import { AzureReader, type BlobReadRequest } from './azure-read.js';
import type { TokenCredential } from './azure-token.js';
import { abortSignalOf } from './abort.js';
import { collectExact } from './collect.js';
import { checkContentRange } from './content-range.js';
import { header, metaOf, readErrorBody, type ReadResponse } from './http-read.js';
import type { GetOptions, GetResult, ObjectMeta, ObjectStore, PutOptions, PutResult, Revalidation, StoreRequestOptions } from './types.js';

export type { TokenCredential } from './azure-token.js';

/** Block size and parallelism for streamed uploads: bounds upload memory to ~32 MiB. */
export const AZURE_UPLOAD_BLOCK_BYTES = 8 * 2 ** 20;
export const AZURE_UPLOAD_CONCURRENCY = 4;
/** Bodies up to this size with a known length go in one Put Blob. */
export const AZURE_SINGLE_PUT_MAX_BYTES = 8 * 2 ** 20;

export interface AzureStoreOptions {
  /** Per-try deadline the SDK enforces on writes and deletes; the core adds its own deadlines on top. */
  tryTimeoutMs?: number;
  /**
   * The token credential for `account_url` without `sas_token`; by default a
   * `DefaultAzureCredential`, created only when such a store is configured.
   */
  credential?: () => TokenCredential | Promise<TokenCredential>;
  /** Extra trusted certificates (PEM) for the reads' TLS: a test server's own certificate. */
  readCa?: string | Buffer;
}

/** How a store config authenticates (config/load.ts guarantees exactly one). */
export function azureAuthMode(config: AzureStoreConfig): 'connection_string' | 'sas_token' | 'default_credential' {
  if (config.connection_string) return 'connection_string';
  return config.sas_token ? 'sas_token' : 'default_credential';
}

/** Create an Azure Blob store on one container. */
export function createAzureStore(id: string, config: AzureStoreConfig, options: AzureStoreOptions = {}): ObjectStore {
  // Writes and deletes, which the store guard never retries, keep the SDK's default retries.
  // Reads make one try on the lean path: the guard (core/store-guard.ts) retries them within
  // store_timeout, and its deadlines bound each one.
  const writes: StoragePipelineOptions = { retryOptions: options.tryTimeoutMs ? { tryTimeoutInMs: options.tryTimeoutMs } : {} };
  const container = (pipeline: StoragePipelineOptions): ContainerClient => {
    switch (azureAuthMode(config)) {
      case 'connection_string':
        return BlobServiceClient.fromConnectionString(config.connection_string!, pipeline).getContainerClient(config.container);
      case 'sas_token': {
        const url = new URL(config.account_url!);
        url.search = config.sas_token!.replace(/^\?/, '');
        return new BlobServiceClient(url.toString(), undefined, pipeline).getContainerClient(config.container);
      }
      case 'default_credential':
        return new BlobServiceClient(config.account_url!, credential(), pipeline).getContainerClient(config.container);
    }
  };
  // The credential is made on first use: importing @azure/identity costs start-up time, and a
  // gateway without such a store should not pay it. One credential serves writes and reads.
  const credential = () => lazyCredential(options.credential ?? defaultAzureCredential);
  const writer = container(writes);
  // The SDK parsed the connection string or URL: the reads take its container URL and credential.
  const reader = new AzureReader({ containerUrl: writer.url, credential: writer.credential, ca: options.readCa });
  return new AzureStore(id, reader, writer);
}

async function defaultAzureCredential(): Promise<TokenCredential> {
  const { DefaultAzureCredential } = await import('@azure/identity');
  return new DefaultAzureCredential();
}

function lazyCredential(make: () => TokenCredential | Promise<TokenCredential>): TokenCredential {
  let made: Promise<TokenCredential> | undefined;
  return {
    async getToken(scopes, options) {
      made ??= Promise.resolve(make());
      return (await made).getToken(scopes, options);
    },
  };
}

class AzureStore implements ObjectStore {
  readonly type = 'azure';
  readonly id: string;
  readonly #reader: AzureReader;
  readonly #writer: ContainerClient;

  /** `reader` for reads (one try each), `writer` for puts and deletes (the SDK's retries). */
  constructor(id: string, reader: AzureReader, writer: ContainerClient) {
    this.id = id;
    this.#reader = reader;
    this.#writer = writer;
  }

  // https://learn.microsoft.com/rest/api/storageservices/get-blob-properties
  async head(key: string, opts: StoreRequestOptions = {}): Promise<ObjectMeta | undefined> {
    const res = await this.#read('head', { method: 'HEAD', key, signal: opts.signal });
    if (res.status !== 200) return this.#notFoundOrThrow(await responseError(res), 'head');
    res.body.resume();
    return metaOf(res, Number(header(res, 'content-length') ?? 0));
  }

  // Get Blob Properties answers 304 while If-None-Match holds.
  async revalidate(key: string, etag: string, opts: StoreRequestOptions = {}): Promise<Revalidation> {
    const res = await this.#read('head', { method: 'HEAD', key, ifNoneMatch: etag, signal: opts.signal });
    if (res.status === 304) {
      res.body.resume();
      return { kind: 'not_modified' };
    }
    if (res.status !== 200) return this.#notFoundOrThrow(await responseError(res), 'head') ?? { kind: 'gone' };
    res.body.resume();
    const meta = metaOf(res, Number(header(res, 'content-length') ?? 0));
    // A store that ignores the condition answers 200 for the same version.
    return meta.etag === etag ? { kind: 'not_modified' } : { kind: 'modified', meta };
  }

  // https://learn.microsoft.com/rest/api/storageservices/get-blob: one try; a body cut short
  // fails the read (the core refetches under its guard and deadlines).
  async get(key: string, opts: GetOptions = {}): Promise<GetResult | undefined> {
    const range = opts.range;
    const res = await this.#read('get', { method: 'GET', key, range, ifMatch: opts.ifMatch, signal: opts.signal });
    if (res.status !== 200 && res.status !== 206) return this.#notFoundOrThrow(await responseError(res), 'get');
    const body = res.body;
    let size = Number(header(res, 'content-length') ?? 0);
    if (range) size = checkContentRange(header(res, 'content-range'), range, body, this.id);
    const meta = metaOf(res, size);
    return range ? { meta, body, range } : { meta, body };
  }

  /**
   * Send a read; a failure to get any answer (no token, connect, reset, abort) is a StoreError
   * whose kind errors.ts reads from the cause (undici's codes).
   */
  async #read(op: StoreOp, req: BlobReadRequest): Promise<ReadResponse> {
    try {
      return await this.#reader.request(req);
    } catch (err) {
      throw new StoreError(this.id, op, err);
    }
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const headers = opts.contentType ? { blobHTTPHeaders: { blobContentType: opts.contentType } } : {};
    try {
      const blob = this.#writer.getBlockBlobClient(key);
      if (opts.contentLength !== undefined && opts.contentLength <= AZURE_SINGLE_PUT_MAX_BYTES) {
        // One Put Blob from a complete buffer: retryable, and never a partial blob.
        const bytes = await collectExact(body, opts.contentLength);
        const out = await blob.upload(bytes, bytes.length, { ...abortOpts(opts), ...headers });
        return { etag: out.etag, lastModified: out.lastModified };
      }
      // uploadStream stages blocks and commits the block list only at the end: an aborted upload
      // leaves uncommitted blocks that Azure discards, never a partial blob.
      const out = await blob.uploadStream(body, AZURE_UPLOAD_BLOCK_BYTES, AZURE_UPLOAD_CONCURRENCY, {
        ...abortOpts(opts),
        ...headers,
      });
      return { etag: out.etag, lastModified: out.lastModified };
    } catch (err) {
      body.destroy();
      throw new StoreError(this.id, 'put', err);
    }
  }

  async delete(key: string, opts: StoreRequestOptions = {}): Promise<void> {
    try {
      await this.#writer.getBlobClient(key).deleteIfExists(abortOpts(opts));
    } catch (err) {
      throw new StoreError(this.id, 'delete', err);
    }
  }

  async close(): Promise<void> {
    await this.#reader.close();
  }

  /** 404 is "not found" unless the container is missing; every other answer is a StoreError. */
  #notFoundOrThrow(err: AzureResponseError, op: StoreOp): undefined {
    // A missing container is a misconfiguration, not a missing object.
    if (err.statusCode === 404 && err.code !== 'ContainerNotFound') return undefined;
    throw new StoreError(this.id, op, err, statusKind(err.statusCode));
  }
}

/** An error answer from Blob storage, shaped like the SDK's RestError (`statusCode`, `code`). */
export class AzureResponseError extends Error {
  readonly statusCode: number;
  /** Azure's error code (`BlobNotFound`, `ContainerNotFound`, `AuthenticationFailed`, …). */
  readonly code: string | undefined;

  constructor(statusCode: number, code: string | undefined, message: string | undefined) {
    super(message ?? `Blob storage answered ${statusCode}${code ? ` ${code}` : ''}`);
    this.name = 'AzureResponseError';
    this.statusCode = statusCode;
    this.code = code;
  }
}

/**
 * Consume an error answer into an AzureResponseError. The code comes from `x-ms-error-code`
 * (sent on HEAD too, which has no body), else from the body's XML.
 */
async function responseError(res: ReadResponse): Promise<AzureResponseError> {
  const { code, message } = await readErrorBody(res);
  return new AzureResponseError(res.status, header(res, 'x-ms-error-code') ?? code, message);
}

function abortOpts(opts: StoreRequestOptions): { abortSignal?: AbortSignal } {
  return opts.signal ? { abortSignal: abortSignalOf(opts.signal) } : {};
}
