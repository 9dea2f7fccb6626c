/**
 * The lean Azure Blob read path: Get Blob Properties (HEAD) and Get Blob (GET, ranged,
 * conditional) as plain requests on a keep-alive undici pool. A profile of cold misses on
 * Azurite had @azure/storage-blob's packages at 17-20% of self time and GC at 12.5%: every read
 * built a BlobClient (a StorageClient: two URL parses and escapes), ran the pipeline's policies
 * and deserialised some forty headers, none of which a read needs. What stays the SDK's own:
 * - connection-string parsing: the store's writer ContainerClient (`azure.ts`) resolves the
 *   container URL and the credential, and the reads take both from it;
 * - the Shared Key HMAC (`StorageSharedKeyCredential.computeHMACSHA256`, the decoded key);
 * - the TokenCredential (DefaultAzureCredential), whose tokens are cached in `azure-token.ts`;
 * - writes and deletes, in `azure.ts`.
 */
import { StorageSharedKeyCredential, type ContainerClient } from '@azure/storage-blob';
import { BearerTokenCache, type TokenCredential } from './azure-token.js';
import { READ_CONNECT_TIMEOUT_MS, ReadPool, type ReadRequest, type ReadResponse } from './http-read.js';

/**
 * The REST version reads ask for: the newest one Azurite 3.35 knows (the SDK's own,
 * 2026-04-06, is newer), generally available on Azure, and past 2017-11-09, the first to take
 * bearer tokens.
 */
export const AZURE_READ_VERSION = '2025-11-05';
/** Most connections to one account's origin (the S3 store's default `max_sockets`). */
export const AZURE_READ_MAX_SOCKETS = 256;

/** How a read proves who it is: Shared Key, a query (SAS, or none), or a bearer token. */
export type AzureReadAuth =
  | { kind: 'shared_key'; credential: StorageSharedKeyCredential }
  | { kind: 'query'; query: string }
  | { kind: 'bearer'; tokens: BearerTokenCache };

export type BlobReadRequest = ReadRequest;

export interface AzureReaderOptions {
  /** The container's URL as the SDK resolved it (may carry a SAS query). */
  containerUrl: string;
  /** The credential the SDK client holds: Shared Key, anonymous (SAS or public), or a token credential. */
  credential: ContainerClient['credential'];
  /** Extra trusted certificates for an https account (PEM). */
  ca?: string | Buffer | undefined;
}

/**
 * A blob's path under its container as the SDK sends it: each segment percent-encoded
 * (`EscapePath`), then `'` escaped too (`escapeURLPath`); `/` kept.
 */
export function encodeBlobName(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/'/g, '%27'))
    .join('/');
}

/**
 * https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key: the string to
 * sign for a body-less request with no query (the only kind the read path sends). `headers` are
 * lower-case; the x-ms-* ones are sorted by code unit, which for the names the reader sends
 * (x-ms-date, x-ms-range, x-ms-version) is the service's culture-aware order too.
 */
export function sharedKeyStringToSign(method: string, accountName: string, path: string, headers: Record<string, string | undefined>): string {
  const std = (name: string) => headers[name] ?? '';
  const msHeaders = Object.keys(headers)
    .filter((n) => n.startsWith('x-ms-') && headers[n] !== undefined)
    .sort()
    .map((n) => `${n}:${headers[n]!.trimStart()}\n`)
    .join('');
  return [
    method,
    std('content-encoding'),
    std('content-language'),
    // Since 2015-02-21 a zero Content-Length signs as empty.
    std('content-length') === '0' ? '' : std('content-length'),
    std('content-md5'),
    std('content-type'),
    std('date'),
    std('if-modified-since'),
    std('if-match'),
    std('if-none-match'),
    std('if-unmodified-since'),
    std('range'),
  ].join('\n') + `\n${msHeaders}/${accountName}${path}`;
}

/** Requests to one container, authorised as its SDK client would be. */
export class AzureReader {
  readonly #origin: string;
  readonly #containerPath: string;
  readonly #auth: AzureReadAuth;
  readonly #pool: ReadPool;
  #dateSecond = -1;
  #date = '';

  constructor(options: AzureReaderOptions) {
    const url = new URL(options.containerUrl);
    this.#origin = url.origin;
    this.#containerPath = url.pathname.replace(/\/+$/, '');
    this.#auth = readAuth(options.credential, url.search.replace(/^\?/, ''));
    this.#pool = new ReadPool(this.#origin, { connections: AZURE_READ_MAX_SOCKETS, connectTimeoutMs: READ_CONNECT_TIMEOUT_MS, ca: options.ca });
  }

  /** The request as it will be sent: path (with any SAS query) and headers (exposed for tests). */
  async build(req: Omit<BlobReadRequest, 'signal'>): Promise<{ path: string; headers: Record<string, string> }> {
    const path = `${this.#containerPath}/${encodeBlobName(req.key)}`;
    const headers: Record<string, string> = { 'x-ms-version': AZURE_READ_VERSION };
    // Get Blob: x-ms-range, as the SDK sends it (Range would do as well).
    if (req.range) headers['x-ms-range'] = `bytes=${req.range.start}-${req.range.end}`;
    if (req.ifMatch) headers['if-match'] = req.ifMatch;
    if (req.ifNoneMatch) headers['if-none-match'] = req.ifNoneMatch;
    const auth = this.#auth;
    switch (auth.kind) {
      case 'query':
        return { path: auth.query ? `${path}?${auth.query}` : path, headers };
      case 'shared_key': {
        headers['x-ms-date'] = this.#utcNow();
        const signature = auth.credential.computeHMACSHA256(sharedKeyStringToSign(req.method, auth.credential.accountName, path, headers));
        headers.authorization = `SharedKey ${auth.credential.accountName}:${signature}`;
        return { path, headers };
      }
      case 'bearer':
        // The SDK's bearer policy refuses plain http: a token must not cross the wire in clear.
        if (!this.#origin.startsWith('https:')) throw new Error('bearer token authentication needs an https account_url');
        headers['x-ms-date'] = this.#utcNow();
        headers.authorization = `Bearer ${await auth.tokens.get()}`;
        return { path, headers };
    }
  }

  async request(req: BlobReadRequest): Promise<ReadResponse> {
    const { path, headers } = await this.build(req);
    return this.#pool.request({ method: req.method, path, headers, signal: req.signal });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** RFC 9110 §5.6.7 IMF-fixdate, made once a second. */
  #utcNow(): string {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== this.#dateSecond) {
      this.#dateSecond = second;
      this.#date = new Date(second * 1000).toUTCString();
    }
    return this.#date;
  }
}

function readAuth(credential: ContainerClient['credential'], query: string): AzureReadAuth {
  if (credential instanceof StorageSharedKeyCredential) return { kind: 'shared_key', credential };
  if ('getToken' in credential && typeof credential.getToken === 'function') {
    return { kind: 'bearer', tokens: new BearerTokenCache(credential as TokenCredential) };
  }
  // AnonymousCredential: the URL's SAS, or nothing (a public container).
  return { kind: 'query', query };
}
