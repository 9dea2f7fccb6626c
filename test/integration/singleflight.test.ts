/**
 * One store request per herd, with no added wait: waiters stream bytes as they arrive, a
 * waiter that leaves disturbs nobody, a failure reaches everyone, and nothing hangs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createFsStore } from '../../src/stores/fs.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { GetResult } from '../../src/stores/types.js';
import { countingStore, type CountingStore, gets } from '../helpers/counting-store.js';
import { AUTH, startGateway, type TestGateway } from '../helpers/gateway.js';
import { s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Let the first `openBytes` of a real store body through, the rest only after `open()`. */
function gate(res: GetResult, openBytes: number) {
  const out = new PassThrough();
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  let passed = 0;
  void (async () => {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (passed < openBytes) {
        const head = chunk.subarray(0, openBytes - passed);
        out.write(head);
        passed += head.length;
        const rest = chunk.subarray(head.length);
        if (rest.length === 0) continue;
        await opened;
        out.write(rest);
      } else {
        await opened;
        out.write(chunk);
      }
    }
    out.end();
  })().catch((err: Error) => out.destroy(err));
  return {
    result: { ...res, body: out } as GetResult,
    open,
    fail(err: Error) {
      res.body.destroy();
      out.destroy(err);
    },
  };
}

/** Read a fetch body until at least `n` bytes arrived; returns the reader to continue with. */
async function readAtLeast(res: Response, n: number) {
  const reader = res.body!.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < n) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(Buffer.from(value));
    total += value.length;
  }
  return {
    received: total,
    async rest(): Promise<Buffer> {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return Buffer.concat(chunks);
        chunks.push(Buffer.from(value));
      }
    },
    cancel: () => reader.cancel(),
  };
}

describe('singleflight against s3rver', () => {
  let srv: S3rverInstance;
  let store: CountingStore;
  let gw: TestGateway;
  const body = randomBytes(8 * 2 ** 20);

  beforeAll(async () => {
    srv = await startS3rver({ buckets: ['herd'] });
    const s3 = createS3Store('media', s3StoreConfig(srv, 'herd', 64));
    await s3.put('big/eight.bin', Readable.from([body]), { contentLength: body.length });
    store = countingStore(s3);
    gw = await startGateway({ cache: { max_memory: '64MiB' } }, [store]);
  });
  afterAll(async () => {
    await gw?.close();
    await store?.close();
    await srv?.stop();
  });

  it('serves 50 concurrent cold GETs of one 8 MiB object with one store GET', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const res = await fetch(`${gw.url}/media/big/eight.bin`, { headers: AUTH });
        return { status: res.status, hash: sha(Buffer.from(await res.arrayBuffer())) };
      }),
    );
    expect(gets(store.calls)).toBe(1);
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.hash).toBe(sha(body));
    }
    const again = await fetch(`${gw.url}/media/big/eight.bin`, { headers: AUTH });
    expect(again.headers.get('x-cg-status')).toBe('hit=1');
    expect(sha(Buffer.from(await again.arrayBuffer()))).toBe(sha(body));
    expect(gets(store.calls)).toBe(1);
  });
});

