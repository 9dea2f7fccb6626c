import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

/** Options for {@link startS3rver}. */
export interface StartS3rverOptions {
  /** Buckets to create before the server starts accepting requests. */
  buckets?: string[];
}

/** One request s3rver received, as its HTTP server saw it. */
export interface S3rverRequest {
  method: string;
  /** The path, query left out (path-style: `/bucket/key`), percent-decoded. */
  path: string;
  /** The Range header, when one was sent. */
  range: string | undefined;
}

/** A running in-process s3rver instance, as returned by {@link startS3rver}. */
export interface S3rverInstance {
  /** Every request received so far, in arrival order: the store's own request log. */
  requests: S3rverRequest[];
  /** Base URL, e.g. `http://127.0.0.1:41234`. Use with path-style addressing. */
  endpoint: string;
  /** Port the server actually bound. */
  port: number;
  /** s3rver's fixed access key id (checked; a SigV4 signature itself is not verified). */
  accessKeyId: 'S3RVER';
  /** s3rver's fixed secret access key. */
  secretAccessKey: 'S3RVER';
  /** Region to sign requests for (s3rver accepts any). */
  region: string;
  /** Temp directory backing the filesystem store; removed by `stop()`. */
  directory: string;
  /** Closes the server (dropping open connections) and removes `directory`. Idempotent. */
  stop(): Promise<void>;
}

/** Connection details needed by {@link createTestS3Client}. */
export type S3rverConnection = Pick<
  S3rverInstance,
  'endpoint' | 'accessKeyId' | 'secretAccessKey' | 'region'
>;

const HOST = '127.0.0.1';
const REGION = 'us-east-1';

/**
 * Starts s3rver in-process on `127.0.0.1`, on an OS-assigned free port, backed
 * by a fresh temp directory.
 *
 * The server binds port 0 itself and the real port is read back from
 * `run()` (which resolves with `httpServer.address()`), so there is no
 * pick-then-bind race.
 *
 * @param opts.buckets Bucket names to provision up front.
 * @returns Connection details plus a `stop()` that tears everything down.
 */
export async function startS3rver(opts: StartS3rverOptions = {}): Promise<S3rverInstance> {
  const directory = await mkdtemp(join(tmpdir(), 'cachegate-s3rver-'));
  const server = new S3rver({
    address: HOST,
    port: 0,
    silent: true,
    directory,
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name })),
  });

  let port: number;
  try {
    ({ port } = await server.run());
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const requests: S3rverRequest[] = [];
  server.httpServer?.on('request', (req: import('node:http').IncomingMessage) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    let p = q === -1 ? url : url.slice(0, q);
    try {
      p = decodeURIComponent(p);
    } catch {
      // keep it encoded
    }
    requests.push({ method: req.method ?? '', path: p, range: req.headers.range });
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        const closed = server.close();
        // Don't wait for keep-alive / in-flight client sockets to drain.
        server.httpServer?.closeAllConnections();
        await closed;
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    })();
    return stopping;
  };

  return {
    requests,
    endpoint: `http://${HOST}:${port}`,
    port,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    region: REGION,
    directory,
    stop,
  };
}

/**
 * Creates an `S3Client` suitable for talking to s3rver.
 *
 * Flexible checksums are restricted to `WHEN_REQUIRED`: with the SDK default
 * (`WHEN_SUPPORTED`) uploads are sent as `aws-chunked` bodies with a trailing
 * CRC32, which s3rver does not decode and would store verbatim as object bytes.
 *
 * Call `client.destroy()` when done to release keep-alive sockets.
 *
 * @param srv A running instance (or just its connection details).
 */
export function createTestS3Client(srv: S3rverConnection): S3Client {
  return new S3Client({
    endpoint: srv.endpoint,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: srv.accessKeyId, secretAccessKey: srv.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/**
 * The gateway's store config for a bucket on this s3rver (as the config file would give it):
 * path-style over http with s3rver's fixed credentials.
 */
export function s3StoreConfig(
  srv: S3rverConnection,
  bucket: string,
  maxSockets = 32,
): { type: 's3'; bucket: string; region: string; access_key: string; secret_key: string; endpoint: string; allow_http: boolean; max_sockets: number } {
  return {
    type: 's3',
    bucket,
    region: srv.region,
    access_key: srv.accessKeyId,
    secret_key: srv.secretAccessKey,
    endpoint: srv.endpoint,
    allow_http: true,
    max_sockets: maxSockets,
  };
}
