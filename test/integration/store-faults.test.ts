/**
 * Store protection under injected faults: a fault proxy (test/helpers/fault-proxy.ts) sits
 * between the gateway and a real s3rver or Azurite and fails requests on command. The proxy counts what
 * reached the store, so the tests see exactly how often it was asked.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '../../src/stores/types.js';
import { FAULT_BACKENDS, type FaultBackend } from '../helpers/fault-backends.js';
import type { FaultProxy } from '../helpers/fault-proxy.js';
import { AUTH, startGateway, type TestGateway } from '../helpers/gateway.js';
import { eventually } from '../helpers/eventually.js';
import { metric } from '../helpers/metrics.js';

const KiB = 1024;

describe.each(FAULT_BACKENDS)('store faults through a proxy in front of $name', (backend) => {
  let b: FaultBackend;
  let proxy: FaultProxy;
  let store: ObjectStore;
  let gw: TestGateway;
  let n = 0;
  const objects = new Map<string, Buffer>();

  /** A new object in the store (written around the proxy's faults), uncached in the gateway. */
  const fresh = async (bytes = 64 * KiB): Promise<string> => {
    const key = `f/${n++}.bin`;
    const body = randomBytes(bytes);
    const res = await fetch(`${gw.url}/media/${key}`, { method: 'PUT', headers: AUTH, body: new Uint8Array(body) });
    expect(res.status).toBe(200);
    gw.gateway.service.invalidate('media', key);
    objects.set(key, body);
    return key;
  };
  const get = (key: string) => fetch(`${gw.url}/media/${key}`, { headers: AUTH });
  const gets = () => proxy.seen.GET ?? 0;

  beforeAll(async () => {
    b = await backend.start();
    proxy = b.proxy;
    store = b.storeFor('media');
    gw = await startGateway(
      {
        cache: { max_memory: '16MiB', max_object_size: '1MiB' },
        limits: { store_timeout: '2s', store_idle_timeout: '500ms', store_retries: 2, breaker_failures: 0 },
      },
      [store],
    );
  });
  afterEach(() => proxy.clear());
  afterAll(async () => {
    await gw?.close();
    await b?.stop();
  });

  it('retries a read that gets 503 SlowDown, 500 or a reset, and serves the bytes', async () => {
    // Azure has no SlowDown: its throttling answer is a 503.
    const throttle = backend.name === 's3rver' ? ({ kind: 'slowdown' } as const) : ({ kind: 'status', status: 503 } as const);
    for (const fault of [throttle, { kind: 'status', status: 500 }, { kind: 'reset' }] as const) {
      const key = await fresh();
      proxy.inject(fault, 2, 'GET');
      const before = gets();
      const retries = await metric(gw, 'cachegate_store_retries_total', { bucket: 'media' });
      const res = await get(key);
      expect({ kind: fault.kind, status: res.status }).toEqual({ kind: fault.kind, status: 200 });
      expect(Buffer.from(await res.arrayBuffer()).equals(objects.get(key)!)).toBe(true);
      expect(gets() - before, fault.kind).toBe(3);
      expect((await metric(gw, 'cachegate_store_retries_total', { bucket: 'media' })) - retries).toBe(2);
    }
  });

  it('does not multiply a herd: 20 concurrent misses behind two failures make 3 store GETs', async () => {
    const key = await fresh();
    proxy.inject({ kind: 'status', status: 503 }, 2, 'GET');
    const before = gets();
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(key)));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(Buffer.from(await a.arrayBuffer()).equals(objects.get(key)!)).toBe(true);
    }
    expect(gets() - before).toBe(3);
  });

  it('answers 502 with a one-line reason once retries are spent, and caches nothing', async () => {
    const key = await fresh();
    proxy.inject({ kind: 'status', status: 500 }, Infinity, 'GET');
    const before = gets();
    const res = await get(key);
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(text).not.toContain('\n');
    expect((JSON.parse(text) as { code: string }).code).toBe('GW_ERR_STORE');
    expect(gets() - before).toBe(3);
    proxy.clear();
    const again = await get(key);
    expect(again.headers.get('x-cg-status')).toBe('hit=0');
    expect(Buffer.from(await again.arrayBuffer()).equals(objects.get(key)!)).toBe(true);
  });

  it('never caches a body the store cut short; the next read refetches it whole', async () => {
    const key = await fresh(256 * KiB);
    proxy.inject({ kind: 'cut', afterBytes: 100_000 }, 1, 'GET');
    const before = gets();
    const res = await get(key);
    // Headers may already be out: then the body is cut, never completed with other bytes.
    const body = await res.arrayBuffer().then(
      (b) => Buffer.from(b),
      () => undefined,
    );
    expect(body === undefined || body.length < objects.get(key)!.length).toBe(true);
    expect(gets() - before).toBe(1); // a body that failed after its headers is not retried
    const again = await get(key);
    expect(again.headers.get('x-cg-status')).toBe('hit=0');
    expect(Buffer.from(await again.arrayBuffer()).equals(objects.get(key)!)).toBe(true);
  });

  it('answers 504 when the store stalls, within its deadline, and lets go of the stalled connection', async () => {
    const key = await fresh();
    proxy.inject({ kind: 'stall' }, Infinity, 'GET');
    const res = await get(key);
    expect(res.status).toBe(504);
    expect(((await res.json()) as { code: string }).code).toBe('GW_ERR_STORE_TIMEOUT');
    // The deadline's signal reached the store client: it closed the request it gave up on.
    expect(proxy.seen.GET).toBeGreaterThan(0);
    expect(await eventually(() => proxy.stalledOpen === 0, 5_000)).toBe(true);
  });
});

