/**
 * The fill budget (`max_fill_memory`) bounds what fills hold in memory. A fill that waits for room
 * is visible to operators: the wait is observed in `cachegate_fill_budget_wait_seconds` (outcome
 * `granted`), so a slow first byte on a miss that is the gateway's own doing can be told from a
 * slow store. A disk-bound slice's fill writes to its entry file and holds no slice, so with a
 * disk tier the same two readers do not wait. Over the directory store, through an in-process
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

  it(disk ? 'observes the first fills\' waits, then lets a disk-bound fill of a known object start while another runs' : 'observes every fill that waited for another to finish, and every answer is right', async () => {
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
    // A fill reserves its slice before its GET: once the store is asked, the budget is full.
    await firstAsked;
    const second = get('wait/b.bin', 'bytes=0-999');
    // The second request reaches the budget with no store call before it (nothing is known of
    // its object); give it ample time to get there.
    await new Promise((r) => setTimeout(r, 300));
    letGo();
    const [ra, rb] = await Promise.all([first, second]);
    store.tap = undefined;
    expect(ra.status).toBe(206);
    expect(ra.body.equals(a.subarray(0, 1000))).toBe(true);
    expect(rb.status).toBe(206);
    expect(rb.body.equals(b.subarray(0, 1000))).toBe(true);
    const waited = (await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'granted' })) - before;
    // Neither object was known: each first fill reserved a whole slice until its answer.
    expect(waited).toBe(1);
    expect(await metric(gw, 'cachegate_fill_budget_wait_seconds_sum', { outcome: 'granted' })).toBeGreaterThan(0);

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
    expect((await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'granted' })) - before).toBe(disk ? 1 : 2);
    expect(await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'uncached' })).toBe(0);
    if (disk) {
      // The slices landed on disk, and no entry file was left behind.
      for (let t = 0; t < 50 && (await readdir(path.join(cacheDir!, 'tmp'))).length > 0; t++) await new Promise((r) => setTimeout(r, 20));
      expect(await readdir(path.join(cacheDir!, 'tmp'))).toEqual([]);
      expect((await get('wait/a.bin', `bytes=${SLICE}-${SLICE + 999}`)).body.equals(a.subarray(SLICE, SLICE + 1000))).toBe(true);
    }
  });
});
