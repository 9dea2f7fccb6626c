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
 */
const GC_LAG_BYTES = 72 * MiB;

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
    expect(growth).toBeLessThan(64 * MiB);
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
