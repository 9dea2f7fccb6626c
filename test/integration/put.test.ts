/**
 * PUT through a running gateway against every real backend: streamed writes land byte-identical,
 * the next GET is a hit, overwrites are never served stale, a cut-off upload leaves no object
 * and the cache as it was, and limits and link claims refuse before any byte reaches the store.
 */
import { createHash, createPrivateKey, randomBytes, sign as edSign } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAzureStore } from '../../src/stores/azure.js';
import { createFsStore } from '../../src/stores/fs.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { startAzurite } from '../helpers/azurite.js';
import { countingStore, type CountingStore, gets } from '../helpers/counting-store.js';
import { AUTH, TEST_TOKEN, startGateway, type TestGateway } from '../helpers/gateway.js';
import { s3StoreConfig, startS3rver } from '../helpers/s3rver.js';
import { readAll } from '../helpers/store-bytes.js';
import { eventually } from '../helpers/eventually.js';

const MiB = 2 ** 20;
const SEED = Buffer.alloc(32, 7);
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const PRIVATE_KEY = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, SEED]), format: 'der', type: 'pkcs8' });
const PUBLIC_KEY = (PRIVATE_KEY.export({ format: 'jwk' }) as { x: string }).x;

/** An independent link signer (node:crypto), cachegate's format. */
function link(claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, exp: Math.floor(Date.now() / 1000) + 600, ...claims }));
  return `${payload.toString('base64url')}.${edSign(null, payload, PRIVATE_KEY).toString('base64url')}`;
}


/** Send a PUT whose body stops after `sendBytes` of the announced `announced`, then drop the connection. */
function cutOffPut(url: string, key: string, announced: number, sendBytes: number): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname, () => {
      socket.write(
        `PUT /${key} HTTP/1.1\r\nhost: ${u.host}\r\nauthorization: Bearer ${TEST_TOKEN}\r\ncontent-type: application/octet-stream\r\ncontent-length: ${announced}\r\n\r\n`,
      );
      const chunk = randomBytes(64 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < sendBytes) {
          const piece = chunk.subarray(0, Math.min(chunk.length, sendBytes - sent));
          sent += piece.length;
          if (!socket.write(piece)) {
            socket.once('drain', pump);
            return;
          }
        }
        // Give the gateway a moment to have pushed bytes onward, then vanish mid-body.
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 200);
      };
      pump();
    });
    socket.on('error', () => resolve());
  });
}

interface Backend {
  name: string;
  make(): Promise<{ store: ObjectStore; stop(): Promise<void>; leftovers?(): Promise<string[]> }>;
}

const backends: Backend[] = [
  {
    name: 'fs',
    async make() {
      const dir = await mkdtemp(path.join(tmpdir(), 'cg-put-'));
      return {
        store: createFsStore('media', { root: dir }),
        stop: () => rm(dir, { recursive: true, force: true }),
        leftovers: async () => readdir(path.join(dir, '.cachegate-tmp')).catch(() => []),
      };
    },
  },
  {
    name: 's3',
    async make() {
      const srv = await startS3rver({ buckets: ['put-bucket'] });
      const store = createS3Store('media', s3StoreConfig(srv, 'put-bucket', 32));
      return { store, stop: async () => (await store.close(), await srv.stop()) };
    },
  },
  {
    name: 'azure',
    async make() {
      const az = await startAzurite({ containers: ['media'] });
      return {
        store: createAzureStore('media', { type: 'azure', container: 'media', connection_string: az.connectionString }),
        stop: () => az.stop(),
      };
    },
  },
];

