/**
 * The disk tier through a running gateway: with 8 MiB of memory and 256 MiB of disk, 80 MiB of
 * objects are served from disk while the store is away, still after a restart with no store GET
 * (one HEAD each: entries from before a restart are revalidated), a flipped byte in any cache file never reaches a client, usage stays within max_disk, and
 * a directory that cannot be written leaves the gateway serving from the store.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFsStore } from '../../src/stores/fs.js';
import { countingStore, gets } from '../helpers/counting-store.js';
import { AUTH, startChildGateway, startGateway, type TestGateway } from '../helpers/gateway.js';

const MiB = 2 ** 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function cacheFiles(diskPath: string): Promise<string[]> {
  const root = path.join(diskPath, 'objects');
  const out: string[] = [];
  for (const d of await readdir(root).catch(() => [])) {
    for (const f of await readdir(path.join(root, d))) out.push(path.join(root, d, f));
  }
  return out;
}

async function diskUsage(diskPath: string): Promise<number> {
  let total = 0;
  for (const f of await cacheFiles(diskPath)) total += (await stat(f)).size;
  return total;
}

async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

describe('disk tier', () => {
  let dir: string;
  let root: string;
  let diskPath: string;
  const objects = new Map<string, Buffer>();
  const config = () => ({
    cache: { max_memory: '8MiB', max_object_size: '16MiB', max_disk: '256MiB', disk_path: diskPath },
  });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-disk-'));
    root = path.join(dir, 'store');
    diskPath = path.join(dir, 'cache');
    const store = createFsStore('media', { root });
    // 80 MiB: sizes from 1 to 7 MiB (the largest are streamed from disk, the rest read whole).
    const sizes = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 3];
    for (const [i, mb] of sizes.entries()) {
      const body = randomBytes(mb * MiB + i);
      objects.set(`set/${i}.bin`, body);
      await store.put(`set/${i}.bin`, Readable.from([body]), { contentLength: body.length });
    }
    const big = randomBytes(12 * MiB); // above the 8 MiB inline-read size: verified then streamed
    objects.set('set/big.bin', big);
    await store.put('set/big.bin', Readable.from([big]), { contentLength: big.length });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fetchAll(gw: TestGateway, expectHit?: string) {
    for (const [key, body] of objects) {
      const res = await fetch(`${gw.url}/media/${key}`, { headers: AUTH });
      expect(res.status, key).toBe(200);
      if (expectHit) expect(res.headers.get('x-cg-status'), key).toBe(expectHit);
      expect(sha(Buffer.from(await res.arrayBuffer())), key).toBe(sha(body));
    }
  }

  /** One store GET per 8 MiB slice: the 12 MiB object is two slices (and a metadata entry). */
  const sliceCount = () => [...objects.values()].reduce((a, b) => a + Math.ceil(b.length / (8 * MiB)), 0);

  it('serves 80+ MiB from disk while the store is away, and again after a restart with no store GET', async () => {
    const total = [...objects.values()].reduce((a, b) => a + b.length, 0);
    expect(total).toBeGreaterThan(80 * MiB);
    const store = countingStore(createFsStore('media', { root }));
    const gw = await startGateway(config(), [store]);
    try {
      await fetchAll(gw, 'hit=0');
      await gw.gateway.disk!.flushed();
      expect(gets(store.calls)).toBe(sliceCount());
      // The store goes away; memory (8 MiB) cannot hold 80 MiB: disk serves.
      await rename(root, `${root}.away`);
      await fetchAll(gw, 'hit=1');
      expect(gets(store.calls)).toBe(sliceCount());
      expect(await diskUsage(diskPath)).toBeLessThanOrEqual(256 * MiB);
      expect(gw.gateway.disk!.stats().bytes).toBe(await diskUsage(diskPath));
    } finally {
      await gw.close();
    }

    // Back unchanged (a rename keeps inode and mtime, so the fs store's ETags too). A restarted
    // process revalidates each entry from before it started once (core/freshness.ts, the rejoin rule): one conditional HEAD, no GET.
    await rename(`${root}.away`, root);
    const restartedStore = countingStore(createFsStore('media', { root }));
    const restarted = await startGateway(config(), [restartedStore]);
    try {
      await fetchAll(restarted, 'hit=1'); // some while the index is still being rebuilt
      expect(gets(restartedStore.calls)).toBe(0);
      expect(restartedStore.calls.head).toBe(objects.size);
      await fetchAll(restarted, 'hit=1');
      expect(restartedStore.calls.head).toBe(objects.size);
      const head = await fetch(`${restarted.url}/media/set/3.bin`, { method: 'HEAD', headers: AUTH });
      expect(head.headers.get('x-cg-status')).toBe('hit=1');
      expect(head.headers.get('content-length')).toBe(String(objects.get('set/3.bin')!.length));
    } finally {
      await restarted.close();
    }
  });

  it('never serves a flipped byte: the entry is dropped and the object refetched', async () => {
    // Restore the store so refetching is possible (new files: new ETags, so the cache is filled
    // again from them first), then corrupt every cache file somewhere.
    const store = createFsStore('media', { root });
    for (const [key, body] of objects) await store.put(key, Readable.from([body]), { contentLength: body.length });
    await rm(diskPath, { recursive: true, force: true });
    const filler = await startGateway(config(), [store]);
    try {
      await fetchAll(filler);
      await filler.gateway.disk!.flushed();
    } finally {
      await filler.close();
    }
    const files = await cacheFiles(diskPath);
    // Every object's entry, plus the sliced object's second slice.
    expect(files.length).toBe(sliceCount() + 1);
    for (const [i, file] of files.entries()) {
      const size = (await stat(file)).size;
      // Header bytes for some, body bytes (start, middle, last) for the rest.
      const offsets = [2, 9, 20, 600, Math.floor(size / 2), size - 1];
      await flipByte(file, offsets[i % offsets.length]!);
    }
    const counting = countingStore(createFsStore('media', { root }));
    const asked = new Map<string, { start: number; end: number }[]>();
    counting.tap = (key, opts, real) => {
      const size = objects.get(key)!.length;
      asked.set(key, [...(asked.get(key) ?? []), opts.range ? { ...opts.range } : { start: 0, end: size - 1 }]);
      return real();
    };
    const gw = await startGateway(config(), [counting]);
    try {
      await gw.gateway.disk!.scanned();
      await fetchAll(gw);
      // Every corrupted slice was refetched, each byte once: in one GET, or in two when the read
      // found the bad block deep into the slice (the fill then starts where the reader is).
      expect(gets(counting.calls)).toBeGreaterThanOrEqual(sliceCount());
      expect(gets(counting.calls)).toBeLessThanOrEqual(2 * sliceCount());
      for (const [key, body] of objects) {
        const ranges = [...(asked.get(key) ?? [])].sort((a, b) => a.start - b.start);
        let next = 0;
        for (const r of ranges) {
          expect(r.start, `${key}: bytes from ${r.start} asked twice or skipped`).toBe(next);
          next = Math.min(r.end, body.length - 1) + 1;
        }
        expect(next, `${key}: refetched up to ${next} of ${body.length}`).toBe(body.length);
      }
      counting.tap = undefined;
      await gw.gateway.disk!.flushed();
      // Truncate a rewritten entry: also never served.
      const [victim] = await cacheFiles(diskPath);
      const fh = await open(victim!, 'r+');
      await fh.truncate((await fh.stat()).size - 10);
      await fh.close();
      gw.gateway.memory.clear();
      await fetchAll(gw);
    } finally {
      await gw.close();
    }
  });

  it('serves a range inside one slice on disk from one verified read, and never a flipped byte of it', async () => {
    const store = createFsStore('media', { root });
    const big = objects.get('set/big.bin')!;
    await store.put('set/big.bin', Readable.from([big]), { contentLength: big.length });
    const cache = path.join(dir, 'range-cache');
    const counting = countingStore(store);
    const gw = await startGateway({ cache: { ...config().cache, disk_path: cache } }, [counting]);
    const range = async (start: number, end: number, expectHit: string) => {
      const res = await fetch(`${gw.url}/media/set/big.bin`, { headers: { ...AUTH, range: `bytes=${start}-${end}` } });
      expect(res.status).toBe(206);
      const got = Buffer.from(await res.arrayBuffer());
      expect(sha(got), `${start}-${end}`).toBe(sha(big.subarray(start, end + 1)));
      expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/${big.length}`);
      expect(res.headers.get('x-cg-status'), `${start}-${end}`).toBe(expectHit);
    };
    try {
      await range(0, big.length - 1, 'hit=0');
      await gw.gateway.disk!.flushed();
      const fetched = gets(counting.calls);
      // Inside the first slice, inside the second, at each end: from disk, no store GET.
      for (const [a, b] of [[100, MiB + 99], [9 * MiB + 5, 10 * MiB + 4], [0, 0], [big.length - 1, big.length - 1]] as const) await range(a, b, 'hit=1');
      expect(gets(counting.calls)).toBe(fetched);
      // A flipped byte inside a range of the second slice: dropped and refetched, never sent.
      const files = await cacheFiles(cache);
      const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
      const slice2 = files[sizes.findIndex((n) => n > 4 * MiB && n < 8 * MiB)]!;
      await flipByte(slice2, 1_500_000);
      await range(9 * MiB, 10 * MiB - 1, 'hit=0');
      expect(gets(counting.calls)).toBe(fetched + 1);
    } finally {
      await gw.close();
    }
  });

  it('stays within max_disk when far more than it passes through', async () => {
    const small = path.join(dir, 'small-cache');
    const store = createFsStore('media', { root });
    const gw = await startGateway({ cache: { max_memory: '4MiB', max_object_size: '8MiB', max_disk: '20MiB', disk_path: small } }, [store]);
    try {
      await fetchAll(gw);
      await gw.gateway.disk!.flushed();
      const usage = await diskUsage(small);
      expect(usage).toBeLessThanOrEqual(20 * MiB);
      expect(usage).toBe(gw.gateway.disk!.stats().bytes);
      expect(usage).toBe([...gw.gateway.disk!.sizes()].reduce((a, b) => a + b, 0));
    } finally {
      await gw.close();
    }
  });

  it('removes leftover temporary files at startup', async () => {
    await mkdir(path.join(diskPath, 'tmp'), { recursive: true });
    await writeFile(path.join(diskPath, 'tmp', 'abandoned.part'), randomBytes(1000));
    const gw = await startGateway(config(), [createFsStore('media', { root })]);
    try {
      expect(await readdir(path.join(diskPath, 'tmp'))).toEqual([]);
    } finally {
      await gw.close();
    }
  });

  it('keeps serving from the store when the cache directory cannot be used', async () => {
    const blocker = path.join(dir, 'not-a-dir');
    await writeFile(blocker, 'x');
    const store = countingStore(createFsStore('media', { root }));
    const gw = await startGateway(
      { cache: { max_memory: '1MiB', max_object_size: '16MiB', max_disk: '64MiB', disk_path: path.join(blocker, 'cache') } },
      [store],
    );
    try {
      const key = 'set/1.bin';
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${gw.url}/media/${key}`, { headers: AUTH });
        expect(res.status).toBe(200);
        expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(objects.get(key)!));
      }
      expect(gets(store.calls)).toBe(2);
    } finally {
      await gw.close();
    }
  });

  it('keeps serving when writes start failing mid-run', async () => {
    const cache = path.join(dir, 'failing-cache');
    const store = createFsStore('media', { root });
    const gw = await startGateway({ cache: { max_memory: '1MiB', max_object_size: '16MiB', max_disk: '64MiB', disk_path: cache } }, [store]);
    try {
      // Replace the temp folder with a file: every new write now fails (ENOTDIR).
      await rm(path.join(cache, 'tmp'), { recursive: true, force: true });
      await writeFile(path.join(cache, 'tmp'), 'x');
      for (const key of ['set/2.bin', 'set/2.bin']) {
        const res = await fetch(`${gw.url}/media/${key}`, { headers: AUTH });
        expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(objects.get(key)!));
      }
      await gw.gateway.disk!.flushed();
      expect(gw.gateway.disk!.stats().entries).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('lets pending disk writes finish on SIGTERM, exits 0, and the entries are valid after restart', async () => {
    const cache = path.join(dir, 'sigterm-cache');
    const gw = await startChildGateway({
      cache: { max_memory: '1MiB', max_object_size: '16MiB', max_disk: '128MiB', disk_path: cache },
      stores: { media: { type: 'fs', root } },
    });
    const keys = ['set/4.bin', 'set/5.bin', 'set/6.bin'];
    await Promise.all(keys.map(async (k) => (await fetch(`${gw.url}/media/${k}`, { headers: AUTH })).arrayBuffer()));
    expect(await gw.stop('SIGTERM')).toBe(0);
    expect(await readdir(path.join(cache, 'tmp'))).toEqual([]);

    const counting = countingStore(createFsStore('media', { root }));
    const again = await startGateway({ cache: { max_memory: '1MiB', max_object_size: '16MiB', max_disk: '128MiB', disk_path: cache } }, [counting]);
    try {
      for (const k of keys) {
        const res = await fetch(`${again.url}/media/${k}`, { headers: AUTH });
        expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(objects.get(k)!));
      }
      expect(gets(counting.calls)).toBe(0);
    } finally {
      await again.close();
    }
  });
});
