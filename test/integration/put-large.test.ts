/**
 * A 1 GiB PUT through a gateway process lands byte-identical in s3rver, Azurite and a directory,
 * while the gateway's peak RSS (VmHWM) grows by less than 150 MiB: the body is streamed, never
 * held whole.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAzureStore } from '../../src/stores/azure.js';
import { createFsStore } from '../../src/stores/fs.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { AUTH, startChildGateway, type ChildGateway } from '../helpers/gateway.js';
import { s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

const MiB = 2 ** 20;
const SIZE = 1024 * MiB;

/** PUT `SIZE` pseudo-random bytes with a Content-Length, hashing what was sent. */
function putGiB(url: string): Promise<{ status: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    // A few random blocks, varied per MiB by a counter: cheap to make, never repeating.
    const blocks = Array.from({ length: 4 }, () => randomBytes(MiB));
    const req = http.request(url, { method: 'PUT', headers: { ...AUTH, 'content-length': String(SIZE), 'content-type': 'application/x-test' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, sha: hash.digest('hex') }));
    });
    req.on('error', reject);
    let i = 0;
    const write = () => {
      while (i < SIZE / MiB) {
        const block = Buffer.from(blocks[i % blocks.length]!);
        block.writeUInt32BE(i, 0);
        hash.update(block);
        i++;
        if (!req.write(block)) {
          req.once('drain', write);
          return;
        }
      }
      req.end();
    };
    write();
  });
}

async function storedSha(store: ObjectStore, key: string): Promise<{ size: number; sha: string }> {
  const res = await store.get(key);
  if (!res) return { size: -1, sha: '' };
  const hash = createHash('sha256');
  let size = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    hash.update(c);
    size += c.length;
  }
  return { size, sha: hash.digest('hex') };
}

describe('a 1 GiB PUT streams to every store with bounded memory', () => {
  let dir: string;
  let srv: S3rverInstance;
  let az: AzuriteInstance;
  const stores: Record<string, ObjectStore> = {};
  const configs: Record<string, Record<string, unknown>> = {};

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-gib-'));
    srv = await startS3rver({ buckets: ['gib'] });
    az = await startAzurite({ containers: ['gib'] });
    const s3 = s3StoreConfig(srv, 'gib', 16);
    const azure = { type: 'azure' as const, container: 'gib', connection_string: az.connectionString };
    const fs = { type: 'fs' as const, root: path.join(dir, 'root') };
    stores.s3 = createS3Store('s3', s3);
    stores.azure = createAzureStore('azure', azure);
    stores.fs = createFsStore('fs', fs);
    Object.assign(configs, { s3, azure, fs });
  });

  afterAll(async () => {
    await stores.s3?.close();
    await az?.stop();
    await srv?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(['fs', 's3', 'azure'])('lands 1 GiB byte-identical in %s with peak RSS growth under 150 MiB', async (id) => {
    // A fresh gateway process per store: VmHWM is a lifetime peak, so each gets its own baseline.
    const gw: ChildGateway = await startChildGateway({
      cache: { max_memory: '64MiB' },
      limits: { max_upload_size: '2GiB' },
      stores: { [id]: configs[id] },
    });
    let before, after, sent;
    try {
      await fetch(`${gw.url}/${id}/warm-up`, { headers: AUTH }); // load the store's code paths
      before = await gw.memory();
      sent = await putGiB(`${gw.url}/${id}/big/one-gib.bin`);
      after = await gw.memory();
    } finally {
      await gw.stop();
    }
    expect(sent.status).toBe(200);
    const growth = after.peakRss - before.peakRss;
    console.log(`1 GiB PUT to ${id}: peak RSS ${(before.peakRss / MiB).toFixed(1)} -> ${(after.peakRss / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB)`);
    expect(growth).toBeLessThan(150 * MiB);
    const stored = await storedSha(stores[id]!, 'big/one-gib.bin');
    expect(stored.size).toBe(SIZE);
    expect(stored.sha).toBe(sent.sha);
  }, 240_000);
});
