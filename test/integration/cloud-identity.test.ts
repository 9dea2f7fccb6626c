/**
 * Credentials without static keys in the config:
 * - S3 with no access_key uses the AWS default credential chain; tested with environment
 *   credentials against s3rver (which checks the access key id, not a SigV4 signature;
 *   `s3-signatures.test.ts` checks those), in a child gateway.
 * - Azure `account_url` + `sas_token`, against Azurite (account SAS).
 * - Azure `account_url` alone uses a token credential (DefaultAzureCredential in production).
 *   Azurite takes bearer tokens only over HTTPS with its OAuth mode, and DefaultAzureCredential
 *   would reach for a metadata endpoint off this machine, so here the credential is a stand-in:
 *   the store asks it for the storage scope and turns its failure into a store error, never a
 *   "not found"; and its token reaches the blob service on every read of the lean read path
 *   (a loopback https server, with a test certificate, that records what it is sent).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
} from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { AzureStoreConfig } from '../../src/config/schema.js';
import { StoreError } from '../../src/errors.js';
import { createAzureStore } from '../../src/stores/azure.js';
import { AZURE_READ_VERSION } from '../../src/stores/azure-read.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { AUTH, startChildGateway, startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/free-port.js';
import { startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

describe('S3 without access_key: the AWS default credential chain', () => {
  let s3: S3rverInstance;
  let dir: string;
  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ['media'] });
    dir = await mkdtemp(path.join(tmpdir(), 'cg-aws-'));
  });
  afterAll(async () => {
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Only the environment provides credentials: no profile files, no instance metadata. */
  const awsEnv = (accessKeyId: string, secret: string) => ({
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secret,
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-credentials'),
    AWS_CONFIG_FILE: path.join(dir, 'no-config'),
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  const store = () => ({ media: { type: 's3', bucket: 'media', endpoint: s3.endpoint, allow_http: true } });

  it('signs with environment credentials: PUT, GET and HEAD work', async () => {
    const gw = await startChildGateway({ stores: store() }, awsEnv(s3.accessKeyId, s3.secretAccessKey));
    try {
      const put = await fetch(`${gw.url}/media/env-creds.txt`, { method: 'PUT', headers: AUTH, body: 'signed by env' });
      expect(put.status, await put.clone().text()).toBe(200);
      expect(await (await fetch(`${gw.url}/media/env-creds.txt`, { headers: AUTH })).text()).toBe('signed by env');
      expect((await fetch(`${gw.url}/media/env-creds.txt`, { method: 'HEAD', headers: AUTH })).headers.get('content-length')).toBe('13');
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });

  it('wrong environment credentials are a store error, not a miss', async () => {
    // s3rver checks the access key id (it did not refuse a wrong secret on a missing key).
    const gw = await startChildGateway({ stores: store() }, awsEnv('NOT-S3RVER', s3.secretAccessKey));
    try {
      expect((await fetch(`${gw.url}/media/anything.txt`, { headers: AUTH })).status).toBe(502);
    } finally {
      await gw.stop();
    }
  });

  it('access_key without secret_key is refused at startup', () => {
    expect(() => validateConfig({ auth: { bearer_token: 't' }, stores: { m: { type: 's3', bucket: 'b', access_key: 'a' } } })).toThrow(/access_key and secret_key/);
  });
});

describe('Azure account_url with sas_token', () => {
  let azurite: AzuriteInstance;
  const sas = (permissions: string) =>
    generateAccountSASQueryParameters(
      {
        expiresOn: new Date(Date.now() + 3_600_000),
        permissions: AccountSASPermissions.parse(permissions),
        resourceTypes: AccountSASResourceTypes.parse('sco').toString(),
        services: AccountSASServices.parse('b').toString(),
      },
      new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey),
    ).toString();

  beforeAll(async () => {
    azurite = await startAzurite({ containers: ['docs'] });
  });
  afterAll(async () => {
    await azurite.stop();
  });

  it('reads and writes through a SAS (with or without its leading ?)', async () => {
    for (const token of [sas('rwdlac'), `?${sas('rwdlac')}`]) {
      const gw = await startGateway({ stores: { docs: { type: 'azure', container: 'docs', account_url: azurite.blobEndpoint, sas_token: token } } });
      try {
        const put = await fetch(`${gw.url}/docs/sas.txt`, { method: 'PUT', headers: AUTH, body: 'via sas' });
        expect(put.status, await put.clone().text()).toBe(200);
        expect(await (await fetch(`${gw.url}/docs/sas.txt`, { headers: AUTH })).text()).toBe('via sas');
        expect((await fetch(`${gw.url}/docs/nope.txt`, { headers: AUTH })).status).toBe(404);
      } finally {
        await gw.close();
      }
    }
  });

  it('a read-only SAS refuses a PUT with 502 and writes nothing; a tampered one fails reads', async () => {
    const gw = await startGateway({ stores: { docs: { type: 'azure', container: 'docs', account_url: azurite.blobEndpoint, sas_token: sas('rl') } } });
    try {
      expect((await fetch(`${gw.url}/docs/ro.txt`, { method: 'PUT', headers: AUTH, body: 'no' })).status).toBe(502);
      expect((await fetch(`${gw.url}/docs/ro.txt`, { headers: AUTH })).status).toBe(404);
    } finally {
      await gw.close();
    }
    const tampered = sas('rl').replace(/sig=[^&]+/, 'sig=AAAA');
    const bad = await startGateway({ stores: { docs: { type: 'azure', container: 'docs', account_url: azurite.blobEndpoint, sas_token: tampered } } });
    try {
      expect((await fetch(`${bad.url}/docs/sas.txt`, { headers: AUTH })).status).toBe(502);
    } finally {
      await bad.close();
    }
  });

  it('exactly one of connection_string or account_url; sas_token needs account_url', () => {
    const cfg = (docs: Record<string, unknown>) => () => validateConfig({ auth: { bearer_token: 't' }, stores: { docs: { type: 'azure', container: 'c', ...docs } } });
    expect(cfg({})).toThrow(/stores\.docs\.connection_string: required/);
    expect(cfg({ connection_string: azurite.connectionString, account_url: azurite.blobEndpoint })).toThrow(/not both/);
    expect(cfg({ connection_string: azurite.connectionString, sas_token: 'sv=1' })).toThrow(/sas_token: needs account_url/);
    expect(cfg({ account_url: 'not a url' })).toThrow(/account_url/);
  });
});

