/**
 * DELETE (the store's object and every cached copy) and POST /admin/purge (cached copies only,
 * by key or prefix, with the admin token), through running gateways on real stores.
 */
import type { CachedMeta } from '../../src/cache/types.js';
import { createPrivateKey, randomBytes, sign as edSign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PURGE_SLICE_KEYS } from '../../src/core/object-service.js';
import { cacheKey } from '../../src/core/store-calls.js';
import { signLink } from '../../src/sign/index.js';
import { createFsStore } from '../../src/stores/fs.js';
import { countingStore, type CountingStore } from '../helpers/counting-store.js';
import { AUTH, TEST_TOKEN, startGateway, type TestGateway } from '../helpers/gateway.js';
import { readAll } from '../helpers/store-bytes.js';
import { BACKENDS } from '../helpers/backends.js';

const SEED = Buffer.alloc(32, 44);
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const PRIVATE_KEY = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, SEED]), format: 'der', type: 'pkcs8' });
const PUBLIC_KEY = (PRIVATE_KEY.export({ format: 'jwk' }) as { x: string }).x;
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

function link(claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, exp: Math.floor(Date.now() / 1000) + 600, b: 'media', ...claims }));
  return `${payload.toString('base64url')}.${edSign(null, payload, PRIVATE_KEY).toString('base64url')}`;
}


describe.each(BACKENDS)('DELETE over $name', (backend) => {
  let made: Awaited<ReturnType<(typeof BACKENDS)[number]['make']>>;
  let store: CountingStore;
  let gw: TestGateway;
  let cacheDir: string;
  const url = (key: string) => `${gw.url}/media/${key}`;
  const put = async (key: string, body: Buffer | string) => {
    const res = await fetch(url(key), { method: 'PUT', headers: AUTH, body: typeof body === 'string' ? body : new Uint8Array(body) });
    expect(res.status).toBe(200);
  };

  beforeAll(async () => {
    made = await backend.make();
    store = countingStore(made.store);
    cacheDir = await mkdtemp(path.join(tmpdir(), 'cg-del-cache-'));
    gw = await startGateway(
      {
        auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
        cache: { max_memory: '8MiB', max_disk: '64MiB', disk_path: cacheDir },
      },
      [store],
    );
  });
  afterAll(async () => {
    await gw?.close();
    await made?.stop();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('deletes the object in the store and every cached copy, memory and disk', async () => {
    const body = randomBytes(100_000);
    await put('d/a.bin', body);
    expect((await fetch(url('d/a.bin'), { headers: AUTH })).headers.get('x-cg-status')).toBe('hit=1');
    await gw.gateway.disk!.flushed();
    expect(gw.gateway.disk!.has(cacheKey('media', 'd/a.bin'))).toBe(true);

    const res = await fetch(url('d/a.bin'), { method: 'DELETE', headers: AUTH });
    expect(res.status).toBe(204);
    expect(await readAll(made.store, 'd/a.bin')).toBeUndefined();
    await gw.gateway.disk!.flushed();
    expect(gw.gateway.disk!.has(cacheKey('media', 'd/a.bin'))).toBe(false);
    expect((await fetch(url('d/a.bin'), { headers: AUTH })).status).toBe(404);
    // Deleting what is not there is not an error.
    expect((await fetch(url('d/a.bin'), { method: 'DELETE', headers: AUTH })).status).toBe(204);
  });

  it('takes a DELETE link, and refuses other links and no credentials', async () => {
    await put('d/b.txt', 'b');
    expect((await fetch(`${url('d/b.txt')}?sig=${link({ m: 'GET', p: 'd/b.txt' })}`, { method: 'DELETE' })).status).toBe(403);
    expect((await fetch(`${url('d/b.txt')}?sig=${link({ m: 'DELETE', p: 'd/other.txt' })}`, { method: 'DELETE' })).status).toBe(403);
    expect((await fetch(url('d/b.txt'), { method: 'DELETE' })).status).toBe(401);
    expect((await readAll(made.store, 'd/b.txt'))?.toString()).toBe('b');
    // A DELETE link does not allow reading.
    expect((await fetch(`${url('d/b.txt')}?sig=${link({ m: 'DELETE', p: 'd/b.txt' })}`)).status).toBe(403);
    const ok = await fetch(`${url('d/b.txt')}?sig=${link({ m: 'DELETE', p: 'd/b.txt' })}`, { method: 'DELETE' });
    expect(ok.status).toBe(204);
    expect(await readAll(made.store, 'd/b.txt')).toBeUndefined();
  });

  it('never lets a fill in flight publish the deleted object', async () => {
    await put('d/c.bin', randomBytes(50_000));
    gw.gateway.service.invalidate('media', 'd/c.bin');
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    store.tap = async (_k, _o, real) => {
      const res = await real();
      await held;
      return res;
    };
    const slow = fetch(url('d/c.bin'), { headers: AUTH });
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(url('d/c.bin'), { method: 'DELETE', headers: AUTH })).status).toBe(204);
    release();
    await (await slow).arrayBuffer();
    store.tap = undefined;
    expect((await fetch(url('d/c.bin'), { headers: AUTH })).status).toBe(404);
  });
});