describe('singleflight streaming, failures and deadlines', () => {
  let dir: string;
  let store: CountingStore;
  let gw: TestGateway;
  const SIZE = 4 * 2 ** 20;
  const OPEN = 256 * 1024;
  const objects = new Map<string, Buffer>();
  let n = 0;

  /** A fresh cold object in the real fs store. */
  async function coldObject(size = SIZE): Promise<{ url: string; bytes: Buffer }> {
    const key = `obj-${n++}.bin`;
    const bytes = randomBytes(size);
    objects.set(key, bytes);
    await store.put(key, Readable.from([bytes]), { contentLength: bytes.length });
    return { url: `${gw.url}/media/${key}`, bytes };
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-sf-'));
    store = countingStore(createFsStore('media', { root: dir }));
    gw = await startGateway(
      {
        cache: { max_memory: '64MiB', max_object_size: '8MiB' },
        // The gated tests hold a store body still while they gather partial reads: 2 s of idle
        // allowance, so a loaded machine does not cut it first (the stall test waits it out).
        limits: { store_timeout: '400ms', store_idle_timeout: '2s' },
      },
      [store],
    );
  });
  afterEach(() => {
    store.tap = undefined;
  });
  afterAll(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams bytes to every waiter as they arrive, from one store GET', async () => {
    const { url, bytes } = await coldObject();
    let g: ReturnType<typeof gate> | undefined;
    store.tap = async (_k, _o, real) => {
      g = gate((await real())!, OPEN);
      return g.result;
    };
    const getsBefore = gets(store.calls);
    const responses = await Promise.all(Array.from({ length: 5 }, () => fetch(url, { headers: AUTH })));
    // While the store has sent only OPEN bytes, every waiter (the first one included) already has them.
    const partial = await Promise.all(responses.map((r) => readAtLeast(r, OPEN)));
    for (const p of partial) expect(p.received).toBeGreaterThanOrEqual(OPEN);
    expect(gets(store.calls)).toBe(getsBefore + 1);
    g!.open();
    for (const p of partial) expect((await p.rest()).equals(bytes)).toBe(true);
  });

  it('keeps serving the others when a waiter disconnects, and still fills the cache', async () => {
    const { url, bytes } = await coldObject();
    let g: ReturnType<typeof gate> | undefined;
    store.tap = async (_k, _o, real) => {
      g = gate((await real())!, OPEN);
      return g.result;
    };
    const getsBefore = gets(store.calls);
    const aborters = Array.from({ length: 6 }, () => new AbortController());
    const responses = await Promise.all(aborters.map((a) => fetch(url, { headers: AUTH, signal: a.signal })));
    const partial = await Promise.all(responses.map((r) => readAtLeast(r, OPEN)));
    for (const a of aborters.slice(0, 3)) a.abort();
    g!.open();
    for (const p of partial.slice(3)) expect((await p.rest()).equals(bytes)).toBe(true);
    const after = await fetch(url, { headers: AUTH });
    expect(after.headers.get('x-cg-status')).toBe('hit=1');
    expect(Buffer.from(await after.arrayBuffer()).equals(bytes)).toBe(true);
    expect(gets(store.calls)).toBe(getsBefore + 1);
  });

  it('delivers a mid-body store failure to every waiter, then retries on the next request', async () => {
    const { url, bytes } = await coldObject();
    let g: ReturnType<typeof gate> | undefined;
    store.tap = async (_k, _o, real) => {
      g = gate((await real())!, OPEN);
      return g.result;
    };
    const responses = await Promise.all(Array.from({ length: 4 }, () => fetch(url, { headers: AUTH })));
    const partial = await Promise.all(responses.map((r) => readAtLeast(r, OPEN)));
    g!.fail(new Error('connection reset by store'));
    // Each client sees its body cut short: never a complete-looking wrong object.
    const outcomes = await Promise.allSettled(partial.map((p) => p.rest()));
    for (const o of outcomes) {
      if (o.status === 'fulfilled') expect(o.value.length).toBeLessThan(bytes.length);
      else expect(o.reason).toBeInstanceOf(Error);
    }
    store.tap = undefined;
    const getsBefore = gets(store.calls);
    const retry = await fetch(url, { headers: AUTH });
    expect(retry.status).toBe(200);
    expect(retry.headers.get('x-cg-status')).toBe('hit=0');
    expect(Buffer.from(await retry.arrayBuffer()).equals(bytes)).toBe(true);
    expect(gets(store.calls)).toBe(getsBefore + 1);
  });

  it('answers every waiter with 502 when the store fails before the first byte', async () => {
    const { url } = await coldObject(1024);
    store.tap = async () => {
      await new Promise((r) => setTimeout(r, 50));
      throw new Error('store exploded');
    };
    const statuses = await Promise.all(Array.from({ length: 5 }, async () => (await fetch(url, { headers: AUTH })).status));
    expect(statuses).toEqual([502, 502, 502, 502, 502]);
    store.tap = undefined;
    expect((await fetch(url, { headers: AUTH })).status).toBe(200);
  });

  it('gives up on a store that never answers (504), even one that ignores the abort signal', async () => {
    const { url } = await coldObject(1024);
    store.tap = () => new Promise<GetResult | undefined>(() => {});
    const statuses = await Promise.all(Array.from({ length: 5 }, async () => (await fetch(url, { headers: AUTH })).status));
    expect(statuses).toEqual([504, 504, 504, 504, 504]);
  });

  it('ends the response when a store body stalls, instead of hanging', async () => {
    const { url, bytes } = await coldObject();
    store.tap = async (_k, _o, real) => gate((await real())!, OPEN).result; // never opened
    const responses = await Promise.all(Array.from({ length: 3 }, () => fetch(url, { headers: AUTH })));
    const outcomes = await Promise.allSettled(responses.map(async (r) => Buffer.from(await r.arrayBuffer())));
    for (const o of outcomes) {
      if (o.status === 'fulfilled') expect(o.value.length).toBeLessThan(bytes.length);
      else expect(o.reason).toBeInstanceOf(Error);
    }
  });

  it('streams objects above max_object_size without caching them', async () => {
    const { url, bytes } = await coldObject(10 * 2 ** 20);
    const getsBefore = gets(store.calls);
    const [a, b] = await Promise.all([fetch(url, { headers: AUTH }), fetch(url, { headers: AUTH })]);
    expect(Buffer.from(await a.arrayBuffer()).equals(bytes)).toBe(true);
    expect(Buffer.from(await b.arrayBuffer()).equals(bytes)).toBe(true);
    const c = await fetch(url, { headers: AUTH });
    expect(c.headers.get('x-cg-status')).toBe('hit=0');
    expect(Buffer.from(await c.arrayBuffer()).equals(bytes)).toBe(true);
    // Each oversized request streams from the store; none is held in the cache. a and b share the
    // first slice GET (it tells the size), then each reads the rest uncached with one ranged GET;
    // c knows the size already: one ranged GET. Never a whole-object GET.
    expect(gets(store.calls)).toBe(getsBefore + 4);
    expect(store.calls.get).toBe(0);
    expect(gw.gateway.memory.stats().bytes).toBeLessThanOrEqual(64 * 2 ** 20);
  });
});

