/**
 * GET and HEAD through a running gateway, against every real backend: byte-identical bodies,
 * the headers clients rely on, hits that cost no store request, and clear errors.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAzureStore } from '../../src/stores/azure.js';
import { createFsStore } from '../../src/stores/fs.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { countingStore, type CountingStore, gets } from '../helpers/counting-store.js';
import { AUTH, startGateway, type TestGateway } from '../helpers/gateway.js';
import { s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

const UNICODE_BODY = Buffer.from('héllo wörld\n');
const PNG_HEADER = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);

interface Backend {
  name: string;
  make(): Promise<{ store: ObjectStore; broken: ObjectStore; stop(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'fs',
    async make() {
      const dir = await mkdtemp(path.join(tmpdir(), 'cg-read-'));
      const file = path.join(dir, 'not-a-dir');
      await (await import('node:fs/promises')).writeFile(file, 'x');
      return {
        store: createFsStore('media', { root: path.join(dir, 'root') }),
        // A root that is a regular file: every access fails with ENOTDIR/EEXIST, not "absent".
        broken: createFsStore('broken', { root: path.join(file, 'sub') }),
        stop: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 's3',
    async make() {
      const srv: S3rverInstance = await startS3rver({ buckets: ['media-bucket'] });
      const store = createS3Store('media', s3StoreConfig(srv, 'media-bucket', 16));
      const broken = createS3Store('broken', s3StoreConfig(srv, 'no-such-bucket', 16));
      return {
        store,
        broken,
        stop: async () => {
          await store.close();
          await broken.close();
          await srv.stop();
        },
      };
    },
  },
  {
    name: 'azure',
    async make() {
      const az: AzuriteInstance = await startAzurite({ containers: ['media'] });
      return {
        store: createAzureStore('media', { type: 'azure', container: 'media', connection_string: az.connectionString }),
        broken: createAzureStore('broken', { type: 'azure', container: 'missing', connection_string: az.connectionString }),
        stop: () => az.stop(),
      };
    },
  },
];

describe.each(backends)('read path over $name', (backend) => {
  let stop: () => Promise<void>;
  let store: CountingStore;
  let gw: TestGateway;
  const big = randomBytes(3 * 2 ** 20 + 17);
  const keys = {
    big: 'videos/clip one.bin',
    unicode: 'docs/café ü/日本.txt',
    png: 'images/no-extension',
    typed: 'data/report',
  };

  beforeAll(async () => {
    const made = await backend.make();
    stop = made.stop;
    store = countingStore(made.store);
    await made.store.put(keys.big, Readable.from([big]), { contentLength: big.length });
    await made.store.put(keys.unicode, Readable.from([UNICODE_BODY]), { contentLength: UNICODE_BODY.length });
    await made.store.put(keys.png, Readable.from([PNG_HEADER]), { contentLength: PNG_HEADER.length });
    await made.store.put(keys.typed, Readable.from([Buffer.from('{"a":1}')]), { contentType: 'application/json', contentLength: 7 });
    gw = await startGateway({ cache: { max_memory: '64MiB' } }, [store, made.broken]);
  });

  afterAll(async () => {
    await gw?.close();
    await stop?.();
  });

  const url = (key: string, bucket = 'media') => `${gw.url}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

  it('returns byte-identical objects, then serves the second GET from cache with no store request', async () => {
    const first = await fetch(url(keys.big), { headers: AUTH });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cg-status')).toBe('hit=0');
    expect(Buffer.from(await first.arrayBuffer()).equals(big)).toBe(true);
    const getsAfterMiss = gets(store.calls);
    expect(getsAfterMiss).toBe(1);

    const second = await fetch(url(keys.big), { headers: AUTH });
    expect(second.status).toBe(200);
    expect(second.headers.get('x-cg-status')).toBe('hit=1');
    expect(Buffer.from(await second.arrayBuffer()).equals(big)).toBe(true);
    expect(gets(store.calls)).toBe(getsAfterMiss);
    expect(store.calls.head).toBe(0);
  });

  it('carries Content-Length, Content-Type, ETag and Last-Modified on GET and HEAD alike', async () => {
    const get = await fetch(url(keys.unicode), { headers: AUTH });
    expect(Buffer.from(await get.arrayBuffer()).toString()).toBe('héllo wörld\n');
    const head = await fetch(url(keys.unicode), { method: 'HEAD', headers: AUTH });
    expect(head.status).toBe(200);
    expect(head.headers.get('x-cg-status')).toBe('hit=1');
    for (const res of [get, head]) {
      expect(res.headers.get('content-length')).toBe(String(UNICODE_BODY.length));
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(res.headers.get('etag')).toMatch(/^(W\/)?".+"$/);
      expect(new Date(res.headers.get('last-modified')!).getTime()).toBeGreaterThan(Date.now() - 3_600_000);
    }
    expect(head.headers.get('etag')).toBe(get.headers.get('etag'));
    expect(await head.text()).toBe('');
  });

  it('HEAD on a cold object asks the store for metadata only and does not cache a body', async () => {
    const before = { ...store.calls };
    const head = await fetch(url(keys.typed), { method: 'HEAD', headers: AUTH });
    expect(head.status).toBe(200);
    expect(head.headers.get('x-cg-status')).toBe('hit=0');
    expect(head.headers.get('content-length')).toBe('7');
    expect(store.calls.head).toBe(before.head + 1);
    expect(gets(store.calls)).toBe(gets(before));
  });

  it('prefers the store type, then the extension, then magic bytes', async () => {
    const typed = await fetch(url(keys.typed), { headers: AUTH });
    expect(await typed.text()).toBe('{"a":1}');
    if (backend.name !== 'fs') expect(typed.headers.get('content-type')).toBe('application/json');

    const headPng = await fetch(url(keys.png), { method: 'HEAD', headers: AUTH });
    expect(headPng.headers.get('content-type')).toBe('image/png');
    const png = await fetch(url(keys.png), { headers: AUTH });
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await png.arrayBuffer()).equals(PNG_HEADER)).toBe(true);
  });

  it('answers a missing object and an unknown bucket with 404 and a one-line JSON reason', async () => {
    for (const target of [url('nope/missing.txt'), url('x.txt', 'no-bucket')]) {
      const res = await fetch(target, { headers: AUTH });
      expect(res.status).toBe(404);
      const body = (await res.json()) as { error: string };
      expect(body.error).not.toContain('\n');
      expect(body.error.length).toBeGreaterThan(0);
    }
    expect((await fetch(url('nope/missing.txt'), { method: 'HEAD', headers: AUTH })).status).toBe(404);
  });

  it('turns a store failure into 502 without a stack trace, and never into a 404', async () => {
    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(url('any.txt', 'broken'), { method, headers: AUTH });
      expect(res.status).toBe(502);
      const text = await res.text();
      if (method === 'GET') {
        expect(JSON.parse(text).error).toMatch(/store 'broken' failed/);
        expect(text).not.toMatch(/\s+at\s/);
      }
    }
  });

  it('refuses requests without valid credentials', async () => {
    expect((await fetch(url(keys.typed))).status).toBe(401);
    expect((await fetch(url(keys.typed), { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  });
});