describe('the signing helper signs DELETE links', () => {
  it('makes a link with m: DELETE', async () => {
    const seed = SEED.toString('base64url');
    const url = await signLink({ baseUrl: 'https://cdn.example', bucket: 'media', path: 'a/b.txt', method: 'DELETE', privateKey: seed, expiresIn: 60 });
    const sig = new URL(url).searchParams.get('sig')!;
    const claims = JSON.parse(Buffer.from(sig.split('.')[0]!, 'base64url').toString()) as { m: string };
    expect(claims.m).toBe('DELETE');
  });
});

describe('POST /admin/purge', () => {
  let dir: string;
  let store: CountingStore;
  let gw: TestGateway;
  const purge = (body: unknown, token: string | null = ADMIN_TOKEN) =>
    fetch(`${gw.url}/admin/purge`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-purge-'));
    store = countingStore(createFsStore('media', { root: dir }));
    gw = await startGateway({ auth: { bearer_token: TEST_TOKEN, admin_token: ADMIN_TOKEN }, cache: { max_memory: '512MiB' } /* 100,000 entries at their real cost (~3 KB each) */ }, [store]);
  });
  afterAll(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('drops one key from the cache and leaves the store alone', async () => {
    await fetch(`${gw.url}/media/p/one.txt`, { method: 'PUT', headers: AUTH, body: 'one' });
    expect((await fetch(`${gw.url}/media/p/one.txt`, { headers: AUTH })).headers.get('x-cg-status')).toBe('hit=1');
    const res = await purge({ bucket: 'media', key: 'p/one.txt' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ purged: 1 });
    const after = await fetch(`${gw.url}/media/p/one.txt`, { headers: AUTH });
    expect(after.headers.get('x-cg-status')).toBe('hit=0');
    expect(await after.text()).toBe('one');
    expect(await (await purge({ bucket: 'media', key: 'p/never-cached.txt' })).json()).toEqual({ purged: 0 });
  });

  it('purges 100,000 keys by prefix, yielding so other requests are answered meanwhile', async () => {
    const memory = gw.gateway.memory;
    const body = Buffer.from('x');
    const set = (key: string, entry: { meta: CachedMeta; body: Buffer }) => memory.put(key, entry.meta, entry.body);
    for (let i = 0; i < 100_000; i++) {
      set(cacheKey('media', `bulk/${i}`), {
        meta: { size: 1, etag: `"${i}"`, lastModifiedMs: undefined, contentType: 'text/plain', cachedAtMs: Date.now() },
        body,
      });
    }
    set(cacheKey('media', 'kept/0'), { meta: { size: 1, etag: '"k"', lastModifiedMs: undefined, contentType: 'text/plain', cachedAtMs: Date.now() }, body });
    const bulk = () => [...memory.keys()].filter((k) => k.startsWith(cacheKey('media', 'bulk/'))).length;
    expect(bulk()).toBe(100_000);

    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const order: string[] = [];
    const purging = purge({ bucket: 'media', prefix: 'bulk/' }).then(async (r) => {
      order.push('purge');
      return r;
    });
    // Asked after the purge started: answered before it ends, because the purge yields.
    await new Promise((r) => setImmediate(r));
    const health = fetch(`${gw.url}/health`).then(() => order.push('health'));
    const res = await purging;
    await health;
    lag.disable();
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ purged: 100_000 });
    expect(order).toEqual(['health', 'purge']);
    expect(bulk()).toBe(0);
    expect(memory.has(cacheKey('media', 'kept/0'))).toBe(true);
    // Reported, not asserted: how long the event loop was held at most during the purge.
    console.log(`purge of 100,000 keys: event-loop delay max ${(lag.max / 1e6).toFixed(1)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms`);

    // The structure that bounds the delay: the walk gives the loop back at least every
    // PURGE_SLICE_KEYS keys (and sooner when its time budget is spent); no await per key.
    for (let i = 0; i < 100_000; i++) {
      set(cacheKey('media', `bulk/${i}`), { meta: { size: 1, etag: `"${i}"`, lastModifiedMs: undefined, contentType: 'text/plain', cachedAtMs: Date.now() - 1 }, body });
    }
    const direct = await gw.gateway.service.purge('media', { prefix: 'bulk/' });
    expect(direct.purged).toBe(100_000);
    expect(direct.maxKeysPerSlice).toBeLessThanOrEqual(PURGE_SLICE_KEYS);
    expect(direct.yields).toBeGreaterThanOrEqual(100_000 / PURGE_SLICE_KEYS);
    console.log(`purge of 100,000 keys: ${direct.yields} yields, longest slice ${direct.maxSliceMs.toFixed(1)} ms`);
  });

  it('refuses without the admin token (401), with a bearer token (403), and bad bodies (400)', async () => {
    expect((await purge({ bucket: 'media', key: 'a' }, null)).status).toBe(401);
    expect((await purge({ bucket: 'media', key: 'a' }, 'wrong')).status).toBe(401);
    expect((await purge({ bucket: 'media', key: 'a' }, TEST_TOKEN)).status).toBe(403);
    for (const body of ['not json', { bucket: 'media', prefix: '' }, { prefix: 'a/' }, { bucket: '', key: 'a' }, { bucket: 'media', key: 'a', prefix: 'a/' }, { bucket: 'media' }, [1]]) {
      const res = await purge(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('GW_ERR_BAD_REQUEST');
    }
    expect((await purge({ bucket: 'nope', prefix: 'a/' })).status).toBe(404);
  });
});
