/**
 * One interface for every backend (after unstorage's drivers, with stricter errors): "not found"
 * is the only failure that becomes `undefined`; every other failure is a `StoreError` carrying
 * its cause. A store never imports the cache or HTTP.
 */
import type { Readable } from 'node:stream';

/** What a store knows about an object. */
export interface ObjectMeta {
  /** Full object size in bytes. */
  size: number;
  /** The store's entity tag, quoted as HTTP sends it (`"abc"` or `W/"abc"`). */
  etag: string | undefined;
  lastModified: Date | undefined;
  /** The content type the store holds, if any (may be a generic octet-stream). */
  contentType: string | undefined;
}

/** An inclusive byte range, as HTTP's `bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** A body being read from a store. The caller must consume or destroy `body` on every path. */
export interface GetResult {
  meta: ObjectMeta;
  body: Readable;
  /** The range the body holds, when one was asked for; otherwise the whole object. */
  range?: ByteRange;
}

export interface StoreRequestOptions {
  signal?: AbortSignal;
}

export interface GetOptions extends StoreRequestOptions {
  range?: ByteRange;
}

export interface PutOptions extends StoreRequestOptions {
  contentType?: string;
  /** Exact byte length when known (lets S3 use one PutObject). */
  contentLength?: number;
}

/** What the store acknowledged after a write. */
export interface PutResult {
  etag: string | undefined;
  lastModified: Date | undefined;
}

/** A backend holding objects under keys. Keys arrive validated (see `core/object-key.ts`). */
export interface ObjectStore {
  readonly id: string;
  readonly type: string;
  head(key: string, opts?: StoreRequestOptions): Promise<ObjectMeta | undefined>;
  get(key: string, opts?: GetOptions): Promise<GetResult | undefined>;
  put(key: string, body: Readable, opts?: PutOptions): Promise<PutResult>;
  /** Deleting an absent object is not an error. */
  delete(key: string, opts?: StoreRequestOptions): Promise<void>;
  /** Release sockets and handles. */
  close(): Promise<void>;
}