describe.each(backends)('PUT over $name', (backend) => {
  let made: Awaited<ReturnType<Backend['make']>>;
  let store: CountingStore;
  let gw: TestGateway;
  const url = (key: string) => `${gw.url}/media/${key}`;
  const put = (key: string, body: Buffer, headers: Record<string, string> = {}) =>
    fetch(url(key), { method: 'PUT', headers: { ...AUTH, ...headers }, body: new Uint8Array(body) });

  beforeAll(async () => {
    made = await backend.make();
    store = countingStore(made.store);
    gw = await startGateway(
      {
        auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
        cache: { max_memory: '32MiB', max_object_size: '4MiB' },
        limits: { max_upload_size: '24MiB' },
      },
      [store],
    );
  });
  afterAll(async () => {
    await gw?.close();
    await made?.stop();
  });

  it('stores the bytes and content type, answers 200 with the ETag, and the next GET is a hit', async () => {
    const body = randomBytes(3 * MiB + 11);
    const res = await put('w/through.bin', body, { 'content-type': 'video/x-custom' });
    expect(res.status).toBe(200);
    const etag = res.headers.get('etag');
    expect(etag).toMatch(/^(W\/)?".+"$/);
    expect((await readAll(made.store, 'w/through.bin'))!.equals(body)).toBe(true);

    const getsBefore = gets(store.calls);
    const get = await fetch(url('w/through.bin'), { headers: AUTH });
    expect(get.headers.get('x-cg-status')).toBe('hit=1');
    expect(get.headers.get('content-type')).toBe('video/x-custom');
    expect(get.headers.get('etag')).toBe(etag);
    expect(Buffer.from(await get.arrayBuffer()).equals(body)).toBe(true);
    expect(gets(store.calls)).toBe(getsBefore);

    // The type is kept by the store itself: a cold gateway on the same store serves it too.
    // (Closing this second gateway must not close the store the suite's gateway still uses: the
    // lean S3 read path's pool cannot be reopened.)
    const s = made.store;
    const shared: ObjectStore = {
      id: s.id,
      type: s.type,
      head: (k, o) => s.head(k, o),
      get: (k, o) => s.get(k, o),
      revalidate: (k, e, o) => s.revalidate(k, e, o),
      put: (k, b, o) => s.put(k, b, o),
      delete: (k, o) => s.delete(k, o),
      close: async () => {},
    };
    const cold = await startGateway({ cache: { max_memory: '8MiB' } }, [shared]);
    try {
      const again = await fetch(`${cold.url}/media/w/through.bin`, { headers: AUTH });
      expect(again.headers.get('x-cg-status')).toBe('hit=0');
      expect(again.headers.get('content-type')).toBe('video/x-custom');
      expect(Buffer.from(await again.arrayBuffer()).equals(body)).toBe(true);
    } finally {
      await cold.close();
    }
  });

  it('streams a chunked body larger than the part size to the store', async () => {
    const body = randomBytes(18 * MiB + 5);
    // A ReadableStream body makes fetch send Transfer-Encoding: chunked (no Content-Length).
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < body.length; i += MiB) controller.enqueue(body.subarray(i, i + MiB));
        controller.close();
      },
    });
    const res = await fetch(url('w/chunked.bin'), { method: 'PUT', headers: AUTH, body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(200);
    const stored = await readAll(made.store, 'w/chunked.bin');
    expect(createHash('sha256').update(stored!).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('never serves an overwritten object stale, even when the new one is too large to cache', async () => {
    const v1 = Buffer.from('version one');
    expect((await put('w/over.bin', v1)).status).toBe(200);
    expect(Buffer.from(await (await fetch(url('w/over.bin'), { headers: AUTH })).arrayBuffer()).equals(v1)).toBe(true);

    const v2 = randomBytes(6 * MiB); // above max_object_size: not cached, old copy must go
    expect((await put('w/over.bin', v2)).status).toBe(200);
    const after = await fetch(url('w/over.bin'), { headers: AUTH });
    expect(after.headers.get('x-cg-status')).toBe('hit=0');
    expect(Buffer.from(await after.arrayBuffer()).equals(v2)).toBe(true);

    const v3 = Buffer.from('version three');
    expect((await put('w/over.bin', v3)).status).toBe(200);
    const third = await fetch(url('w/over.bin'), { headers: AUTH });
    expect(third.headers.get('x-cg-status')).toBe('hit=1');
    expect(Buffer.from(await third.arrayBuffer()).equals(v3)).toBe(true);
  });

  it('does not let a fill that started before an overwrite publish the old bytes', async () => {
    const old = randomBytes(2 * MiB);
    await put('w/race.bin', old);
    await put('w/race.bin', old); // same bytes, cached
    // Evict by overwriting directly in the store, then race a cold GET against a PUT.
    await made.store.put('w/race.bin', (await import('node:stream')).Readable.from([old]), { contentLength: old.length });
    gw.gateway.service.invalidate('media', 'w/race.bin');
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    store.tap = async (_k, _o, real) => {
      const res = await real();
      await held; // the fill has the old object's stream but has not read it yet
      return res;
    };
    const slowGet = fetch(url('w/race.bin'), { headers: AUTH });
    await new Promise((r) => setTimeout(r, 100));
    const fresh = randomBytes(2 * MiB);
    expect((await put('w/race.bin', fresh)).status).toBe(200);
    release();
    await (await slowGet).arrayBuffer();
    store.tap = undefined;
    const now = await fetch(url('w/race.bin'), { headers: AUTH });
    expect(Buffer.from(await now.arrayBuffer()).equals(fresh)).toBe(true);
  });

  it.each([
    ['a small body (one request)', 3 * MiB],
    ['a large body (multipart / staged blocks)', 20 * MiB],
  ])('leaves no object when %s is cut off halfway, and an older object untouched', async (_label, size) => {
    const fresh = `w/cut-${size}.bin`;
    await cutOffPut(gw.url, `media/${fresh}`, size, Math.floor(size / 2));
    // Check for some time: nothing may appear at the key.
    expect(await eventually(async () => (await made.store.head(fresh)) !== undefined, 1_500)).toBe(false);

    const keep = `w/keep-${size}.bin`;
    const original = Buffer.from('the original bytes');
    await put(keep, original);
    await fetch(url(keep), { headers: AUTH }); // cached
    await cutOffPut(gw.url, `media/${keep}`, size, Math.floor(size / 2));
    await new Promise((r) => setTimeout(r, 500));
    expect((await readAll(made.store, keep))!.equals(original)).toBe(true);
    const cached = await fetch(url(keep), { headers: AUTH });
    expect(cached.headers.get('x-cg-status')).toBe('hit=1');
    expect(Buffer.from(await cached.arrayBuffer()).equals(original)).toBe(true);
    if (made.leftovers) expect(await eventually(async () => (await made.leftovers!()).length === 0)).toBe(true);
  });

  it('refuses an oversized body with 413: before reading when Content-Length says so, mid-stream when chunked', async () => {
    const puts = store.calls.put;
    const big = await fetch(url('w/too-big.bin'), { method: 'PUT', headers: { ...AUTH, 'content-length': String(25 * MiB) }, body: new Uint8Array(25 * MiB) }).catch(
      () => undefined,
    );
    // The gateway answers 413 and closes; some clients see the close before the answer.
    if (big) expect(big.status).toBe(413);
    expect(store.calls.put).toBe(puts);

    const body = randomBytes(26 * MiB);
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < body.length; i += MiB) controller.enqueue(body.subarray(i, i + MiB));
        controller.close();
      },
    });
    const chunked = await fetch(url('w/too-big-chunked.bin'), { method: 'PUT', headers: AUTH, body: stream, duplex: 'half' } as RequestInit).catch(
      () => undefined,
    );
    if (chunked) expect(chunked.status).toBe(413);
    expect(await eventually(async () => (await made.store.head('w/too-big-chunked.bin')) !== undefined, 1_000)).toBe(false);
  });

  it('answers bad input with a clear 4xx and writes nothing', async () => {
    const puts = store.calls.put;
    // node:http sends the path and headers as written (fetch would normalise `..` away).
    const raw = (await import('node:http')).request;
    const { hostname, port } = new URL(gw.url);
    const rawPut = (pathname: string, headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = raw({ hostname, port, path: pathname, method: 'PUT', headers: { ...AUTH, ...headers } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end('x');
      });
    expect(await rawPut('/media/w/bad-length', { 'content-length': '-5' })).toBe(400);
    expect(await rawPut('/media/w/bad-length', { 'content-length': '1e3' })).toBe(400);
    expect(await rawPut('/media/a/../b', {})).toBe(400);
    expect(await rawPut('/media/a/%2e%2e/b', {})).toBe(400);
    expect((await fetch(`${gw.url}/no-such-bucket/x`, { method: 'PUT', headers: AUTH, body: 'x' })).status).toBe(404);
    expect((await fetch(url('w/noauth'), { method: 'PUT', body: 'x' })).status).toBe(401);
    expect(store.calls.put).toBe(puts);
  });

  it('enforces PUT link claims before any byte reaches the store', async () => {
    const puts = store.calls.put;
    const key = 'w/linked.txt';
    const body = Buffer.from('twelve bytes');
    const q = (claims: Record<string, unknown>) => `${url(key)}?sig=${link({ m: 'PUT', b: 'media', p: key, ...claims })}`;
    const send = (target: string, headers: Record<string, string> = {}) => fetch(target, { method: 'PUT', headers, body: new Uint8Array(body) });

    expect((await send(`${url(key)}?sig=${link({ m: 'GET', b: 'media', p: key })}`)).status).toBe(403);
    expect((await send(q({ len: 13 }))).status).toBe(403);
    expect((await send(q({ max_len: 5 }))).status).toBe(413);
    expect((await send(q({ ct: 'text/plain' }), { 'content-type': 'image/png' })).status).toBe(403);
    expect(store.calls.put).toBe(puts);

    const ok = await send(q({ len: 12, max_len: 100, ct: 'text/plain' }), { 'content-type': 'text/plain' });
    expect(ok.status).toBe(200);
    expect((await readAll(made.store, key))!.equals(body)).toBe(true);
    expect(store.calls.put).toBe(puts + 1);
  });
});
