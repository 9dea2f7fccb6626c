/**
 * Memory stays bounded in a real gateway process: an object above max_object_size is streamed,
 * never held whole, and a working set larger than the cache is evicted in bytes and comes back
 * correct. RSS is read from /proc (VmHWM is the peak resident set).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, startChildGateway, type ChildGateway } from '../helpers/gateway.js';

const MiB = 2 ** 20;
/** 48 × 4 MiB = 192 MiB of distinct objects: an unbounded cache would grow by at least that. */
const SET_OBJECTS = 48;
/**
 * Evicted buffers are external memory, freed only when V8 next collects, and V8 lets external
 * memory grow by about 64 MiB before it does: peak RSS may reach the cache's 64 MiB plus that lag.
 * Node 24 on the slice core measured up to +75.5 MiB on the pass-through below; 96 MiB still
 * tells a streamed object from one held whole (+160 MiB at least).
 */
const GC_LAG_BYTES = 96 * MiB;

/** Download through a socket, hashing as bytes arrive, so the test process holds nothing. */
function download(url: string): Promise<{ status: number; bytes: number; sha: string; hit: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: AUTH }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode!, bytes, sha: hash.digest('hex'), hit: res.headers['x-cg-status'] as string | undefined }),
        );
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** Write `size` random bytes to `file` in 1 MiB pieces; returns the sha256. */
async function writeRandomFile(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let done = 0; done < size; done += MiB) {
    const chunk = randomBytes(Math.min(MiB, size - done));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return hash.digest('hex');
}

describe('memory bounds in a gateway process', () => {
  let dir: string;
  let gw: ChildGateway;
  let bigSha: string;
  const small = new Map<string, string>();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-mem-'));
    const root = path.join(dir, 'root');
    await mkdir(path.join(root, 'set'), { recursive: true });
    bigSha = await writeRandomFile(path.join(root, 'big.bin'), 160 * MiB);
    for (let i = 0; i < SET_OBJECTS; i++) {
      const bytes = randomBytes(4 * MiB);
      small.set(`set/${i}.bin`, createHash('sha256').update(bytes).digest('hex'));
      await writeFile(path.join(root, 'set', `${i}.bin`), bytes);
    }
    await writeFile(path.join(root, 'warm.txt'), 'warm');
    gw = await startChildGateway({
      cache: { max_memory: '64MiB', max_object_size: '16MiB' },
      stores: { local: { type: 'fs', root } },
    });
    // Warm up the code paths so the baseline includes loaded modules and JIT.
    await download(`${gw.url}/local/warm.txt`);
    await download(`${gw.url}/local/warm.txt`);
  });

  afterAll(async () => {
    await gw?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('streams a 160 MiB object above max_object_size with peak RSS growing far less than its size', async () => {
    const before = await gw.memory();
    const got = await download(`${gw.url}/local/big.bin`);
    const after = await gw.memory();
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(160 * MiB);
    expect(got.sha).toBe(bigSha);
    const growth = after.peakRss - before.peakRss;
    console.log(`160 MiB pass-through: peak RSS ${(before.peakRss / MiB).toFixed(1)} -> ${(after.peakRss / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB)`);
    // Held whole, the object would add at least its 160 MiB. Streamed, what remains is the chunks
    // V8 has not collected yet (the external-memory lag above): Node 24 measured +66 to +75.5 MiB
    // here, Node 20 less.
    expect(growth).toBeLessThan(GC_LAG_BYTES);
  });

  it('keeps RSS bounded by the 64 MiB cache while 192 MiB of distinct objects pass through twice, all correct', async () => {
    const before = await gw.memory();
    for (let pass = 0; pass < 2; pass++) {
      for (const [key, expected] of small) {
        const got = await download(`${gw.url}/local/${key}`);
        expect(got.status).toBe(200);
        expect(got.sha).toBe(expected);
        // 192 MiB cannot fit in 64 MiB: on the second pass the early objects were evicted (LRU).
        if (pass === 1 && key === 'set/0.bin') expect(got.hit).toBe('hit=0');
      }
    }
    const after = await gw.memory();
    const growth = after.peakRss - before.peakRss;
    console.log(`192 MiB x2 through a 64 MiB cache: peak RSS ${(before.peakRss / MiB).toFixed(1)} -> ${(after.peakRss / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB)`);
    // The cache may hold 64 MiB, plus garbage not yet collected; never the 192 MiB passed through.
    expect(growth).toBeLessThan(64 * MiB + GC_LAG_BYTES);
  });
});

