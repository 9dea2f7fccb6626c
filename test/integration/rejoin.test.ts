/**
 * The rejoin rule (src/core/freshness.ts): a gateway restarted on its persistent disk tier checks
 * each entry from before it started against the store's ETag on the first hit. An object
 * overwritten or deleted while it was away is never served in its old version; an unchanged one
 * costs one HEAD and no GET; entries this process cached itself cost nothing. Real s3rver,
 * counted on the way.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Store } from '../../src/stores/s3.js';
import { countingStore, type CountingStore } from '../helpers/counting-store.js';
import { freePort } from '../helpers/free-port.js';
import { AUTH, startGateway, type TestGateway } from '../helpers/gateway.js';
import { createTestS3Client, s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

const KiB = 1024;
const MiB = 2 ** 20;
const BUCKET = 'rejoin';

let srv: S3rverInstance;
let s3: S3Client;
let dir: string;

beforeAll(async () => {
  srv = await startS3rver({ buckets: [BUCKET] });
  s3 = createTestS3Client(srv);
  dir = await mkdtemp(path.join(tmpdir(), 'cg-rejoin-'));
});
afterAll(async () => {
  s3?.destroy();
  await srv?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Store GETs of any kind: objects are read as slices, with ranged GETs. */
const gets = (store: CountingStore) => store.calls.get + store.calls.getRanged;

const put = (key: string, body: Buffer) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));

/** A gateway on `disk` with 1 MiB of memory (a 2 MiB object lives on disk only). */
async function gatewayOn(disk: string, store?: CountingStore): Promise<{ gw: TestGateway; store: CountingStore }> {
  const s = store ?? countingStore(createS3Store('media', s3StoreConfig(srv, BUCKET)));
  const gw = await startGateway({ cache: { max_memory: '1MiB', max_object_size: '8MiB', max_disk: '64MiB', disk_path: disk } }, [s]);
  return { gw, store: s };
}

async function get(gw: TestGateway, key: string, method = 'GET'): Promise<{ status: number; hit: string | null; etag: string | null; body: Buffer }> {
  const res = await fetch(`${gw.url}/media/${key}`, { method, headers: AUTH });
  return { status: res.status, hit: res.headers.get('x-cg-status'), etag: res.headers.get('etag'), body: Buffer.from(await res.arrayBuffer()) };
}

/** Cache `keys` on a first gateway and stop it, leaving the entries on disk. */
async function primeDisk(disk: string, keys: string[]): Promise<void> {
  const { gw, store } = await gatewayOn(disk);
  try {
    for (const k of keys) expect((await get(gw, k)).hit).toBe('hit=0');
    await gw.gateway.disk!.flushed();
    expect(gets(store)).toBe(keys.length);
  } finally {
    await gw.close();
  }
}

