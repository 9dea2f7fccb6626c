/**
 * Per-store cache policies (core/freshness.ts) against real s3rver and Azurite, through the fault
 * proxy (test/helpers/fault-proxy.ts), which counts every request that reached the store. Objects
 * are overwritten "directly in the store" with a second store object that bypasses the proxy and
 * the gateway. Each policy is a store id on the same bucket/container:
 *
 * - `imm`  immutable (the default)
 * - `rev`  revalidate, max_age 1s
 * - `swr`  revalidate, max_age 0s, stale_while_revalidate 1h
 * - `sie`  revalidate, max_age 0s, stale_if_error 1h (every failure class)
 * - `sie5` the same, stale_if_error_on [5xx] only
 * - `old`  revalidate, max_age 0s, stale_if_error 300ms
 * - `ns`   no_store
 * - `neg`  negative_ttl 1h
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cacheKey } from '../../src/core/store-calls.js';
import { FAULT_BACKENDS as BACKENDS, type FaultBackend } from '../helpers/fault-backends.js';
import type { Fault } from '../helpers/fault-proxy.js';
import { AUTH, startGateway, type TestGateway } from '../helpers/gateway.js';
import { metric } from '../helpers/metrics.js';
import { readAll } from '../helpers/store-bytes.js';

const KiB = 1024;
const RETRIES = 1;

const POLICIES: Record<string, Record<string, unknown>> = {
  imm: {},
  rev: { policy: 'revalidate', max_age: '1s' },
  swr: { policy: 'revalidate', max_age: '0s', stale_while_revalidate: '1h' },
  sie: { policy: 'revalidate', max_age: '0s', stale_if_error: '1h' },
  sie5: { policy: 'revalidate', max_age: '0s', stale_if_error: '1h', stale_if_error_on: ['5xx'] },
  old: { policy: 'revalidate', max_age: '0s', stale_if_error: '300ms' },
  ns: { policy: 'no_store' },
  neg: { negative_ttl: '1h' },
};

/** The gateway's config: one store per policy (the ready-made stores replace the fs placeholders). */
function storesConfig(ids: string[]): Record<string, unknown> {
  return Object.fromEntries(ids.map((id) => [id, { type: 'fs', root: '/nonexistent', cache: POLICIES[id] }]));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(BACKENDS)('cache policies over $name through the fault proxy', (backend) => {
  let b: FaultBackend;
  let gw: TestGateway;
  let n = 0;
  const fresh = (prefix: string) => `${prefix}/${n++}.bin`;
  const url = (id: string, key: string) => `${gw.url}/${id}/${key}`;
  const get = (id: string, key: string, headers: Record<string, string> = {}) => fetch(url(id, key), { headers: { ...AUTH, ...headers } });
  const bytesOf = async (res: Response) => Buffer.from(await res.arrayBuffer());
  const put = async (id: string, key: string, body: Buffer) => {
    const res = await fetch(url(id, key), { method: 'PUT', headers: AUTH, body: new Uint8Array(body) });
    expect(res.status).toBe(200);
  };
  const overwriteDirectly = (key: string, body: Buffer) => b.direct.put(key, Readable.from([body]), { contentLength: body.length });
  const seen = () => ({ head: b.proxy.seen.HEAD ?? 0, get: b.proxy.seen.GET ?? 0 });
  const since = (before: { head: number; get: number }) => {
    const now = seen();
    return { head: now.head - before.head, get: now.get - before.get };
  };

  beforeAll(async () => {
    b = await backend.start();
    const ids = Object.keys(POLICIES);
    gw = await startGateway(
      {
        cache: { max_memory: '32MiB', slice_size: '64KiB' },
        limits: { store_timeout: '1s', store_idle_timeout: '1s', store_retries: RETRIES, breaker_failures: 0 },
        stores: storesConfig(ids),
      },
      ids.map((id) => b.storeFor(id)),
    );
  });
  afterEach(() => b.proxy.clear());
  afterAll(async () => {
    await gw?.close();
    await b?.stop();
  });

  it('immutable: an object overwritten in the store is served as cached (no store request) until a purge, then fresh at once', async () => {
    const key = fresh('imm');
    const v1 = randomBytes(10 * KiB);
    const v2 = randomBytes(12 * KiB);
    await put('imm', key, v1);
    await overwriteDirectly(key, v2);
    const before = seen();
    const hit = await get('imm', key);
    expect(hit.headers.get('x-cg-status')).toBe('hit=1');
    expect((await bytesOf(hit)).equals(v1)).toBe(true);
    expect(since(before)).toEqual({ head: 0, get: 0 });

    const purged = await gw.gateway.service.purge('imm', { key });
    expect(purged.purged).toBe(1);
    const after = await get('imm', key);
    expect((await bytesOf(after)).equals(v2)).toBe(true);
  });

  it('revalidate: within max_age a hit is served; after it, a 304 refreshes the copy and a change is served fresh', async () => {
    const key = fresh('rev');
    const v1 = randomBytes(10 * KiB);
    await put('rev', key, v1);
    let before = seen();
    expect((await bytesOf(await get('rev', key))).equals(v1)).toBe(true);
    expect(since(before)).toEqual({ head: 0, get: 0 });

    // Past max_age, unchanged: one conditional HEAD, the cached bytes, and max_age starts again.
    await sleep(1100);
    before = seen();
    const revalidated = await get('rev', key);
    expect(revalidated.headers.get('x-cg-status')).toBe('hit=1');
    expect((await bytesOf(revalidated)).equals(v1)).toBe(true);
    expect(since(before)).toEqual({ head: 1, get: 0 });
    before = seen();
    await (await get('rev', key)).arrayBuffer();
    expect(since(before)).toEqual({ head: 0, get: 0 });

    // Overwritten in the store: served fresh once max_age has passed, never later.
    const v2 = randomBytes(11 * KiB);
    await overwriteDirectly(key, v2);
    await sleep(1100);
    const changed = await get('rev', key);
    expect((await bytesOf(changed)).equals(v2)).toBe(true);
    const again = await get('rev', key);
    expect(again.headers.get('x-cg-status')).toBe('hit=1');
    expect((await bytesOf(again)).equals(v2)).toBe(true);
  });

  it('revalidate: 20 concurrent requests past max_age make one store request; a sliced object revalidates once, by ETag', async () => {
    const key = fresh('rev');
    const v1 = randomBytes(300 * KiB); // five 64 KiB slices
    await put('rev', key, v1);
    // Without a disk tier a PUT writes no slices through: one read caches them.
    expect((await bytesOf(await get('rev', key))).equals(v1)).toBe(true);
    await sleep(1100);
    let before = seen();
    const ranges = Array.from({ length: 20 }, (_, i) => (i * 15 * KiB) % (300 * KiB));
    const answers = await Promise.all(ranges.map((start) => get('rev', key, { range: `bytes=${start}-${start + 999}` })));
    for (const [i, a] of answers.entries()) {
      expect(a.status).toBe(206);
      expect((await bytesOf(a)).equals(v1.subarray(ranges[i]!, ranges[i]! + 1000))).toBe(true);
    }
    expect(since(before)).toEqual({ head: 1, get: 0 });

    // Changed in the store: every slice is read as the new version, none mixed with the old.
    const v2 = randomBytes(300 * KiB);
    await overwriteDirectly(key, v2);
    await sleep(1100);
    before = seen();
    const whole = await Promise.all(Array.from({ length: 5 }, () => get('rev', key)));
    for (const w of whole) expect((await bytesOf(w)).equals(v2)).toBe(true);
    const asked = since(before);
    expect(asked.head).toBe(1);
    expect(asked.get).toBe(5); // each slice once, shared by the five readers
  });

  it('stale_while_revalidate: the old copy is served at once with Age while one revalidation runs; the next request gets the new one', async () => {
    const key = fresh('swr');
    const v1 = randomBytes(8 * KiB);
    await put('swr', key, v1);
    const v2 = randomBytes(9 * KiB);
    await overwriteDirectly(key, v2);
    const stale = await metric(gw, 'cachegate_stale_served_total', { bucket: 'swr', reason: 'revalidating' });
    const before = seen();
    const first = await get('swr', key);
    expect((await bytesOf(first)).equals(v1)).toBe(true);
    expect(first.headers.get('age')).toMatch(/^\d+$/);
    await sleep(300); // the background revalidation finds the change and drops the copy
    expect(since(before).head).toBe(1);
    const second = await get('swr', key);
    expect((await bytesOf(second)).equals(v2)).toBe(true);
    expect((await metric(gw, 'cachegate_stale_served_total', { bucket: 'swr', reason: 'revalidating' })) - stale).toBe(1);
  });

  it('no_store: every request reaches the store, nothing is cached, an overwrite is served at once', async () => {
    const key = fresh('ns');
    const v1 = randomBytes(10 * KiB);
    await put('ns', key, v1);
    for (let i = 0; i < 3; i++) {
      const before = seen();
      const res = await get('ns', key);
      expect(res.headers.get('x-cg-status')).toBe('hit=0');
      expect((await bytesOf(res)).equals(v1)).toBe(true);
      expect(since(before)).toEqual({ head: 1, get: 1 });
    }
    const v2 = randomBytes(10 * KiB);
    await overwriteDirectly(key, v2);
    expect((await bytesOf(await get('ns', key))).equals(v2)).toBe(true);
    // Neither the PUT nor the reads left a copy in the cache.
    expect(gw.gateway.memory.peek(cacheKey('ns', key))).toBeUndefined();
  });

  it('negative_ttl: a 404 is remembered only where set, and never outlives a PUT or DELETE through the gateway', async () => {
    const key = fresh('neg');
    let before = seen();
    expect((await get('neg', key)).status).toBe(404);
    const asked = since(before).head + since(before).get;
    expect(asked).toBeGreaterThanOrEqual(1);
    before = seen();
    expect((await get('neg', key)).status).toBe(404);
    expect((await fetch(url('neg', key), { method: 'HEAD', headers: AUTH })).status).toBe(404);
    expect(since(before)).toEqual({ head: 0, get: 0 });

    const body = randomBytes(4 * KiB);
    await put('neg', key, body);
    expect((await bytesOf(await get('neg', key))).equals(body)).toBe(true);
    expect((await fetch(url('neg', key), { method: 'DELETE', headers: AUTH })).status).toBe(204);
    expect((await get('neg', key)).status).toBe(404);
    // Put back directly in the store: the remembered 404 holds (that is what negative_ttl means) …
    await overwriteDirectly(key, body);
    expect((await get('neg', key)).status).toBe(404);
    // … until a PUT through the gateway.
    await put('neg', key, body);
    expect((await get('neg', key)).status).toBe(200);

    // Without negative_ttl, every 404 asks the store.
    const other = fresh('imm');
    for (let i = 0; i < 2; i++) {
      before = seen();
      expect((await get('imm', other)).status).toBe(404);
      expect(since(before).head + since(before).get).toBeGreaterThanOrEqual(1);
    }
  });

  const CLASSES: Array<{ cls: string; fault: Fault }> = [
    { cls: 'connect', fault: { kind: 'reset' } },
    { cls: '5xx', fault: { kind: 'status', status: 500 } },
    { cls: 'throttle', fault: backend.name === 's3rver' ? { kind: 'slowdown' } : { kind: 'status', status: 503 } },
    { cls: 'timeout', fault: { kind: 'stall' } },
  ];

  for (const { cls, fault } of CLASSES) {
    it(`stale_if_error (${cls}): a failing revalidation serves the copy with Age and counts it; switched off, the failure is the answer`, async () => {
      const key = fresh('sie');
      const v1 = randomBytes(6 * KiB);
      await put('sie', key, v1);
      await put('sie5', key, v1);
      b.proxy.inject(fault, Infinity, 'HEAD');
      const stale = await metric(gw, 'cachegate_stale_served_total', { bucket: 'sie', reason: 'error' });
      const res = await get('sie', key);
      expect(res.status).toBe(200);
      expect(Number(res.headers.get('age'))).toBeGreaterThanOrEqual(0);
      expect((await bytesOf(res)).equals(v1)).toBe(true);
      expect((await metric(gw, 'cachegate_stale_served_total', { bucket: 'sie', reason: 'error' })) - stale).toBe(1);

      const off = await get('sie5', key);
      if (cls === '5xx') {
        expect(off.status).toBe(200);
        expect((await bytesOf(off)).equals(v1)).toBe(true);
      } else {
        expect([502, 503, 504]).toContain(off.status);
        const text = await off.text();
        expect(text).not.toContain('\n');
        expect(JSON.parse(text)).toHaveProperty('code');
      }
    });
  }

  it('stale_if_error: a copy older than max_age + stale_if_error is not served; the failure is the answer', async () => {
    const key = fresh('old');
    await put('old', key, randomBytes(2 * KiB));
    await sleep(400);
    b.proxy.inject({ kind: 'status', status: 500 }, Infinity, 'HEAD');
    const res = await get('old', key);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { code: string }).code).toBe('GW_ERR_STORE');
  });

  it('retries do not multiply a herd: 20 concurrent misses on a failing store ask it 1 + store_retries times', async () => {
    const key = fresh('imm');
    await overwriteDirectly(key, randomBytes(4 * KiB));
    // Each failure takes 200 ms, so all 20 requests arrive while the one fill is still failing.
    b.proxy.inject({ kind: 'status', status: 500, delayMs: 200 }, Infinity);
    const before = seen();
    const answers = await Promise.all(Array.from({ length: 20 }, () => get('imm', key)));
    for (const a of answers) {
      expect(a.status).toBe(502);
      await a.arrayBuffer();
    }
    // One fill for the herd, tried 1 + RETRIES times by the store guard; the SDK adds none.
    expect(since(before).get).toBe(1 + RETRIES);
    b.proxy.clear();
    expect((await readAll(b.direct, key))?.length).toBe(4 * KiB);
  });
});