/** Preload that makes SIGUSR2 run a full GC in the child (test/helpers/gc-on-signal.mjs). */
const GC_ON_SIGNAL = { NODE_OPTIONS: `--expose-gc --import ${path.resolve(import.meta.dirname, '../helpers/gc-on-signal.mjs')}` };

/**
 * RSS with the garbage of a burst collected. Left to itself, V8 collects it when it likes: idle,
 * RSS stayed up to 30 MiB above its settled value for 16 s or more (its memory reducer ran,
 * or not, within 30 s), which made the reading a matter of timing. So the child runs a full GC
 * on SIGUSR2 and RSS is read once it stops falling. The tier is not touched meanwhile: what is
 * measured is what the cached entries hold resident.
 */
async function settledRss(gw: ChildGateway): Promise<number> {
  let last = Infinity;
  for (let i = 0; i < 10; i++) {
    gw.child.kill('SIGUSR2');
    await new Promise((r) => setTimeout(r, 500));
    const now = (await gw.memory()).rss;
    if (now > last - 256 * 1024) return Math.min(now, last);
    last = now;
  }
  return last;
}

/** GET many paths over `concurrency` keep-alive sockets, draining bodies; resolves with the statuses seen. */
async function getMany(base: string, paths: string[], concurrency = 8): Promise<Record<number, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses: Record<number, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < paths.length) {
        const p = paths[next++]!;
        const status = await new Promise<number>((resolve, reject) => {
          http
            .get(`${base}${p}`, { headers: AUTH, agent }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode!));
              res.on('error', reject);
            })
            .on('error', reject);
        });
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  agent.destroy();
  return statuses;
}

describe('what a memory entry costs is what it is charged', () => {
  const MAX_MEMORY = 24 * MiB;
  /** More 1 KiB objects than fit: the tier ends full (each is charged about 4.6 KiB). */
  const OBJECTS = 10_000;
  let dir: string;
  let gw: ChildGateway;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-mem-small-'));
    const root = path.join(dir, 'root');
    await mkdir(path.join(root, 's'), { recursive: true });
    const body = randomBytes(1024);
    for (let i = 0; i < OBJECTS; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, OBJECTS - i) }, (_, j) => writeFile(path.join(root, 's', `${i + j}.bin`), body)));
    }
    await writeFile(path.join(root, 'warm.bin'), body);
    // V8's young generation is pinned at its smallest (--max-semi-space-size=1, MiB): left to
    // itself it grows under allocation by up to 3 x 16 MiB, by a different amount in each run, and
    // after the base was read (growth of 14.5-26.7 MiB for the same 24 MiB of entries on Node 24,
    // against 4.8-8.4 MiB pinned). That is the collector's nursery, not what an entry costs.
    gw = await startChildGateway(
      { cache: { max_memory: MAX_MEMORY }, stores: { local: { type: 'fs', root } } },
      { NODE_OPTIONS: `--max-semi-space-size=1 ${GC_ON_SIGNAL.NODE_OPTIONS}` },
    );
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // The bound: RSS within max_memory x 1.1 plus the process's base. Before, RSS grew by
  // 0.97x to 2x the tier: the charge left out part of an entry's resident cost (its backing
  // store's malloc record, V8's heap slack), the fs store read every 1 KiB object through a
  // 256 KiB buffer (garbage V8 collects late), and RSS was read at a moment V8 chose (see
  // settledRss).
  it('keeps RSS within 1.1x max_memory plus the base with the memory tier full of 1 KiB objects', async () => {
    // The base: the process after as many requests through the full route as the fill makes
    // (misses of absent keys: the same route and store calls, nothing cached).
    expect(await getMany(gw.url, Array.from({ length: OBJECTS }, (_, i) => `/local/absent/${i}.bin`))).toEqual({ 404: OBJECTS });
    const base = { rss: await settledRss(gw) };
    const statuses = await getMany(gw.url, Array.from({ length: OBJECTS }, (_, i) => `/local/s/${i}.bin`));
    expect(statuses).toEqual({ 200: OBJECTS });
    const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { cache: { entries: number; bytes: number } };
    const after = { rss: await settledRss(gw) };
    const growth = after.rss - base.rss;
    console.log(
      `${stats.cache.entries} entries of 1 KiB charged ${(stats.cache.bytes / MiB).toFixed(1)} MiB of ${MAX_MEMORY / MiB} MiB; RSS ${(base.rss / MiB).toFixed(1)} -> ${(after.rss / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB, ${((growth - 0) / stats.cache.entries).toFixed(0)} B per entry)`,
    );
    // The tier is full (within one entry's cost) and did evict: the bound is tested at its limit.
    expect(stats.cache.bytes).toBeGreaterThan(MAX_MEMORY - 8 * 1024);
    expect(stats.cache.entries).toBeLessThan(OBJECTS);
    expect(growth).toBeLessThanOrEqual(MAX_MEMORY * 1.1);
  }, 180_000);
});

