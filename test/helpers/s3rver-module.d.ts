/**
 * Minimal ambient typings for `s3rver@3.7.1`, which ships no type declarations.
 * Only the surface used by the test helpers is described.
 *
 * (Deliberately not named `s3rver.d.ts`: a `.d.ts` next to a `.ts` file with the
 * same base name is silently dropped by TypeScript's `include` globbing.)
 */
declare module 's3rver' {
  import type { Server } from 'node:http';
  import type { AddressInfo } from 'node:net';

  namespace S3rver {
    /** A bucket to provision before the server starts listening. */
    interface BucketConfig {
      name: string;
      /** CORS / website configuration XML documents. */
      configs?: ReadonlyArray<string | Buffer>;
    }

    interface Options {
      /** Interface to bind; default `localhost`. */
      address?: string;
      /** Port to bind; default 4568. `0` picks a free port. */
      port?: number;
      silent?: boolean;
      /** Directory used by the filesystem store; default `$TMPDIR/s3rver`. */
      directory?: string;
      serviceEndpoint?: string;
      resetOnClose?: boolean;
      allowMismatchedSignatures?: boolean;
      vhostBuckets?: boolean;
      configureBuckets?: BucketConfig[];
      key?: string | Buffer;
      cert?: string | Buffer;
    }
  }

  class S3rver {
    constructor(options?: S3rver.Options);
    /** The underlying server; set once `run()` has resolved. */
    httpServer?: Server;
    /** Provisions `configureBuckets`, starts listening, resolves with the bound address. */
    run(): Promise<AddressInfo>;
    /** Closes the HTTP server (rejects with "Not running" if never started). */
    close(): Promise<void>;
    /** Deletes all buckets and objects in the store. */
    reset(): void;
  }

  export = S3rver;
}
