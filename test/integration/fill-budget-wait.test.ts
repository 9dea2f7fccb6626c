/**
 * The fill budget (`max_fill_memory`) bounds what fills hold in memory. A fill that waits for room
 * is visible to operators: the wait is observed in `cachegate_fill_budget_wait_seconds` (outcome
 * `granted`), so a slow first byte on a miss that is the gateway's own doing can be told from a
 * slow store. A disk-bound slice's fill writes to its entry file and holds no slice, so with a
 * disk tier the same readers do not wait. An unknown object's first fill holds nothing until its
 * answer gives the object's size, so two first fills wait only once both answers are in (and
 * never for each other's reservations). Over the directory store, through an in-process
 * gateway whose store can hold a GET's answer back.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../helpers/backends.js';
import { countingStore, type CountingStore } from '../helpers/counting-store.js';
import { AUTH, startGateway, type TestGateway } from '../helpers/gateway.js';
import { metric } from '../helpers/metrics.js';

const MiB = 2 ** 20;
const SLICE = 4 * MiB;
const fsBackend = BACKENDS.find((b) => b.name === 'fs')!;

describe.each([
  { tiers: 'memory only', disk: false },
  { tiers: 'memory and disk', disk: true },
])('fill budget with $tiers', ({ disk }) => {
  let stop: () => Promise<void>;
  let store: CountingStore;
  let gw: TestGateway;
  let cacheDir: string | undefined;

  beforeAll(async () => {
    const made = await fsBackend.make();
    stop = made.stop;
    store = countingStore(made.store);
    cacheDir = disk ? await mkdtemp(path.join(tmpdir(), 'cg-budget-')) : undefined;
    // Room for one slice's bytes at a time.
    const cache = { max_memory: '64MiB', slice_size: '4MiB', max_fill_memory: '4MiB', ...(cacheDir ? { max_disk: '256MiB', disk_path: cacheDir } : {}) };
    gw = await startGateway({ cache }, [store]);
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
    await stop?.();
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  let gate2: Promise<void>;
  let letGo2!: () => void;
  const get = async (key: string, range: string) => {
    const res = await fetch(`${gw.url}/media/${key}`, { headers: { ...AUTH, range } });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  };

  it(disk ? 'lets disk-bound fills, first or not, start while another runs' : 'observes every fill that waited for another to finish, and every answer is right', async () => {
    const a = randomBytes(2 * SLICE);
    const b = randomBytes(2 * SLICE);
    for (const [key, body] of [['wait/a.bin', a], ['wait/b.bin', b]] as const) {
      await store.put(key, Readable.from([body]), { contentLength: body.length, contentType: 'application/octet-stream' });
    }
    const before = await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'granted' });
    // The first object's slice GET answers only once the second reader is waiting for room.
    let letGo!: () => void;
    const gate = new Promise<void>((r) => (letGo = r));
    let asked!: () => void;
    const firstAsked = new Promise<void>((r) => (asked = r));
    store.tap = async (key, _opts, real) => {
      if (key === 'wait/a.bin') {
        asked();
        await gate;
      }
      return real();
    };
    const first = get('wait/a.bin', 'bytes=0-999');
    // The first object's GET is out; its fill holds only what a streaming fill holds.
    await firstAsked;
    const second = get('wait/b.bin', 'bytes=0-999');
    // The second object's GET is answered at once: with memory only its slice needs the whole
    // budget, which the first fill's small reservation is in the way of, so it waits (holding
    // nothing); give it ample time to get there.
    await new Promise((r) => setTimeout(r, 300));
    letGo();
    const [ra, rb] = await Promise.all([first, second]);
    store.tap = undefined;
    expect(ra.status).toBe(206);
    expect(ra.body.equals(a.subarray(0, 1000))).toBe(true);
    expect(rb.status).toBe(206);
    expect(rb.body.equals(b.subarray(0, 1000))).toBe(true);
    const waited = (await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'granted' })) - before;
    // Memory only: the second fill waited for room, then the first, answered later, waited for
    // the second's slice to be cached. With a disk tier both slices went to their files.
    expect(waited).toBe(disk ? 0 : 2);
    if (!disk) expect(await metric(gw, 'cachegate_fill_budget_wait_seconds_sum', { outcome: 'granted' })).toBeGreaterThan(0);

    // Both first slices are complete (their fills went on after the answers' 1000 bytes).
    for (let t = 0; t < 100 && (await metric(gw, 'cachegate_fill_bytes_total')) < 2 * SLICE; t++) await new Promise((r) => setTimeout(r, 20));
    expect(await metric(gw, 'cachegate_fill_bytes_total')).toBe(2 * SLICE);

    // Now both are known. With the first object's next slice GET held back again, the second's
    // next slice waits for it in memory; a disk-bound fill holds no slice, so it starts at once.
    gate2 = new Promise<void>((r) => (letGo2 = r));
    store.tap = async (key, _opts, real) => {
      if (key === 'wait/a.bin') await gate2;
      return real();
    };
    const third = get('wait/a.bin', `bytes=${SLICE}-${SLICE + 999}`);
    await new Promise((r) => setTimeout(r, 100));
    const fourthP = get('wait/b.bin', `bytes=${SLICE}-${SLICE + 999}`);
    let fourth;
    if (disk) {
      fourth = await fourthP; // answered while the first object's GET is still held
      letGo2();
    } else {
      await new Promise((r) => setTimeout(r, 300));
      letGo2();
      fourth = await fourthP;
    }
    const rc = await third;
    store.tap = undefined;
    expect(fourth.status).toBe(206);
    expect(fourth.body.equals(b.subarray(SLICE, SLICE + 1000))).toBe(true);
    expect(rc.body.equals(a.subarray(SLICE, SLICE + 1000))).toBe(true);
    expect((await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'granted' })) - before).toBe(disk ? 0 : 3);
    expect(await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'uncached' })).toBe(0);
    if (disk) {
      // The slices landed on disk, and no entry file was left behind.
      for (let t = 0; t < 50 && (await readdir(path.join(cacheDir!, 'tmp'))).length > 0; t++) await new Promise((r) => setTimeout(r, 20));
      expect(await readdir(path.join(cacheDir!, 'tmp'))).toEqual([]);
      expect((await get('wait/a.bin', `bytes=${SLICE}-${SLICE + 999}`)).body.equals(a.subarray(SLICE, SLICE + 1000))).toBe(true);
    }
  });
});

describe('a first fill that finds no room once its answer is in', () => {
  let stop: () => Promise<void>;
  let store: CountingStore;
  let gw: TestGateway;

  beforeAll(async () => {
    const made = await fsBackend.make();
    stop = made.stop;
    store = countingStore(made.store);
    // Room for one slice and one fill that has not been answered yet; a fill a reader needs
    // waits 400 ms for room (store_timeout), while a store body may pause far longer
    // (store_idle_timeout).
    const cache = { max_memory: '64MiB', slice_size: '4MiB', max_fill_memory: '4160KiB' };
    gw = await startGateway({ cache, limits: { store_timeout: '400ms', store_idle_timeout: '30s' } }, [store]);
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
    await stop?.();
  });

  it('drops the answer unread, takes the metadata from it (no HEAD), and serves the reader uncached', async () => {
    const a = randomBytes(2 * SLICE);
    const b = randomBytes(2 * SLICE);
    for (const [key, body] of [['room/a.bin', a], ['room/b.bin', b]] as const) {
      await store.put(key, Readable.from([body]), { contentLength: body.length, contentType: 'application/octet-stream' });
    }
    // The first object's slice body sends 64 KiB, then stalls until let go: its fill holds the
    // whole budget meanwhile.
    let letGo!: () => void;
    const gate = new Promise<void>((r) => (letGo = r));
    store.tap = async (key, _opts, real) => {
      const res = await real();
      if (key !== 'room/a.bin' || !res) return res;
      const source = res.body;
      async function* held() {
        let sent = 0;
        for await (const chunk of source as AsyncIterable<Buffer>) {
          if (sent < 64 * 1024 && sent + chunk.length >= 64 * 1024) {
            yield chunk;
            sent += chunk.length;
            await gate;
            continue;
          }
          sent += chunk.length;
          yield chunk;
        }
      }
      return { ...res, body: Readable.from(held()) };
    };
    const uncachedBefore = await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'uncached' });
    const first = fetch(`${gw.url}/media/room/a.bin`, { headers: { ...AUTH, range: 'bytes=0-999' } }).then(async (r) => ({ status: r.status, body: Buffer.from(await r.arrayBuffer()) }));
    const ra = await first;
    expect(ra.status).toBe(206);
    expect(ra.body.equals(a.subarray(0, 1000))).toBe(true);

    const before = { ...store.calls };
    const res = await fetch(`${gw.url}/media/room/b.bin`, { headers: { ...AUTH, range: 'bytes=100-1099' } });
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 100-1099/${b.length}`);
    expect(body.equals(b.subarray(100, 1100))).toBe(true);
    // The fill's GET (its answer dropped unread) and the uncached GET; no HEAD for the metadata.
    expect(store.calls.head - before.head).toBe(0);
    expect(store.calls.getRanged - before.getRanged).toBe(2);
    // Both waits timed out: the first fill's once its answer was in, the reader's second fill.
    expect((await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'uncached' })) - uncachedBefore).toBe(2);
    letGo();
    store.tap = undefined;
    // Once the first fill is done, the second object is served right, and cached: its slice's
    // fill (started by the next read, with room now) lands, and then the range is a hit that asks
    // the store nothing.
    for (let t = 0; t < 100 && (await metric(gw, 'cachegate_fill_bytes_total')) < SLICE; t++) await new Promise((r) => setTimeout(r, 20));
    const read = async () => {
      const r = await fetch(`${gw.url}/media/room/b.bin`, { headers: { ...AUTH, range: 'bytes=100-1099' } });
      return { hit: r.headers.get('x-cg-status'), body: Buffer.from(await r.arrayBuffer()) };
    };
    const again = await read();
    expect(again.body.equals(b.subarray(100, 1100))).toBe(true);
    let hit = again.hit;
    for (let t = 0; t < 100 && hit !== 'hit=1'; t++) {
      await new Promise((r) => setTimeout(r, 20));
      hit = (await read()).hit;
    }
    expect(hit, 'the second object never became a hit once the budget had room').toBe('hit=1');
    const storeGets = store.calls.get + store.calls.getRanged;
    const cached = await read();
    expect(cached.hit).toBe('hit=1');
    expect(cached.body.equals(b.subarray(100, 1100))).toBe(true);
    expect(store.calls.get + store.calls.getRanged).toBe(storeGets);
  });
});