describe('many slow cold misses of distinct large objects', () => {
  /** As many readers as the issue measured (+400 MiB before the fill budget). */
  const OBJECTS = 16;
  const SIZE = 32 * MiB;
  let dir: string;
  let gw: ChildGateway;
  const shas = new Map<string, string>();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-mem-slow-'));
    const root = path.join(dir, 'root');
    await mkdir(root, { recursive: true });
    for (let i = 0; i < OBJECTS; i++) shas.set(`big${i}.bin`, await writeRandomFile(path.join(root, `big${i}.bin`), SIZE));
    await writeFile(path.join(root, 'warm.txt'), 'warm');
    // Large objects as deployed: a disk tier behind 64 MiB of memory.
    gw = await startChildGateway({
      cache: { max_memory: '64MiB', max_fill_memory: '32MiB', max_disk: '1GiB', disk_path: path.join(dir, 'cache') },
      stores: { local: { type: 'fs', root } },
    });
    await download(`${gw.url}/local/warm.txt`);
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // The bound: max_memory + max_fill_memory + 100 MiB = 196 MiB here. Live buffers stay
  // at the memory tier plus the fill budget (~100 MiB, whatever the number of readers); the
  // rest is the allocator and garbage not yet collected. While each response pinned slices of
  // its own (its first fill for its whole length, a fill its tier had evicted, a memory view
  // across a slow write), 10 readers peaked at +207 to +318 MiB; 16 now at +154 to +175 MiB.
  it('keeps peak RSS growth within max_memory + max_fill_memory + 100 MiB, every body correct', async () => {
    await writeFile(`/proc/${gw.child.pid}/clear_refs`, '5');
    const before = await gw.memory();
    // Each client reads 256 KiB, then waits 20 ms: about 12 MB/s each, far slower than the store.
    const slowRead = (key: string) =>
      new Promise<{ sha: string; bytes: number }>((resolve, reject) => {
        http
          .get(`${gw.url}/local/${key}`, { headers: AUTH, agent: false }, (res) => {
            const hash = createHash('sha256');
            let bytes = 0;
            let since = 0;
            res.on('data', (c: Buffer) => {
              hash.update(c);
              bytes += c.length;
              since += c.length;
              if (since >= 256 * 1024) {
                since = 0;
                res.pause();
                setTimeout(() => res.resume(), 20);
              }
            });
            res.on('end', () => resolve({ sha: hash.digest('hex'), bytes }));
            res.on('error', reject);
          })
          .on('error', reject);
      });
    const got = await Promise.all([...shas.keys()].map((k) => slowRead(k)));
    const after = await gw.memory();
    got.forEach((g, i) => {
      expect(g.bytes).toBe(SIZE);
      expect(g.sha).toBe(shas.get(`big${i}.bin`));
    });
    const growth = after.peakRss - before.rss;
    console.log(`${OBJECTS} slow cold readers of ${SIZE / MiB} MiB objects: peak RSS ${(before.rss / MiB).toFixed(1)} -> ${(after.peakRss / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB)`);
    expect(growth).toBeLessThan((64 + 32 + 100) * MiB);
  }, 240_000);
});
