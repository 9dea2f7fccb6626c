/**
 * Disk hits through a running gateway, where the fast disk path can go wrong: hits are read into
 * reused buffers (cache/buffer-pool.ts) lent until their response is written, and a verified
 * descriptor per entry stays open. Many concurrent clients, some slow, some leaving mid-body,
 * read distinct objects from disk at once: every body that completes is byte-identical to its
 * object (a buffer given back too early would hand one client another object's bytes), and an
 * object read often is admitted into memory while a scan over the rest leaves memory alone.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFsStore } from '../../src/stores/fs.js';
import { AUTH, startGateway, TEST_TOKEN, type TestGateway } from '../helpers/gateway.js';
import { parseResponses, rawExchange } from '../helpers/raw-http.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const OBJECTS = 40;

/** GET `urlPath`; `mode` slow reads 64 KiB then waits 30 ms, over and over; abort leaves after the first chunk. */
function get(gw: TestGateway, urlPath: string, mode: 'fast' | 'slow' | 'abort', agent: http.Agent) {
  return new Promise<{ status: number; sha?: string; cache: string | undefined; aborted: boolean }>((resolve, reject) => {
    const req = http.get(`${gw.url}${urlPath}`, { headers: AUTH, agent }, (res) => {
      const hash = createHash('sha256');
      const cache = res.headers['x-cg-status'] as string | undefined;
      res.on('data', (c: Buffer) => {
        if (mode === 'abort') {
          req.destroy();
          resolve({ status: res.statusCode!, cache, aborted: true });
          return;
        }
        hash.update(c);
        if (mode === 'slow') {
          res.pause();
          setTimeout(() => res.resume(), 30);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode!, sha: hash.digest('hex'), cache, aborted: false }));
      res.on('error', (err) => (mode === 'abort' ? undefined : reject(err)));
    });
    req.on('error', (err) => (mode === 'abort' ? undefined : reject(err)));
  });
}

describe('disk hits', () => {
  let dir: string;
  let gw: TestGateway;
  const bodies: Buffer[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-disk-hits-'));
    const store = createFsStore('media', { root: path.join(dir, 'store') });
    // Up to 1 MiB (read whole, into lent buffers), sizes not aligned to the 64 KiB checksum blocks.
    for (let i = 0; i < OBJECTS; i++) {
      const body = randomBytes(MiB - i * 7919);
      bodies.push(body);
      await store.put(`o/${i}.bin`, Readable.from([body]), { contentLength: body.length });
    }
    gw = await startGateway({ cache: { max_memory: '4MiB', max_disk: '256MiB', disk_path: path.join(dir, 'cache') } }, [store]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    for (let pass = 0; pass < 2; pass++) {
      await Promise.all(bodies.map((_, i) => get(gw, `/media/o/${i}.bin`, 'fast', agent)));
    }
    await gw.gateway.disk!.flushed();
    agent.destroy();
  });
  afterAll(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  // First: the later tests read every object often, which would leave nothing less asked for.
  it('admits an object asked for often into memory, and a scan over the rest does not push it out', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const hot = '/media/o/3.bin';
    const ck = 'media\u0000o/3.bin';
    for (let n = 0; n < 8; n++) expect((await get(gw, hot, 'fast', agent)).sha).toBe(sha(bodies[3]!));
    expect(gw.gateway.memory.has(ck)).toBe(true);
    // Every other object once, one after another: each is a disk hit asked for less than the hot one.
    for (let i = 0; i < OBJECTS; i++) if (i !== 3) await get(gw, `/media/o/${i}.bin`, 'fast', agent);
    for (let i = 0; i < OBJECTS; i++) if (i !== 3) await get(gw, `/media/o/${i}.bin`, 'fast', agent);
    expect(gw.gateway.memory.has(ck)).toBe(true);
    agent.destroy();
  });

  it('serves every body byte-identical to 64 concurrent clients, slow ones and ones that leave mid-body among them', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const modes = ['fast', 'slow', 'fast', 'abort'] as const;
    let completed = 0;
    let fromDisk = 0;
    await Promise.all(
      Array.from({ length: 64 }, async (_, client) => {
        for (let n = 0; n < 6; n++) {
          const i = (client * 7 + n * 13) % OBJECTS;
          const mode = modes[(client + n) % modes.length]!;
          const r = await get(gw, `/media/o/${i}.bin`, mode, mode === 'abort' ? new http.Agent() : agent);
          expect(r.status).toBe(200);
          if (r.aborted) continue;
          expect(r.sha, `object ${i} (${mode})`).toBe(sha(bodies[i]!));
          completed++;
          if (r.cache === 'hit=1') fromDisk++;
        }
      }),
    );
    agent.destroy();
    expect(completed).toBe(64 * 6 - 64 * 6 / 4);
    // Memory holds at most 4 of the 40 objects: nearly all of these came from disk.
    expect(fromDisk).toBe(completed);
    expect(gw.gateway.memory.stats().bytes).toBeLessThanOrEqual(4 * MiB);
  });

  it('serves pipelined disk hits byte-identical to connections that read nothing for a while (responses queue unwritten)', async () => {
    // Ten 1 MiB answers per connection, not read for 300 ms: far more than the kernel buffers
    // hold, so the later answers wait in the gateway, each in its lent buffer, while other
    // connections' hits lend and return buffers.
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, conn) => {
        const keys = Array.from({ length: 10 }, (_, n) => (conn * 11 + n * 3) % OBJECTS);
        const requests = keys.map((i) => `GET /media/o/${i}.bin HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`).join('');
        return rawExchange(gw.url, [requests, () => new Promise((r) => setTimeout(r, 300))], 1500).then((raw) => ({ keys, raw }));
      }),
    );
    for (const { keys, raw } of runs) {
      const responses = parseResponses(raw);
      expect(responses.map((r) => r.status)).toEqual(keys.map(() => 200));
      responses.forEach((r, n) => expect(sha(r.body), `object ${keys[n]}`).toBe(sha(bodies[keys[n]!]!)));
    }
  });

});
