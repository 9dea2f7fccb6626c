/**
 * The lean Azure read path builds its requests as the SDK would: blob names encoded the same
 * way, and a Shared Key signature equal to the one @azure/storage-blob puts on the wire for the
 * same request (captured by a loopback server and recomputed here). The bearer token cache asks
 * its credential once for concurrent callers and refreshes before expiry.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BlobServiceClient, ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AZURE_READ_VERSION, AzureReader, encodeBlobName, sharedKeyStringToSign } from '../../src/stores/azure-read.js';
import { AZURE_STORAGE_SCOPE, BearerTokenCache, TOKEN_REFRESH_WINDOW_MS } from '../../src/stores/azure-token.js';
import { AZURITE_ACCOUNT_KEY, AZURITE_ACCOUNT_NAME } from '../helpers/azurite.js';

describe('encodeBlobName', () => {
  const keys = ['a/b.mp4', 'with space/ü.bin', "x!'()*+=&%#?.txt", '~_-.', 'deep/ly/nested/key', '%41 literal', 'semi;colon,comma@at$'];
  it.each(keys)('%s is encoded as the SDK encodes it', (key) => {
    const container = new ContainerClient('https://acct.blob.core.windows.net/media');
    const sdkPath = new URL(container.getBlobClient(key).url).pathname;
    expect(`/media/${encodeBlobName(key)}`).toBe(sdkPath);
  });
});

describe('Shared Key: the same signature as the SDK for the same request', () => {
  let server: Server;
  const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> = [];
  let endpoint: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      req.resume();
      res.writeHead(404, { 'x-ms-error-code': 'BlobNotFound', 'content-length': '0' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${AZURITE_ACCOUNT_NAME}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const cases = [
    { name: 'Get Blob Properties', key: 'videos/a b.mp4', call: (c: ContainerClient, k: string) => c.getBlobClient(k).getProperties(), req: { method: 'HEAD' as const } },
    {
      name: 'a conditional Get Blob Properties',
      key: "it's/ü.bin",
      call: (c: ContainerClient, k: string) => c.getBlobClient(k).getProperties({ conditions: { ifNoneMatch: '"0x8DC"' } }),
      req: { method: 'HEAD' as const, ifNoneMatch: '"0x8DC"' },
    },
    {
      name: 'a ranged, If-Match Get Blob',
      key: 'k+=&.txt',
      call: (c: ContainerClient, k: string) => c.getBlobClient(k).download(100, 50, { conditions: { ifMatch: '"0x1"' }, maxRetryRequests: 0 }),
      req: { method: 'GET' as const, range: { start: 100, end: 149 }, ifMatch: '"0x1"' },
    },
  ];

  it.each(cases)('$name', async ({ key, call, req }) => {
    const connectionString = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT_NAME};AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${endpoint};`;
    const container = BlobServiceClient.fromConnectionString(connectionString, { retryOptions: { maxTries: 1 } }).getContainerClient('media');
    seen.length = 0;
    await call(container, key).catch(() => undefined);
    expect(seen).toHaveLength(1);
    const sdk = seen[0]!;
    const credential = container.credential as StorageSharedKeyCredential;
    const headers = Object.fromEntries(Object.entries(sdk.headers).map(([n, v]) => [n, String(v)]));

    // The SDK's own request, signed by our string-to-sign and its HMAC, gives its Authorization.
    expect(`SharedKey ${AZURITE_ACCOUNT_NAME}:${credential.computeHMACSHA256(sharedKeyStringToSign(sdk.method, AZURITE_ACCOUNT_NAME, sdk.url, headers))}`).toBe(
      sdk.headers.authorization,
    );

    // Our reader sends the same path and conditions, with its pinned version, and signs them.
    const reader = new AzureReader({ containerUrl: container.url, credential });
    const ours = await reader.build({ key, ...req });
    expect(ours.path).toBe(sdk.url);
    for (const h of ['x-ms-range', 'if-match', 'if-none-match']) expect(ours.headers[h], h).toBe(sdk.headers[h]);
    expect(ours.headers['x-ms-version']).toBe(AZURE_READ_VERSION);
    expect(ours.headers.authorization).toBe(
      `SharedKey ${AZURITE_ACCOUNT_NAME}:${credential.computeHMACSHA256(sharedKeyStringToSign(req.method, AZURITE_ACCOUNT_NAME, ours.path, ours.headers))}`,
    );
    await reader.close();
  });

  it('an AccountName/AccountKey/EndpointSuffix connection string reads from the account host, without the path-style account segment', async () => {
    const connectionString = `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${AZURITE_ACCOUNT_KEY};EndpointSuffix=core.windows.net`;
    const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient('media');
    expect(container.url).toBe('https://acct.blob.core.windows.net/media');
    const credential = container.credential as StorageSharedKeyCredential;
    const reader = new AzureReader({ containerUrl: container.url, credential });
    const { path, headers } = await reader.build({ method: 'HEAD', key: 'a b' });
    expect(path).toBe('/media/a%20b');
    // Canonicalized resource: /account/container/blob.
    expect(sharedKeyStringToSign('HEAD', 'acct', path, headers).endsWith('\n/acct/media/a%20b')).toBe(true);
    expect(headers.authorization).toBe(`SharedKey acct:${credential.computeHMACSHA256(sharedKeyStringToSign('HEAD', 'acct', path, headers))}`);
    await reader.close();
  });

  it('a SAS rides on the query, with no Authorization', async () => {
    const container = new ContainerClient(`${endpoint}/media?sv=2025-11-05&sig=abc%2Bdef`);
    const reader = new AzureReader({ containerUrl: container.url, credential: container.credential });
    const { path, headers } = await reader.build({ method: 'GET', key: 'a b' });
    expect(path).toBe(`/${AZURITE_ACCOUNT_NAME}/media/a%20b?sv=2025-11-05&sig=abc%2Bdef`);
    expect(headers.authorization).toBeUndefined();
    await reader.close();
  });
});

describe('BearerTokenCache', () => {
  const HOUR_MS = 3_600_000;
  const counting = (expiresInMs: number[]) => {
    const calls: string[] = [];
    let now = 1_000_000;
    let n = 0;
    const credential = {
      getToken: async (scope: string | string[]) => {
        calls.push(String(scope));
        await new Promise((resolve) => setTimeout(resolve, 5));
        const i = n++;
        return { token: `tok-${i}`, expiresOnTimestamp: now + expiresInMs[Math.min(i, expiresInMs.length - 1)]! };
      },
    };
    const cache = new BearerTokenCache(credential, AZURE_STORAGE_SCOPE, () => now);
    return { cache, calls, advance: (ms: number) => (now += ms) };
  };

  it('asks once for concurrent callers, then serves the cached token', async () => {
    const { cache, calls } = counting([HOUR_MS]);
    expect(await Promise.all(Array.from({ length: 16 }, () => cache.get()))).toEqual(Array(16).fill('tok-0'));
    expect(await cache.get()).toBe('tok-0');
    expect(calls).toEqual([AZURE_STORAGE_SCOPE]);
  });

  it('refreshes inside the refresh window, sending the old token meanwhile', async () => {
    const { cache, calls, advance } = counting([HOUR_MS]);
    await cache.get();
    advance(HOUR_MS - TOKEN_REFRESH_WINDOW_MS + 1);
    expect(await cache.get()).toBe('tok-0');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await cache.get()).toBe('tok-1');
    expect(calls).toHaveLength(2);
  });

  it('waits for a new token once the old one is about to expire, and retries a failed refresh', async () => {
    let fail = true;
    let now = 0;
    const credential = {
      getToken: async () => {
        if (fail) throw new Error('identity endpoint down');
        return { token: 'fresh', expiresOnTimestamp: now + HOUR_MS };
      },
    };
    const cache = new BearerTokenCache(credential, AZURE_STORAGE_SCOPE, () => now);
    await expect(cache.get()).rejects.toThrow(/identity endpoint down/);
    fail = false;
    expect(await cache.get()).toBe('fresh');
    now += HOUR_MS - 1_000;
    fail = true;
    await expect(cache.get()).rejects.toThrow(/identity endpoint down/);
  });
});