describe('store sockets are released on every path', () => {
  let srv: S3rverInstance;
  let gw: TestGateway;
  const body = randomBytes(6 * 2 ** 20);

  beforeAll(async () => {
    srv = await startS3rver({ buckets: ['sockets'] });
    // Four sockets only: a body left unread after a client abort would hold one for good.
    const s3 = createS3Store('media', s3StoreConfig(srv, 'sockets', 4));
    await s3.put('big.bin', Readable.from([body]), { contentLength: body.length });
    await s3.put('small.bin', Readable.from([Buffer.from('small')]), { contentLength: 5 });
    gw = await startGateway({ cache: { max_memory: '16MiB', max_object_size: '1MiB' }, limits: { store_timeout: '5s' } }, [s3]);
  });
  afterAll(async () => {
    await gw?.close();
    await srv?.stop();
  });

  it('keeps working after a dozen clients abort oversized downloads mid-body', async () => {
    for (let i = 0; i < 12; i++) {
      const ac = new AbortController();
      const res = await fetch(`${gw.url}/media/big.bin`, { headers: AUTH, signal: ac.signal });
      const partial = await readAtLeast(res, 64 * 1024);
      expect(partial.received).toBeGreaterThan(0);
      ac.abort();
    }
    const small = await fetch(`${gw.url}/media/small.bin`, { headers: AUTH });
    expect(small.status).toBe(200);
    expect(await small.text()).toBe('small');
    const big = await fetch(`${gw.url}/media/big.bin`, { headers: AUTH });
    expect(Buffer.from(await big.arrayBuffer()).equals(body)).toBe(true);
  });
});
