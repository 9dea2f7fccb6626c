/**
 * A fill that waits for room in `max_fill_memory` is visible to operators: the wait is observed
 * in `cachegate_fill_budget_wait_seconds` (outcome `granted`), so a slow first byte on a miss that
 * is the gateway's own doing can be told from a slow store. Over the directory store, through an
 * in-process gateway whose store can hold a GET's answer back.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../helpers/backends.js';
import { countingStore, type CountingStore } from '../helpers/counting-store.js';
import { AUTH, startGateway, type TestGateway } from '../helpers/gateway.js';
import { metric } from '../helpers/metrics.js';

const MiB = 2 ** 20;
const SLICE = 4 * MiB;
const fsBackend = BACKENDS.find((b) => b.name === 'fs')!;

describe('fill budget waits', () => {
  let stop: () => Promise<void>;
  let store: CountingStore;
  let gw: TestGateway;

  beforeAll(async () => {
    const made = await fsBackend.make();
    stop = made.stop;
    store = countingStore(made.store);
    // Room for one slice fill at a time.
    gw = await startGateway({ cache: { max_memory: '64MiB', slice_size: '4MiB', max_fill_memory: '4MiB' } }, [store]);
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
    await stop?.();
  });

  const get = async (key: string, range: string) => {
    const res = await fetch(`${gw.url}/media/${key}`, { headers: { ...AUTH, range } });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  };

  it('observes a reader\'s fill that waited for another to finish, and both answers are right', async () => {
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
    expect(waited).toBe(1);
    expect(await metric(gw, 'cachegate_fill_budget_wait_seconds_sum', { outcome: 'granted' })).toBeGreaterThan(0);
    expect(await metric(gw, 'cachegate_fill_budget_wait_seconds_count', { outcome: 'uncached' })).toBe(0);
  });
});
