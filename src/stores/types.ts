/**
 * One interface for every backend (after unstorage's drivers, with stricter errors): "not found"
 * is the only failure that becomes `undefined`; a key the store cannot hold for the client's
 * reasons (it names a folder, leads out of the root, is too long for the filesystem) is a
 * `KeyRejectedError` (a 4xx); every other failure is a `StoreError` carrying its cause. A store never imports the cache or HTTP.
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

/**
 * What stops a store call: the part of AbortSignal that stores use, so an AbortSignal fits. The
 * gateway's deadlines pass a plain object of this shape (`CallSignal`, core/deadline.ts); a store
 * that hands the signal to an API wanting a real AbortSignal (an SDK, Node's pipeline) converts
 * it with `abortSignalOf` (stores/abort.ts).
 */
export interface StopSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface StoreRequestOptions {
  signal?: StopSignal;
}

export interface GetOptions extends StoreRequestOptions {
  range?: ByteRange;
  /**
   * Only answer if the object's ETag is still this one (S3 `If-Match`, Azure's access condition,
   * size and mtime for a directory). Otherwise the get fails with a StoreError of kind
   * `precondition_failed`. A store that ignores the condition is caught by the caller, which
   * compares the ETag the answer carries.
   */
  ifMatch?: string;
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

/**
 * The answer to a conditional HEAD (`If-None-Match` with a stored ETag): the object is still
 * that version, or it is another one (its metadata), or it is gone.
 */
export type Revalidation = { kind: 'not_modified' } | { kind: 'modified'; meta: ObjectMeta } | { kind: 'gone' };

/** A backend holding objects under keys. Keys arrive validated (see `core/object-key.ts`). */
export interface ObjectStore {
  readonly id: string;
  readonly type: string;
  head(key: string, opts?: StoreRequestOptions): Promise<ObjectMeta | undefined>;
  get(key: string, opts?: GetOptions): Promise<GetResult | undefined>;
  /**
   * A conditional HEAD: does the store still hold the version with `etag`? (S3 HeadObject with
   * `If-None-Match`, Azure Get Blob Properties with `ifNoneMatch`, size and mtime for a directory.)
   */
  revalidate(key: string, etag: string, opts?: StoreRequestOptions): Promise<Revalidation>;
  put(key: string, body: Readable, opts?: PutOptions): Promise<PutResult>;
  /** Deleting an absent object is not an error. */
  delete(key: string, opts?: StoreRequestOptions): Promise<void>;
  /** Release sockets and handles. */
  close(): Promise<void>;
}