describe.each(BACKENDS)('the store down behind an open breaker, over $name', (backend) => {
  let b: FaultBackend;
  let gw: TestGateway;
  const BREAKER_FAILURES = 3;

  beforeAll(async () => {
    b = await backend.start();
    gw = await startGateway(
      {
        cache: { max_memory: '16MiB' },
        // A long cool-down: no probe falls inside the run, so the count below is exact.
        limits: { store_timeout: '1s', store_retries: RETRIES, breaker_failures: BREAKER_FAILURES, breaker_cooldown: '60s' },
        stores: storesConfig(['sie', 'rev']),
      },
      [b.storeFor('sie'), b.storeFor('rev')],
    );
  });
  afterAll(async () => {
    await gw?.close();
    await b?.stop();
  });

  it('with stale_if_error: 1h, 100 hits in a row succeed, counted stale, and the store is asked only until the breaker opens', async () => {
    const body = randomBytes(5 * KiB);
    const key = 'down/a.bin';
    expect((await fetch(`${gw.url}/sie/${key}`, { method: 'PUT', headers: AUTH, body: new Uint8Array(body) })).status).toBe(200);
    b.proxy.inject({ kind: 'status', status: 500 }, Infinity);
    const stale = await metric(gw, 'cachegate_stale_served_total', { bucket: 'sie', reason: 'error' });
    const before = { ...b.proxy.seen };
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${gw.url}/sie/${key}`, { headers: AUTH });
      expect(res.status).toBe(200);
      expect(res.headers.get('age')).toMatch(/^\d+$/);
      expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
    }
    expect((await metric(gw, 'cachegate_stale_served_total', { bucket: 'sie', reason: 'error' })) - stale).toBe(100);
    const asked = Object.entries(b.proxy.seen).reduce((sum, [m, v]) => sum + v - (before[m] ?? 0), 0);
    // Each failed revalidation is 1 + retries HEADs; after BREAKER_FAILURES of them the breaker answers.
    expect(asked).toBe(BREAKER_FAILURES * (1 + RETRIES));
    expect(await metric(gw, 'cachegate_store_breaker_state', { bucket: 'sie' })).toBe(2);
  });
});

describe.each(BACKENDS)('a store that refuses connections, over $name', (backend) => {
  it('serves the stale copy under stale_if_error, with Age, and fails without it', async () => {
    const b = await backend.start();
    const gw = await startGateway(
      { cache: { max_memory: '16MiB' }, limits: { store_timeout: '1s', store_retries: RETRIES, breaker_failures: 0 }, stores: storesConfig(['sie', 'rev']) },
      [b.storeFor('sie'), b.storeFor('rev')],
    );
    try {
      const body = randomBytes(3 * KiB);
      for (const id of ['sie', 'rev']) {
        expect((await fetch(`${gw.url}/${id}/refused.bin`, { method: 'PUT', headers: AUTH, body: new Uint8Array(body) })).status).toBe(200);
      }
      await b.proxy.close(); // nothing listens on the store's port any more: ECONNREFUSED
      await sleep(1100); // past rev's max_age
      const stale = await fetch(`${gw.url}/sie/refused.bin`, { headers: AUTH });
      expect(stale.status).toBe(200);
      expect(stale.headers.get('age')).toMatch(/^\d+$/);
      expect(Buffer.from(await stale.arrayBuffer()).equals(body)).toBe(true);
      const failed = await fetch(`${gw.url}/rev/refused.bin`, { headers: AUTH });
      expect(failed.status).toBe(502);
      expect(((await failed.json()) as { code: string }).code).toBe('GW_ERR_STORE');
    } finally {
      await gw.close();
      await b.stop();
    }
  });
});