describe.each(FAULT_BACKENDS)('the circuit breaker, over $name', (backend) => {
  let b: FaultBackend;
  let proxy: FaultProxy;
  let gw: TestGateway;

  beforeAll(async () => {
    b = await backend.start();
    proxy = b.proxy;
    gw = await startGateway(
      {
        cache: { max_memory: '16MiB' },
        limits: { store_timeout: '2s', store_retries: 1, breaker_failures: 3, breaker_cooldown: '1s' },
      },
      [b.storeFor('media')],
    );
  });
  afterAll(async () => {
    await gw?.close();
    await b?.stop();
  });

  it('opens after consecutive failures, fails misses fast while hits go on, and one probe closes it', async () => {
    const put = (key: string) => fetch(`${gw.url}/media/${key}`, { method: 'PUT', headers: AUTH, body: `body of ${key}` });
    expect((await put('hot.txt')).status).toBe(200); // cached by write-through
    for (let i = 0; i < 12; i++) expect((await put(`cold/${i}.txt`)).status).toBe(200);
    for (let i = 0; i < 12; i++) gw.gateway.service.invalidate('media', `cold/${i}.txt`);

    proxy.inject({ kind: 'status', status: 500 }, Infinity);
    const before = { ...proxy.seen };
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${gw.url}/media/cold/${i}.txt`, { headers: AUTH });
      statuses.push(res.status);
      if (res.status === 503) expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      await res.arrayBuffer();
    }
    // Three misses fail (each tried twice), then the breaker answers for the store.
    expect(statuses.slice(0, 3)).toEqual([502, 502, 502]);
    expect(statuses.slice(3)).toEqual(Array(7).fill(503));
    const asked = (proxy.seen.GET ?? 0) - (before.GET ?? 0) + ((proxy.seen.HEAD ?? 0) - (before.HEAD ?? 0));
    expect(asked).toBe(6);
    expect(await metric(gw, 'cachegate_store_breaker_state', { bucket: 'media' })).toBe(2);
    expect(await metric(gw, 'cachegate_store_fail_fast_total', { bucket: 'media', reason: 'breaker' })).toBe(7);

    // Hits never ask the store, so they keep being served.
    const hit = await fetch(`${gw.url}/media/hot.txt`, { headers: AUTH });
    expect(hit.status).toBe(200);
    expect(await hit.text()).toBe('body of hot.txt');

    // The store recovers; after the cool-down one probe goes through and closes the breaker.
    proxy.clear();
    await new Promise((r) => setTimeout(r, 1200));
    const probe = await fetch(`${gw.url}/media/cold/10.txt`, { headers: AUTH });
    expect(probe.status).toBe(200);
    expect(await probe.text()).toBe('body of cold/10.txt');
    expect(await metric(gw, 'cachegate_store_breaker_state', { bucket: 'media' })).toBe(0);
    expect((await fetch(`${gw.url}/media/cold/11.txt`, { headers: AUTH })).status).toBe(200);
  });
});

describe.each(FAULT_BACKENDS)('the per-store concurrency cap and hedged GETs, over $name', (backend) => {
  let b: FaultBackend;
  let proxy: FaultProxy;
  let capped: TestGateway;
  let hedged: TestGateway;

  beforeAll(async () => {
    b = await backend.start();
    proxy = b.proxy;
    capped = await startGateway(
      { cache: { max_memory: '16MiB' }, limits: { store_timeout: '5s', store_max_concurrent: 1, store_queue_timeout: '200ms', store_retries: 0 } },
      [b.storeFor('media')],
    );
    hedged = await startGateway(
      { cache: { max_memory: '16MiB' }, limits: { store_timeout: '10s', hedge_quantile: 0.5, store_retries: 0 } },
      [b.storeFor('media')],
    );
    for (let i = 0; i < 40; i++) {
      expect((await fetch(`${capped.url}/media/q/${i}.txt`, { method: 'PUT', headers: AUTH, body: `q${i}` })).status).toBe(200);
    }
  });
  afterAll(async () => {
    await capped?.close();
    await hedged?.close();
    await b?.stop();
  });

  it('queues calls past the cap and answers 503 with Retry-After when the queue deadline passes', async () => {
    for (let i = 0; i < 8; i++) capped.gateway.service.invalidate('media', `q/${i}.txt`);
    proxy.inject({ kind: 'latency', ms: 1500 }, 1, 'GET');
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${capped.url}/media/q/${i}.txt`, { headers: AUTH })));
    const statuses = answers.map((a) => a.status);
    // One call holds the only slot for 1.5 s; the queue gives up on the others after 200 ms.
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    const busy = answers.filter((a) => a.status === 503);
    expect(busy.length).toBeGreaterThanOrEqual(1);
    for (const b of busy) expect(b.headers.get('retry-after')).toBe('1');
    expect(await metric(capped, 'cachegate_store_fail_fast_total', { bucket: 'media', reason: 'queue' })).toBe(busy.length);
    await Promise.all(answers.map((a) => a.arrayBuffer()));
  });

  it('sends a second GET when the first is slower than the latency quantile, and serves the first answer', async () => {
    // Learn the latency distribution first (hedging waits for enough samples).
    for (let i = 10; i < 40; i++) await (await fetch(`${hedged.url}/media/q/${i}.txt`, { headers: AUTH })).arrayBuffer();
    for (let i = 10; i < 40; i++) hedged.gateway.service.invalidate('media', `q/${i}.txt`);
    // Warm the quantile again with misses, then make one GET very slow.
    for (let i = 10; i < 30; i++) await (await fetch(`${hedged.url}/media/q/${i}.txt`, { headers: AUTH })).arrayBuffer();
    const hedges = await metric(hedged, 'cachegate_store_hedges_total', { bucket: 'media' });
    proxy.inject({ kind: 'latency', ms: 4000 }, 1, 'GET');
    const before = proxy.seen.GET ?? 0;
    const res = await fetch(`${hedged.url}/media/q/35.txt`, { headers: AUTH });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('q35');
    expect((proxy.seen.GET ?? 0) - before).toBe(2);
    expect((await metric(hedged, 'cachegate_store_hedges_total', { bucket: 'media' })) - hedges).toBe(1);
  });
});