describe('Azure account_url alone: a token credential', () => {
  it('asks the credential for the storage scope, and its failure is a store error', async () => {
    const port = await freePort();
    const scopes: string[] = [];
    const config = validateConfig({
      auth: { bearer_token: 't' },
      stores: { docs: { type: 'azure', container: 'docs', account_url: `https://127.0.0.1:${port}/devstoreaccount1` } },
    }).stores.docs as AzureStoreConfig;
    const store = createAzureStore('docs', config, {
      credential: () => ({
        getToken: async (scope: string | string[]) => {
          scopes.push(...[scope].flat());
          throw new Error('no identity on this machine');
        },
      }),
    });
    const err = await store.head('some/key').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect(scopes).toContain('https://storage.azure.com/.default');
  });

  const tls = {
    cert: readFileSync(new URL('../fixtures/loopback-tls/cert.pem', import.meta.url)),
    key: readFileSync(new URL('../fixtures/loopback-tls/key.pem', import.meta.url)),
  };
  const BLOB = Buffer.from('bytes behind a bearer token');
  const LAST_MODIFIED = 'Tue, 01 Dec 2026 10:00:00 GMT';

  /** A blob service stand-in over https: one blob at /devstoreaccount1/docs/a b.txt; it records every request. */
  async function recordingBlobService() {
    const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> = [];
    const server = createHttpsServer(tls, (req, res) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      req.resume();
      if (req.url !== '/devstoreaccount1/docs/a%20b.txt') {
        res.writeHead(404, { 'x-ms-error-code': 'BlobNotFound', 'content-type': 'application/xml' });
        return res.end(req.method === 'HEAD' ? undefined : '<?xml version="1.0"?><Error><Code>BlobNotFound</Code></Error>');
      }
      const meta = { etag: '"0x8DD1"', 'last-modified': LAST_MODIFIED, 'content-type': 'text/plain' };
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers['x-ms-range'] ?? ''));
      if (range) {
        const [start, end] = [Number(range[1]), Number(range[2])];
        res.writeHead(206, { ...meta, 'content-range': `bytes ${start}-${end}/${BLOB.length}`, 'content-length': end - start + 1 });
        return res.end(BLOB.subarray(start, end + 1));
      }
      res.writeHead(200, { ...meta, 'content-length': BLOB.length });
      res.end(req.method === 'HEAD' ? undefined : BLOB);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/devstoreaccount1`;
    return { seen, url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }

  it("sends the credential's token on every read (HEAD, GET, ranged GET), asking for it once", async () => {
    const service = await recordingBlobService();
    const asked: string[] = [];
    const config = validateConfig({ auth: { bearer_token: 't' }, stores: { docs: { type: 'azure', container: 'docs', account_url: service.url } } }).stores
      .docs as AzureStoreConfig;
    const store = createAzureStore('docs', config, {
      readCa: tls.cert,
      credential: () => ({
        getToken: async (scope: string | string[]) => {
          asked.push(...[scope].flat());
          return { token: 'token-from-the-credential', expiresOnTimestamp: Date.now() + 3_600_000 };
        },
      }),
    });
    try {
      const heads = await Promise.all(Array.from({ length: 4 }, () => store.head('a b.txt')));
      expect(heads[0]).toEqual({ size: BLOB.length, etag: '"0x8DD1"', lastModified: new Date(LAST_MODIFIED), contentType: 'text/plain' });
      const whole = await store.get('a b.txt');
      expect(Buffer.concat(await whole!.body.toArray())).toEqual(BLOB);
      const part = await store.get('a b.txt', { range: { start: 6, end: 11 } });
      expect(part!.meta.size).toBe(BLOB.length);
      expect(Buffer.concat(await part!.body.toArray()).toString()).toBe('behind');
      expect(await store.head('missing.txt')).toBeUndefined();

      expect(asked).toEqual(['https://storage.azure.com/.default']);
      expect(service.seen.map((r) => r.method)).toEqual(['HEAD', 'HEAD', 'HEAD', 'HEAD', 'GET', 'GET', 'HEAD']);
      for (const r of service.seen) {
        expect(r.headers.authorization).toBe('Bearer token-from-the-credential');
        expect(r.headers['x-ms-version']).toBe(AZURE_READ_VERSION);
      }
      expect(service.seen[5]!.headers['x-ms-range']).toBe('bytes=6-11');
    } finally {
      await store.close();
      await service.close();
    }
  });

  it('never sends a token over plain http', async () => {
    const port = await freePort();
    const config = validateConfig({
      auth: { bearer_token: 't' },
      stores: { docs: { type: 'azure', container: 'docs', account_url: `http://127.0.0.1:${port}/devstoreaccount1` } },
    }).stores.docs as AzureStoreConfig;
    let asked = 0;
    const store = createAzureStore('docs', config, {
      credential: () => ({
        getToken: async () => {
          asked++;
          return { token: 'secret', expiresOnTimestamp: Date.now() + 3_600_000 };
        },
      }),
    });
    try {
      await expect(store.head('a b.txt')).rejects.toBeInstanceOf(StoreError);
      expect(asked).toBe(0);
    } finally {
      await store.close();
    }
  });
});