describe('a restarted node and its disk entries', () => {
  it('serves an object overwritten in the store while it was away in its new version, after one HEAD and one GET', async () => {
    const disk = path.join(dir, 'overwrite');
    const v1 = { small: randomBytes(40 * KiB), large: randomBytes(2 * MiB) };
    const v2 = { small: randomBytes(41 * KiB), large: randomBytes(2 * MiB + 7) };
    await put('ow/small.bin', v1.small);
    await put('ow/large.bin', v1.large);
    await primeDisk(disk, ['ow/small.bin', 'ow/large.bin']);

    await put('ow/small.bin', v2.small);
    await put('ow/large.bin', v2.large);

    const { gw, store } = await gatewayOn(disk);
    try {
      for (const [k, body] of [['ow/small.bin', v2.small], ['ow/large.bin', v2.large]] as const) {
        const r = await get(gw, k);
        expect(r.status, k).toBe(200);
        expect(r.hit, k).toBe('hit=0');
        expect(r.body.equals(body), k).toBe(true);
      }
      expect({ head: store.calls.head, gets: gets(store) }).toEqual({ head: 2, gets: 2 });
      await gw.gateway.disk!.flushed();
      // The new version is what the disk holds now, and this process cached it: no more checks.
      for (const [k, body] of [['ow/small.bin', v2.small], ['ow/large.bin', v2.large]] as const) {
        const r = await get(gw, k);
        expect(r.hit, k).toBe('hit=1');
        expect(r.body.equals(body), k).toBe(true);
      }
      expect({ head: store.calls.head, gets: gets(store) }).toEqual({ head: 2, gets: 2 });
    } finally {
      await gw.close();
    }
  });

  it('serves an unchanged entry from disk after one HEAD, and checks it only once', async () => {
    const disk = path.join(dir, 'unchanged');
    const body = randomBytes(2 * MiB); // above max_memory: every hit is a disk hit
    await put('same/large.bin', body);
    await primeDisk(disk, ['same/large.bin']);

    const { gw, store } = await gatewayOn(disk);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await get(gw, 'same/large.bin');
        expect(r.hit).toBe('hit=1');
        expect(r.body.equals(body)).toBe(true);
      }
      expect({ head: store.calls.head, gets: gets(store) }).toEqual({ head: 1, gets: 0 });
    } finally {
      await gw.close();
    }
  });

  it('shares one HEAD among concurrent first hits', async () => {
    const disk = path.join(dir, 'concurrent');
    const body = randomBytes(2 * MiB);
    await put('conc/large.bin', body);
    await primeDisk(disk, ['conc/large.bin']);

    const { gw, store } = await gatewayOn(disk);
    try {
      const results = await Promise.all(Array.from({ length: 8 }, () => get(gw, 'conc/large.bin')));
      for (const r of results) {
        expect(r.hit).toBe('hit=1');
        expect(r.body.equals(body)).toBe(true);
      }
      expect({ head: store.calls.head, gets: gets(store) }).toEqual({ head: 1, gets: 0 });
    } finally {
      await gw.close();
    }
  });

  it('answers HEAD with the new version, and 404 for an object deleted while it was away', async () => {
    const disk = path.join(dir, 'head-delete');
    const v1 = randomBytes(30 * KiB);
    const v2 = randomBytes(31 * KiB);
    await put('hd/changed.bin', v1);
    await put('hd/deleted.bin', v1);
    await primeDisk(disk, ['hd/changed.bin', 'hd/deleted.bin']);
    const { gw: first } = await gatewayOn(disk);
    const oldEtag = (await get(first, 'hd/changed.bin', 'HEAD')).etag;
    await first.close();

    await put('hd/changed.bin', v2);
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'hd/deleted.bin' }));

    const { gw } = await gatewayOn(disk);
    try {
      const head = await fetch(`${gw.url}/media/hd/changed.bin`, { method: 'HEAD', headers: AUTH });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(v2.length));
      expect(head.headers.get('etag')).not.toBe(oldEtag);
      expect((await get(gw, 'hd/changed.bin')).body.equals(v2)).toBe(true);
      expect((await get(gw, 'hd/deleted.bin')).status).toBe(404);
      expect((await get(gw, 'hd/deleted.bin', 'HEAD')).status).toBe(404);
    } finally {
      await gw.close();
    }
  });

  it('never serves an unchecked entry when the store cannot answer: a 5xx, then the entry once the store is back', async () => {
    const disk = path.join(dir, 'outage');
    const body = randomBytes(20 * KiB);
    await put('out/a.bin', body);
    await primeDisk(disk, ['out/a.bin']);

    // The same store id on a port nobody listens on: every call fails to connect.
    const down = createS3Store('media', { ...s3StoreConfig({ ...srv, endpoint: `http://127.0.0.1:${await freePort()}` }, BUCKET) });
    const { gw } = await gatewayOn(disk, countingStore(down));
    try {
      const r = await get(gw, 'out/a.bin');
      expect(r.status).toBeGreaterThanOrEqual(500);
      expect(r.body.equals(body)).toBe(false);
      expect(JSON.parse(r.body.toString()).code).toMatch(/^GW_ERR_/);
    } finally {
      await gw.close();
    }
    const { gw: back, store } = await gatewayOn(disk);
    try {
      const r = await get(back, 'out/a.bin');
      expect(r.hit).toBe('hit=1');
      expect(r.body.equals(body)).toBe(true);
      expect({ head: store.calls.head, gets: gets(store) }).toEqual({ head: 1, gets: 0 });
    } finally {
      await back.close();
    }
  });

  it('does not revalidate entries this process cached itself', async () => {
    const disk = path.join(dir, 'own');
    const body = randomBytes(2 * MiB);
    await put('own/large.bin', body);
    const { gw, store } = await gatewayOn(disk);
    try {
      expect((await get(gw, 'own/large.bin')).hit).toBe('hit=0');
      await gw.gateway.disk!.flushed();
      for (let i = 0; i < 2; i++) expect((await get(gw, 'own/large.bin')).hit).toBe('hit=1');
      expect({ head: store.calls.head, gets: gets(store) }).toEqual({ head: 0, gets: 1 });
    } finally {
      await gw.close();
    }
  });
});
