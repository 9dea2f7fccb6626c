/**
 * A seek deep into a cold slice of a known object (fills.ts, SEEK_FIRST_MIN_BYTES): the store is
 * asked for the bytes from the seek to the slice's end first, then for the part before it, both
 * conditional on the object's ETag. Against every real backend, through an in-process gateway
 * whose store counts and can intercept GETs: the ranges asked, byte-identical answers, the slice
 * cached whole, and an object replaced between the two GETs never mixing versions.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEEK_FIRST_MIN_BYTES } from '../../src/core/fills.js';
import type { ByteRange, ObjectStore } from '../../src/stores/types.js';
import { BACKENDS } from '../helpers/backends.js';
import { eventually } from '../helpers/eventually.js';
import { readAll } from '../helpers/store-bytes.js';
import { countingStore, gets, type CountingStore } from '../helpers/counting-store.js';
import { AUTH, startGateway, type TestGateway } from '../helpers/gateway.js';

const MiB = 2 ** 20;
const SLICE = 4 * MiB;

describe.each(BACKENDS)('seek-first slice fills over $name', (backend) => {
  let stop: () => Promise<void>;
  let store: CountingStore;
  /** The same store, not counted or tapped. */
  let raw: ObjectStore;
  let gw: TestGateway;
  /** Every ranged GET the store received, in order. */
  const asked: { key: string; range: ByteRange; ifMatch: boolean }[] = [];

  beforeAll(async () => {
    const made = await backend.make();
    stop = made.stop;
    raw = made.store;
    store = countingStore(raw);
    gw = await startGateway({ cache: { max_memory: '64MiB', slice_size: '4MiB' } }, [store]);
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
    await stop?.();
  });

  // s3rver answers a PUT once its MD5 pass has seen every byte, before its file write stream has
  // written them (lib/stores/filesystem.js, putObject): wait until the store reads the new bytes
  // back, so that no store answer in these tests comes from a half-written file.
  const put = async (key: string, body: Buffer) => {
    await store.put(key, Readable.from([body]), { contentLength: body.length, contentType: 'application/octet-stream' });
    expect(await eventually(async () => (await readAll(raw, key))?.equals(body) === true), `${key}: the store never read back what was put`).toBe(true);
  };
  const get = async (key: string, range: string) => {
    const res = await fetch(`${gw.url}/media/${key}`, { headers: { ...AUTH, range } });
    return { status: res.status, hit: res.headers.get('x-cg-status'), body: Buffer.from(await res.arrayBuffer()) };
  };
  const record = () => {
    store.tap = (key, opts, real) => {
      if (opts.range) asked.push({ key, range: { ...opts.range }, ifMatch: opts.ifMatch !== undefined });
      return real();
    };
  };
  /** Fills settle after the response: wait until the store saw `n` GETs in all. */
  const settled = async (n: number) => {
    for (let t = 0; gets(store.calls) < n && t < 200; t++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 100));
  };

  it('asks for the seek\'s bytes first and the part before them second, and caches the slice whole', async () => {
    const key = 'seek/a.bin';
    const body = randomBytes(2 * SLICE + 1000);
    await put(key, body);
    record();
    expect((await get(key, 'bytes=0-0')).status).toBe(206); // learns the object
    await settled(1);
    asked.length = 0;
    const g0 = gets(store.calls);

    const at = SLICE + SEEK_FIRST_MIN_BYTES + 12_345;
    const deep = await get(key, `bytes=${at}-${at + 99_999}`);
    expect(deep.status).toBe(206);
    expect(deep.body.equals(body.subarray(at, at + 100_000))).toBe(true);
    await settled(g0 + 2);
    expect(asked).toEqual([
      { key, range: { start: at, end: 2 * SLICE - 1 }, ifMatch: true },
      { key, range: { start: SLICE, end: at - 1 }, ifMatch: true },
    ]);

    // All of slice 1 is cached: before, across and after the seek point.
    const g1 = gets(store.calls);
    for (const [s, e] of [[SLICE, SLICE + 999], [at - 500, at + 500], [SLICE, 2 * SLICE - 1]] as const) {
      const r = await get(key, `bytes=${s}-${e}`);
      expect(r.body.equals(body.subarray(s, e + 1)), `${s}-${e}`).toBe(true);
      expect(r.hit, `${s}-${e}`).toBe('hit=1');
    }
    expect(gets(store.calls)).toBe(g1);
    store.tap = undefined;
  });

  it.each([
    ['with a reader of the part before the seek waiting', true],
    ['with no reader of that part (the fill alone notices)', false],
  ])('never mixes versions when the object is replaced between the two GETs of a slice, %s', async (_what, withB) => {
    const key = `seek/swap-${withB}.bin`;
    const v1 = randomBytes(2 * SLICE + 1000);
    const v2 = randomBytes(2 * SLICE + 1000);
    await put(key, v1);
    expect((await get(key, 'bytes=0-0')).status).toBe(206);
    await settled(gets(store.calls));
    const at = SLICE + SEEK_FIRST_MIN_BYTES + 777;
    let swapped = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    store.tap = async (_k, opts, real) => {
      // The part before the seek: the object changes in the store just before it is asked for,
      // and the answer waits until a second reader has joined the fill.
      if (opts.range?.start === SLICE && opts.range.end === at - 1 && !swapped) {
        swapped = true;
        await put(key, v2);
        await gate;
      }
      return real();
    };
    const read = async (range: string) => {
      const seen: Buffer[] = [];
      try {
        const res = await fetch(`${gw.url}/media/${key}`, { headers: { ...AUTH, range } });
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) seen.push(Buffer.from(chunk));
      } catch {
        // cut: fine, as long as what arrived is one version's
      }
      return Buffer.concat(seen);
    };
    // A: the seek, answered from the first GET. B: the slice's start, which needs the second.
    const a = await read(`bytes=${at}-${at + 99_999}`);
    expect(a.equals(v1.subarray(at, at + 100_000))).toBe(true);
    const b = withB ? read(`bytes=${SLICE}-${SLICE + 999}`) : Promise.resolve(Buffer.alloc(0));
    await new Promise((r) => setTimeout(r, 300));
    release();
    const bGot = await b;
    expect(swapped).toBe(true);
    // The second GET fails (the ETag changed) and the fill drops v1: HEAD, answered from the
    // cached metadata until then, answers with v2's ETag from the store.
    const v2Etag = (await store.head(key))!.etag;
    const headEtag = async () => (await fetch(`${gw.url}/media/${key}`, { method: 'HEAD', headers: AUTH })).headers.get('etag');
    expect(await eventually(async () => (await headEtag()) === v2Etag), 'v1 still cached 10 s after the change was seen').toBe(true);
    // B got v1's bytes, or v2's from a new fill, or was cut: never a mix, never v1 past the change.
    const bOk = bGot.length === 0 || bGot.equals(v2.subarray(SLICE, SLICE + bGot.length)) || bGot.equals(v1.subarray(SLICE, SLICE + bGot.length));
    expect(bOk, `B got ${bGot.length} bytes of neither version`).toBe(true);
    store.tap = undefined;

    // The next reads serve v2, whole and by range.
    const whole = await fetch(`${gw.url}/media/${key}`, { headers: AUTH });
    expect(Buffer.from(await whole.arrayBuffer()).equals(v2)).toBe(true);
    const again = await get(key, `bytes=${at}-${at + 99_999}`);
    expect(again.body.equals(v2.subarray(at, at + 100_000))).toBe(true);
  });
});
