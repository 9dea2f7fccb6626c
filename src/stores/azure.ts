/**
 * Azure Blob Storage containers on @azure/storage-blob (and Azurite in tests).
 */
import type { Readable } from 'node:stream';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { StoreError, type StoreOp } from '../errors.js';
import type { AzureStoreConfig } from '../config/schema.js';
import { collectExact } from './collect.js';
import { checkContentRange } from './content-range.js';
import type { GetOptions, GetResult, ObjectMeta, ObjectStore, PutOptions, PutResult, StoreRequestOptions } from './types.js';

/** Block size and parallelism for streamed uploads: bounds upload memory to ~32 MiB. */
export const AZURE_UPLOAD_BLOCK_BYTES = 8 * 2 ** 20;
export const AZURE_UPLOAD_CONCURRENCY = 4;
/** Bodies up to this size with a known length go in one Put Blob. */
export const AZURE_SINGLE_PUT_MAX_BYTES = 8 * 2 ** 20;

export interface AzureStoreOptions {
  /** Per-try deadline the SDK enforces; the core adds its own deadlines on top. */
  tryTimeoutMs?: number;
}

/** Create an Azure Blob store on one container. */
export function createAzureStore(id: string, config: AzureStoreConfig, options: AzureStoreOptions = {}): ObjectStore {
  const service = BlobServiceClient.fromConnectionString(config.connection_string, {
    retryOptions: { maxTries: 3, ...(options.tryTimeoutMs ? { tryTimeoutInMs: options.tryTimeoutMs } : {}) },
  });
  return new AzureStore(id, service.getContainerClient(config.container));
}

class AzureStore implements ObjectStore {
  readonly type = 'azure';
  readonly id: string;
  readonly #container: ContainerClient;

  constructor(id: string, container: ContainerClient) {
    this.id = id;
    this.#container = container;
  }

  async head(key: string, opts: StoreRequestOptions = {}): Promise<ObjectMeta | undefined> {
    try {
      const p = await this.#container.getBlobClient(key).getProperties(abortOpts(opts));
      return {
        size: p.contentLength ?? 0,
        etag: p.etag,
        lastModified: p.lastModified,
        contentType: p.contentType,
      };
    } catch (err) {
      return this.#notFoundOrThrow(err, 'head');
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<GetResult | undefined> {
    const range = opts.range;
    let res;
    try {
      res = await this.#container
        .getBlobClient(key)
        .download(range?.start ?? 0, range ? range.end - range.start + 1 : undefined, abortOpts(opts));
    } catch (err) {
      return this.#notFoundOrThrow(err, 'get');
    }
    const body = res.readableStreamBody as Readable | undefined;
    if (!body) throw new StoreError(this.id, 'get', new Error('download returned no body'));
    let size = res.contentLength ?? 0;
    if (range) size = checkContentRange(res.contentRange, range, body, this.id);
    const meta: ObjectMeta = { size, etag: res.etag, lastModified: res.lastModified, contentType: res.contentType };
    return range ? { meta, body, range } : { meta, body };
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const headers = opts.contentType ? { blobHTTPHeaders: { blobContentType: opts.contentType } } : {};
    try {
      const blob = this.#container.getBlockBlobClient(key);
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
      await this.#container.getBlobClient(key).deleteIfExists(abortOpts(opts));
    } catch (err) {
      throw new StoreError(this.id, 'delete', err);
    }
  }

  async close(): Promise<void> {}

  #notFoundOrThrow(err: unknown, op: StoreOp): undefined {
    const e = err as { statusCode?: number; code?: string; details?: { errorCode?: string } };
    const code = e?.code ?? e?.details?.errorCode;
    // A missing container is a misconfiguration, not a missing object.
    if (e?.statusCode === 404 && code !== 'ContainerNotFound') return undefined;
    throw new StoreError(this.id, op, err, e?.statusCode === 403 ? 'access_denied' : undefined);
  }
}

function abortOpts(opts: StoreRequestOptions): { abortSignal?: AbortSignal } {
  return opts.signal ? { abortSignal: opts.signal } : {};
}
