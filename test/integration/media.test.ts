/**
 * The media-ready HTTP features through running gateways, every case against s3rver: Range
 * (memory hit, cold miss through the singleflight, disk-tier hit, objects above
 * max_object_size), 416, If-Range, conditional requests, Cache-Control for bearer tokens and
 * links, a link's signed response overrides, per-store CORS (errors and raw streams included)
 * and HEAD `?prefetch=`. Bytes are compared exactly, and the counting stores say what reached
 * the backend.
 */
import { createPrivateKey, randomBytes, sign as edSign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { countingStore, type CountingStore, type StoreCalls } from '../helpers/counting-store.js';
import { AUTH, TEST_TOKEN, startGateway, type TestGateway } from '../helpers/gateway.js';
import { s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';
import { eventually } from '../helpers/eventually.js';

const MiB = 2 ** 20;
const SEED = Buffer.alloc(32, 11);
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const PRIVATE_KEY = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, SEED]), format: 'der', type: 'pkcs8' });
const PUBLIC_KEY = (PRIVATE_KEY.export({ format: 'jwk' }) as { x: string }).x;
const ORIGIN = 'https://app.example';
const EVIL_ORIGIN = 'https://evil.example';
/** A config store entry that only carries per-store HTTP options (the real store is passed in). */
const PLACEHOLDER = { type: 'fs', root: '/nonexistent' } as const;

const nowSec = () => Math.floor(Date.now() / 1000);

/** An independent link signer (node:crypto), cachegate's format. */
function sign(claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, exp: nowSec() + 600, m: 'GET', ...claims }));
  return `${payload.toString('base64url')}.${edSign(null, payload, PRIVATE_KEY).toString('base64url')}`;
}

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request with exactly these headers (node:http: no header is added, Origin included). */
function request(method: string, url: string, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const get = (url: string, headers: Record<string, string> = {}) => request('GET', url, headers);
const head = (url: string, headers: Record<string, string> = {}) => request('HEAD', url, headers);

/** Until a HEAD (no prefetch) says the object is served from a cache tier. */
function untilHit(url: string): Promise<boolean> {
  return eventually(async () => (await head(url, AUTH)).headers['x-cg-status'] === 'hit=1');
}

type Form = { name: string; header: (size: number) => string; range: (size: number) => [number, number] };
/** The three range forms, with offsets that do not fall on any chunk or block boundary. */
const FORMS: Form[] = [
  { name: 'bytes=a-b', header: () => 'bytes=1000003-2000011', range: () => [1000003, 2000011] },
  { name: 'bytes=a-', header: (s) => `bytes=${s - 300001}-`, range: (s) => [s - 300001, s - 1] },
  { name: 'bytes=-n', header: () => 'bytes=-123457', range: (s) => [s - 123457, s - 1] },
];

/** A 206 carrying exactly `full[start..end]`, with the headers that describe it. */
function expectPartial(res: Res, full: Buffer, start: number, end: number, cache: 'hit=1' | 'hit=0' | undefined, label = ''): void {
  expect(res.status, label).toBe(206);
  expect(res.headers['content-range'], label).toBe(`bytes ${start}-${end}/${full.length}`);
  expect(res.headers['content-length'], label).toBe(String(end - start + 1));
  expect(res.headers['accept-ranges'], label).toBe('bytes');
  if (cache) expect(res.headers['x-cg-status'], label).toBe(cache);
  expect(res.body.length, label).toBe(end - start + 1);
  expect(res.body.equals(full.subarray(start, end + 1)), label).toBe(true);
}

/** A 200 carrying exactly `full`. */
function expectWhole(res: Res, full: Buffer, cache?: 'hit=1' | 'hit=0', label = ''): void {
  expect(res.status, label).toBe(200);
  expect(res.headers['content-length'], label).toBe(String(full.length));
  expect(res.headers['content-range'], label).toBeUndefined();
  expect(res.headers['accept-ranges'], label).toBe('bytes');
  if (cache) expect(res.headers['x-cg-status'], label).toBe(cache);
  expect(res.body.equals(full), label).toBe(true);
}

/** A 416 naming the current length. */
function expectUnsatisfiable(res: Res, size: number, label = ''): void {
  expect(res.status, label).toBe(416);
  expect(res.headers['content-range'], label).toBe(`bytes */${size}`);
}

function accessControl(res: Res): Record<string, unknown> {
  return Object.fromEntries(Object.entries(res.headers).filter(([k]) => k.startsWith('access-control-')));
}

function exposed(res: Res): string[] {
  return String(res.headers['access-control-expose-headers'] ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase());
}

/** The CORS headers of an actual response for ORIGIN. */
function expectCors(res: Res, label = ''): void {
  expect(res.headers['access-control-allow-origin'], label).toBe(ORIGIN);
  for (const h of ['content-range', 'content-length', 'etag', 'x-cg-status']) expect(exposed(res), `${label} exposes ${h}`).toContain(h);
  expect(String(res.headers.vary ?? ''), label).toMatch(/\borigin\b/i);
}

const delta = (calls: StoreCalls, before: StoreCalls) => ({ get: calls.get - before.get, getRanged: calls.getRanged - before.getRanged });

describe('media features against s3rver', () => {
  let srv: S3rverInstance;
  let uploader: ObjectStore;
  /** No per-store HTTP options. */
  let media: CountingStore;
  /** cache_control: 'public, max-age=60'. */
  let pub: CountingStore;
  /** CORS for ORIGIN. */
  let web: CountingStore;
  /** The disk gateway's store. */
  let diskMedia: CountingStore;
  let gw: TestGateway;
  let dgw: TestGateway;
  let diskPath: string;
  let seq = 0;

  const url = (store: string, key: string, query = '') => `${gw.url}/${store}/${key}${query}`;
  /** A fresh key, so each case starts cold and its store calls are its own. */
  const fresh = (name: string) => `m/${++seq}-${name}`;

  async function upload(key: string, body: Buffer, contentType = 'video/mp4'): Promise<Buffer> {
    await uploader.put(key, Readable.from([body]), { contentLength: body.length, contentType });
    return body;
  }

  beforeAll(async () => {
    srv = await startS3rver({ buckets: ['media-bucket'] });
    const s3 = (id: string) =>
      createS3Store(id, s3StoreConfig(srv, 'media-bucket', 32));
    uploader = s3('uploader');
    media = countingStore(s3('media'));
    pub = countingStore(s3('pub'));
    web = countingStore(s3('web'));
    diskMedia = countingStore(s3('media'));
    const auth = { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY };
    gw = await startGateway(
      {
        auth,
        cache: { max_memory: '32MiB', max_object_size: '4MiB' },
        stores: {
          media: PLACEHOLDER,
          pub: { ...PLACEHOLDER, cache_control: 'public, max-age=60' },
          web: { ...PLACEHOLDER, cors: { allowed_origins: [ORIGIN], max_age: 600 } },
        },
      },
      [media, pub, web],
    );
    diskPath = await mkdtemp(path.join(tmpdir(), 'cg-media-disk-'));
    dgw = await startGateway(
      { auth, cache: { max_memory: '1MiB', max_object_size: '16MiB', max_disk: '64MiB', disk_path: diskPath } },
      [diskMedia],
    );
  });

  afterAll(async () => {
    await gw?.close();
    await dgw?.close();
    await uploader?.close();
    await srv?.stop();
    if (diskPath) await rm(diskPath, { recursive: true, force: true });
  });

  describe('Range', () => {
    it('answers bytes=a-b, bytes=a- and bytes=-n with 206 from a memory hit', async () => {
      const key = fresh('hit.bin');
      const body = await upload(key, randomBytes(3 * MiB + 17));
      expectWhole(await get(url('media', key), AUTH), body, 'hit=0');
      const before = { ...media.calls };
      for (const f of FORMS) {
        const [start, end] = f.range(body.length);
        expectPartial(await get(url('media', key), { ...AUTH, range: f.header(body.length) }), body, start, end, 'hit=1', f.name);
      }
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 0 });
    });

    it.each(FORMS)('serves $name of a cold cacheable object from ONE ranged slice GET (never a whole-object GET), and the next GET hits', async (f) => {
      const key = fresh('cold.bin');
      const body = await upload(key, randomBytes(3 * MiB + 5));
      const before = { ...media.calls };
      const [start, end] = f.range(body.length);
      expectPartial(await get(url('media', key), { ...AUTH, range: f.header(body.length) }), body, start, end, 'hit=0');
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 1 });

      // The fill goes on to the end after the client's range is served; then it is a hit.
      expect(await untilHit(url('media', key))).toBe(true);
      expectWhole(await get(url('media', key), AUTH), body, 'hit=1');
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 1 });
    });

    it('serves concurrent different ranges of one cold object from one slice GET', async () => {
      const key = fresh('concurrent.bin');
      const body = await upload(key, randomBytes(4 * MiB - 3));
      const before = { ...media.calls };
      const ranges: [number, number][] = [
        [0, 0],
        [17, 65_552],
        [MiB + 1, 3 * MiB + 7],
        [body.length - 999, body.length - 1],
        [2 * MiB, 2 * MiB],
      ];
      const results = await Promise.all(ranges.map(([s, e]) => get(url('media', key), { ...AUTH, range: `bytes=${s}-${e}` })));
      results.forEach((res, i) => {
        const [s, e] = ranges[i]!;
        expect(res.status, `range ${s}-${e}`).toBe(206);
        expect(res.headers['content-range']).toBe(`bytes ${s}-${e}/${body.length}`);
        expect(res.body.equals(body.subarray(s, e + 1)), `range ${s}-${e}`).toBe(true);
      });
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 1 });
      expect(await untilHit(url('media', key))).toBe(true);
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 1 });
    });

    it('serves ranges from disk-tier hits: one read whole (3 MiB) and one streamed from disk (12 MiB)', async () => {
      const small = fresh('disk-small.bin');
      const big = fresh('disk-big.bin');
      const bodies = new Map([
        [small, await upload(small, randomBytes(3 * MiB + 1))],
        [big, await upload(big, randomBytes(12 * MiB + 3))],
      ]);
      for (const [key, body] of bodies) {
        expectWhole(await get(`${dgw.url}/media/${key}`, AUTH), body, 'hit=0', key);
        // 1 MiB of memory holds neither: a HEAD hit means the disk tier has it.
        expect(await untilHit(`${dgw.url}/media/${key}`)).toBe(true);
      }
      const before = { ...diskMedia.calls };
      for (const [key, body] of bodies) {
        for (const f of FORMS) {
          const [start, end] = f.range(body.length);
          const res = await get(`${dgw.url}/media/${key}`, { ...AUTH, range: f.header(body.length) });
          expectPartial(res, body, start, end, 'hit=1', `${key} ${f.name}`);
        }
        expectPartial(await get(`${dgw.url}/media/${key}`, { ...AUTH, range: 'bytes=0-0' }), body, 0, 0, 'hit=1', key);
        expectUnsatisfiable(await get(`${dgw.url}/media/${key}`, { ...AUTH, range: `bytes=${body.length}-` }), body.length, key);
        expectWhole(await get(`${dgw.url}/media/${key}`, AUTH), body, 'hit=1', key);
      }
      expect(delta(diskMedia.calls, before)).toEqual({ get: 0, getRanged: 0 });
    });

    it('asks the store for a RANGED GET for an object above max_object_size, never streaming a full body', async () => {
      const key = fresh('oversized.bin');
      const body = await upload(key, randomBytes(6 * MiB + 9));
      let fullBodiesEnded = 0;
      media.tap = async (k, opts, real) => {
        const res = await real();
        if (k === key && !opts.range && res) res.body.once('end', () => fullBodiesEnded++);
        return res;
      };
      try {
        const before = { ...media.calls };
        // The first request learns the size from one ranged GET of the covering slice.
        const [s0, e0] = [4 * MiB + 3, 5 * MiB + 11];
        expectPartial(await get(url('media', key), { ...AUTH, range: `bytes=${s0}-${e0}` }), body, s0, e0, 'hit=0', 'first');
        const first = delta(media.calls, before);
        expect(first.get).toBe(0);
        expect(first.getRanged).toBe(1);

        for (const f of FORMS) {
          const was = { ...media.calls };
          const [start, end] = f.range(body.length);
          expectPartial(await get(url('media', key), { ...AUTH, range: f.header(body.length) }), body, start, end, 'hit=0', f.name);
          // A ranged GET of just that range (or none, while the first slice's fill is still in flight).
          const d = delta(media.calls, was);
          expect(d.get, f.name).toBe(0);
          expect(d.getRanged, f.name).toBeLessThanOrEqual(1);
        }
        const was = { ...media.calls };
        expectUnsatisfiable(await get(url('media', key), { ...AUTH, range: `bytes=${body.length}-` }), body.length);
        expect(delta(media.calls, was).get).toBe(0);
        expect(delta(media.calls, before).get).toBe(0);
        await new Promise((r) => setTimeout(r, 100));
        expect(fullBodiesEnded).toBe(0);
      } finally {
        media.tap = undefined;
      }
    });

    it('answers an unsatisfiable range with 416 and bytes */size, on a hit and on a miss', async () => {
      const key = fresh('416.bin');
      const body = await upload(key, randomBytes(MiB + 3));
      // Cold miss.
      expectUnsatisfiable(await get(url('media', key), { ...AUTH, range: `bytes=${body.length}-` }), body.length, 'miss');
      expect(await untilHit(url('media', key))).toBe(true);
      // Memory hit.
      expectUnsatisfiable(await get(url('media', key), { ...AUTH, range: `bytes=${body.length}-` }), body.length, 'hit');
      expectUnsatisfiable(await get(url('media', key), { ...AUTH, range: `bytes=${body.length + 100}-${body.length + 200}` }), body.length, 'hit');
      expectUnsatisfiable(await get(url('media', key), { ...AUTH, range: 'bytes=-0' }), body.length, 'hit -0');
      // The last byte is satisfiable.
      expectPartial(await get(url('media', key), { ...AUTH, range: `bytes=${body.length - 1}-` }), body, body.length - 1, body.length - 1, 'hit=1');
    });

    it('answers several ranges with 200 and the whole object, and coalesces overlapping ones', async () => {
      const key = fresh('multi.bin');
      const body = await upload(key, randomBytes(200_000));
      expectWhole(await get(url('media', key), { ...AUTH, range: 'bytes=0-0,-1' }), body, 'hit=0', 'cold several');
      expect(await untilHit(url('media', key))).toBe(true);
      expectWhole(await get(url('media', key), { ...AUTH, range: 'bytes=0-0,-1' }), body, 'hit=1', 'several');
      expectPartial(await get(url('media', key), { ...AUTH, range: 'bytes=0-10,5-20' }), body, 0, 20, 'hit=1', 'overlapping');
      expectPartial(await get(url('media', key), { ...AUTH, range: 'bytes=0-10,11-20' }), body, 0, 20, 'hit=1', 'adjacent');
      // Not a bytes range, or not valid: ignored, whole object.
      expectWhole(await get(url('media', key), { ...AUTH, range: 'items=0-1' }), body, 'hit=1', 'other unit');
      expectWhole(await get(url('media', key), { ...AUTH, range: 'bytes=20-10' }), body, 'hit=1', 'invalid');
    });

    it('sends Accept-Ranges: bytes on every object response (GET 200/206, HEAD, hit and miss)', async () => {
      const key = fresh('accept.bin');
      const body = await upload(key, randomBytes(300_000));
      const responses: [string, Res][] = [
        ['HEAD cold', await head(url('media', key), AUTH)],
        ['GET 200 cold', await get(url('media', key), AUTH)],
        ['GET 200 hit', await get(url('media', key), AUTH)],
        ['GET 206 hit', await get(url('media', key), { ...AUTH, range: 'bytes=1-2' })],
        ['HEAD hit', await head(url('media', key), AUTH)],
        ['HEAD with Range', await head(url('media', key), { ...AUTH, range: 'bytes=1-2' })],
      ];
      const big = fresh('accept-big.bin');
      await upload(big, randomBytes(5 * MiB));
      responses.push(['GET 200 oversized', await get(url('media', big), AUTH)]);
      responses.push(['GET 206 oversized', await get(url('media', big), { ...AUTH, range: 'bytes=7-8' })]);
      responses.push(['HEAD oversized', await head(url('media', big), AUTH)]);
      for (const [label, res] of responses) {
        expect(res.status, label).toBeLessThan(300);
        expect(res.headers['accept-ranges'], label).toBe('bytes');
        if (label.startsWith('HEAD')) {
          expect(res.body.length, label).toBe(0);
          expect(res.headers['content-length'], label).toBe(label.includes('oversized') ? String(5 * MiB) : String(body.length));
        }
      }
    });

    it('applies If-Range: the current strong ETag gives 206, an old or weak one the whole object', async () => {
      const key = fresh('if-range.bin');
      const body = await upload(key, randomBytes(500_000));
      const etag = (await get(url('media', key), AUTH)).headers.etag!;
      expect(etag).toMatch(/^"[^"]+"$/); // s3rver's ETag is strong
      const range = { ...AUTH, range: 'bytes=100-199' };
      expectPartial(await get(url('media', key), { ...range, 'if-range': etag }), body, 100, 199, 'hit=1', 'current');
      expectWhole(await get(url('media', key), { ...range, 'if-range': '"0123456789abcdef0123456789abcdef"' }), body, 'hit=1', 'old');
      expectWhole(await get(url('media', key), { ...range, 'if-range': `W/${etag}` }), body, 'hit=1', 'weak');
      // If-Range with the Last-Modified date is a match too; another date is not.
      const lm = (await head(url('media', key), AUTH)).headers['last-modified']!;
      expectPartial(await get(url('media', key), { ...range, 'if-range': lm }), body, 100, 199, 'hit=1', 'date');
      expectWhole(await get(url('media', key), { ...range, 'if-range': 'Mon, 01 Jan 2001 00:00:00 GMT' }), body, 'hit=1', 'old date');
      // On a cold miss too.
      const cold = fresh('if-range-cold.bin');
      const coldBody = await upload(cold, randomBytes(500_000));
      const coldTag = (await head(url('media', cold), AUTH)).headers.etag!;
      expectPartial(await get(url('media', cold), { ...range, 'if-range': coldTag }), coldBody, 100, 199, 'hit=0', 'cold current');
    });
  });

  describe('conditional requests', () => {
    let key: string;
    let body: Buffer;
    let etag: string;
    let lastModified: string;

    beforeAll(async () => {
      key = fresh('cond.bin');
      body = await upload(key, randomBytes(400_000));
      const res = await get(url('media', key), AUTH);
      etag = res.headers.etag!;
      lastModified = res.headers['last-modified']!;
    });

    function expectNotModified(res: Res, label: string): void {
      expect(res.status, label).toBe(304);
      expect(res.headers.etag, label).toBe(etag);
      expect(res.body.length, label).toBe(0);
      expect(res.headers['content-range'], label).toBeUndefined();
    }

    it('answers If-None-Match with the ETag, *, a list or a weak form with 304 (GET and HEAD)', async () => {
      for (const inm of [etag, '*', `"nope", ${etag}`, `"a","b" , ${etag},"c"`, `W/${etag}`]) {
        expectNotModified(await get(url('media', key), { ...AUTH, 'if-none-match': inm }), `GET ${inm}`);
        expectNotModified(await head(url('media', key), { ...AUTH, 'if-none-match': inm }), `HEAD ${inm}`);
      }
      expectWhole(await get(url('media', key), { ...AUTH, 'if-none-match': '"other", "another"' }), body, 'hit=1');
      expect((await head(url('media', key), { ...AUTH, 'if-none-match': '"other"' })).status).toBe(200);
    });

    it('answers If-None-Match on a cold miss with 304 too', async () => {
      const cold = fresh('cond-cold.bin');
      await upload(cold, randomBytes(100_000));
      const tag = (await head(url('media', cold), AUTH)).headers.etag!;
      const res = await get(url('media', cold), { ...AUTH, 'if-none-match': tag });
      expect(res.status).toBe(304);
      expect(res.headers.etag).toBe(tag);
      expect(res.body.length).toBe(0);
    });

    it('answers If-Modified-Since at or after Last-Modified with 304, before it with 200', async () => {
      const later = new Date(Date.parse(lastModified) + 86_400_000).toUTCString();
      const earlier = new Date(Date.parse(lastModified) - 86_400_000).toUTCString();
      expectNotModified(await get(url('media', key), { ...AUTH, 'if-modified-since': lastModified }), 'equal');
      expectNotModified(await get(url('media', key), { ...AUTH, 'if-modified-since': later }), 'later');
      expectNotModified(await head(url('media', key), { ...AUTH, 'if-modified-since': later }), 'HEAD later');
      expectWhole(await get(url('media', key), { ...AUTH, 'if-modified-since': earlier }), body, 'hit=1', 'earlier');
      // If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2).
      expectWhole(await get(url('media', key), { ...AUTH, 'if-none-match': '"other"', 'if-modified-since': later }), body, 'hit=1', 'inm wins');
    });

    it('answers If-Match with a wrong ETag and If-Unmodified-Since in the past with 412', async () => {
      for (const [label, h] of [
        ['if-match wrong', { 'if-match': '"wrong"' }],
        ['if-match weak', { 'if-match': `W/${etag}` }],
        ['if-unmodified-since past', { 'if-unmodified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' }],
      ] as const) {
        const res = await get(url('media', key), { ...AUTH, ...h });
        expect(res.status, label).toBe(412);
        expect(JSON.parse(res.body.toString()).code, label).toBe('GW_ERR_PRECONDITION_FAILED');
        expect((await head(url('media', key), { ...AUTH, ...h })).status, `HEAD ${label}`).toBe(412);
      }
      expectWhole(await get(url('media', key), { ...AUTH, 'if-match': etag }), body, 'hit=1', 'if-match right');
      expectWhole(await get(url('media', key), { ...AUTH, 'if-match': '*' }), body, 'hit=1', 'if-match *');
      expectWhole(await get(url('media', key), { ...AUTH, 'if-unmodified-since': lastModified }), body, 'hit=1', 'ius equal');
    });

    it('lets 304 take precedence over Range', async () => {
      expectNotModified(await get(url('media', key), { ...AUTH, range: 'bytes=0-9', 'if-none-match': etag }), 'inm + range');
      expectNotModified(await get(url('media', key), { ...AUTH, range: 'bytes=0-9', 'if-modified-since': lastModified }), 'ims + range');
      // 412 also comes before an unsatisfiable range.
      expect((await get(url('media', key), { ...AUTH, range: `bytes=${body.length}-`, 'if-match': '"wrong"' })).status).toBe(412);
      // And a 304 beats an unsatisfiable range.
      expectNotModified(await get(url('media', key), { ...AUTH, range: `bytes=${body.length}-`, 'if-none-match': etag }), 'inm + 416');
    });
  });

  describe('Cache-Control', () => {
    let key: string;
    beforeAll(async () => {
      key = fresh('cc.bin');
      await upload(key, randomBytes(10_000));
    });
    const maxAge = (res: Res) => Number(/max-age=(\d+)/.exec(String(res.headers['cache-control']))?.[1]);

    it('defaults to private, no-store for bearer requests', async () => {
      for (const res of [await get(url('media', key), AUTH), await head(url('media', key), AUTH), await get(url('media', key), { ...AUTH, range: 'bytes=0-1' })]) {
        expect(res.headers['cache-control']).toBe('private, no-store');
      }
    });

    it('defaults to private, max-age=N for links, N bounded by the link lifetime and by 3600', async () => {
      const short = await get(url('media', key, `?sig=${sign({ b: 'media', p: key, exp: nowSec() + 120 })}`));
      expect(short.status).toBe(200);
      expect(short.headers['cache-control']).toMatch(/^private, max-age=\d+$/);
      expect(maxAge(short)).toBeLessThanOrEqual(120);
      expect(maxAge(short)).toBeGreaterThanOrEqual(110);

      const long = await get(url('media', key, `?sig=${sign({ b: 'media', p: key, exp: nowSec() + 7200 })}`));
      expect(long.headers['cache-control']).toBe('private, max-age=3600');
      const ranged = await get(url('media', key, `?sig=${sign({ b: 'media', p: key, exp: nowSec() + 7200 })}`), { range: 'bytes=0-0' });
      expect(ranged.status).toBe(206);
      expect(ranged.headers['cache-control']).toBe('private, max-age=3600');
    });

    it("uses the store's cache_control for bearer requests and clamps it for links", async () => {
      const pkey = fresh('cc-pub.bin');
      await upload(pkey, randomBytes(10_000));
      expect((await get(url('pub', pkey), AUTH)).headers['cache-control']).toBe('public, max-age=60');
      expect((await head(url('pub', pkey), AUTH)).headers['cache-control']).toBe('public, max-age=60');
      const soon = await get(url('pub', pkey, `?sig=${sign({ b: 'pub', p: pkey, exp: nowSec() + 30 })}`));
      expect(soon.status).toBe(200);
      expect(soon.headers['cache-control']).toMatch(/^public, max-age=\d+$/);
      expect(maxAge(soon)).toBeLessThanOrEqual(30);
      expect(maxAge(soon)).toBeGreaterThanOrEqual(20);
      const later = await get(url('pub', pkey, `?sig=${sign({ b: 'pub', p: pkey, exp: nowSec() + 7200 })}`));
      expect(later.headers['cache-control']).toBe('public, max-age=60');
    });
  });

  describe('signed response overrides', () => {
    let key: string;
    let body: Buffer;
    beforeAll(async () => {
      key = fresh('report.pdf');
      body = await upload(key, randomBytes(20_000), 'application/pdf');
    });
    const linked = (claims: Record<string, unknown>, query = '') => url('media', key, `?sig=${sign({ b: 'media', p: key, ...claims })}${query}`);

    it('sets Content-Disposition with an escaped ASCII fallback and filename* from rcd', async () => {
      const res = await get(linked({ rcd: 'attachment; filename=résumé "q".pdf' }));
      expectWhole(res, body);
      expect(res.headers['content-disposition']).toBe(`attachment; filename="r_sum_ \\"q\\".pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22q%22.pdf`);
      expect(res.headers['content-type']).toBe('application/pdf');
      // The same on a range and on HEAD.
      const part = await get(linked({ rcd: 'attachment; filename=résumé "q".pdf' }), { range: 'bytes=0-9' });
      expectPartial(part, body, 0, 9, 'hit=1');
      expect(part.headers['content-disposition']).toBe(res.headers['content-disposition']);
      expect((await head(linked({ rcd: 'attachment; filename=résumé "q".pdf' }))).headers['content-disposition']).toBe(res.headers['content-disposition']);
    });

    it("sets inline from rcd 'inline' and Content-Type from rct", async () => {
      expect((await get(linked({ rcd: 'inline' }))).headers['content-disposition']).toBe('inline');
      const typed = await get(linked({ rct: 'text/plain; charset=utf-8' }));
      expectWhole(typed, body);
      expect(typed.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(typed.headers['content-disposition']).toBeUndefined();
    });

    it('ignores unsigned response-content-* query parameters (bearer and link)', async () => {
      const query = '?response-content-disposition=attachment&response-content-type=text%2Fhtml&rcd=attachment&rct=text%2Fhtml';
      const bearer = await get(url('media', key, query), AUTH);
      expectWhole(bearer, body);
      expect(bearer.headers['content-disposition']).toBeUndefined();
      expect(bearer.headers['content-type']).toBe('application/pdf');
      const link = await get(linked({}, query.replace('?', '&')));
      expectWhole(link, body);
      expect(link.headers['content-disposition']).toBeUndefined();
      expect(link.headers['content-type']).toBe('application/pdf');
    });
  });

  describe('CORS', () => {
    const preflightHeaders = (origin: string) => ({
      origin,
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'range',
    });

    it('answers a preflight without auth with 204 and the allowed origin, methods, headers and max-age', async () => {
      const res = await request('OPTIONS', url('web', 'any/key.mp4'), preflightHeaders(ORIGIN));
      expect(res.status).toBe(204);
      expect(res.body.length).toBe(0);
      expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
      expect(String(res.headers['access-control-allow-methods']).split(/\s*,\s*/)).toContain('GET');
      expect(String(res.headers['access-control-allow-headers']).toLowerCase().split(/\s*,\s*/)).toContain('range');
      expect(res.headers['access-control-max-age']).toBe('600');
      expect(web.calls.head + web.calls.get + web.calls.getRanged).toBe(0);
    });

    it('refuses a preflight from another origin with 403 and no Access-Control-* header', async () => {
      const res = await request('OPTIONS', url('web', 'any/key.mp4'), preflightHeaders(EVIL_ORIGIN));
      expect(res.status).toBe(403);
      expect(accessControl(res)).toEqual({});
    });

    it('adds Allow-Origin and Expose-Headers to GETs (200 and 206) and HEADs from an allowed origin', async () => {
      const key = fresh('cors.mp4');
      const body = await upload(key, randomBytes(50_000));
      const cold = await get(url('web', key), { ...AUTH, origin: ORIGIN });
      expectWhole(cold, body, 'hit=0');
      expectCors(cold, 'cold');
      const hit = await get(url('web', key), { ...AUTH, origin: ORIGIN });
      expectWhole(hit, body, 'hit=1');
      expectCors(hit, 'hit');
      const part = await get(url('web', key), { ...AUTH, origin: ORIGIN, range: 'bytes=5-9' });
      expectPartial(part, body, 5, 9, 'hit=1');
      expectCors(part, '206');
      expectCors(await head(url('web', key), { ...AUTH, origin: ORIGIN }), 'HEAD');
      const notModified = await get(url('web', key), { ...AUTH, origin: ORIGIN, 'if-none-match': hit.headers.etag! });
      expect(notModified.status).toBe(304);
      expect(notModified.headers['access-control-allow-origin']).toBe(ORIGIN);
      // A signed link from the page works the same.
      const linked = await get(url('web', key, `?sig=${sign({ b: 'web', p: key })}`), { origin: ORIGIN, range: 'bytes=0-0' });
      expectPartial(linked, body, 0, 0, 'hit=1');
      expectCors(linked, 'link');
    });

    it('adds them to error responses too: 404, 401, 416, 412', async () => {
      const key = fresh('cors-err.mp4');
      const body = await upload(key, randomBytes(1000));
      const missing = await get(url('web', 'no/such/object.mp4'), { ...AUTH, origin: ORIGIN });
      expect(missing.status).toBe(404);
      expectCors(missing, '404');
      const noAuth = await get(url('web', key), { origin: ORIGIN });
      expect(noAuth.status).toBe(401);
      expectCors(noAuth, '401');
      const badLink = await get(url('web', key, `?sig=${sign({ b: 'web', p: 'other' })}`), { origin: ORIGIN });
      expect(badLink.status).toBe(403);
      expectCors(badLink, '403');
      const unsatisfiable = await get(url('web', key), { ...AUTH, origin: ORIGIN, range: `bytes=${body.length}-` });
      expectUnsatisfiable(unsatisfiable, body.length);
      expectCors(unsatisfiable, '416');
      const failed = await get(url('web', key), { ...AUTH, origin: ORIGIN, 'if-match': '"nope"' });
      expect(failed.status).toBe(412);
      expectCors(failed, '412');
    });

    it('sends no Access-Control-* header to a disallowed origin, on success and on error', async () => {
      const key = fresh('cors-evil.mp4');
      const body = await upload(key, randomBytes(1000));
      const ok = await get(url('web', key), { ...AUTH, origin: EVIL_ORIGIN });
      expectWhole(ok, body);
      expect(accessControl(ok)).toEqual({});
      expect(accessControl(await get(url('web', key), { ...AUTH, origin: EVIL_ORIGIN, range: 'bytes=0-0' }))).toEqual({});
      expect(accessControl(await get(url('web', key), { origin: EVIL_ORIGIN }))).toEqual({});
      expect(accessControl(await get(url('web', 'missing.mp4'), { ...AUTH, origin: EVIL_ORIGIN }))).toEqual({});
      // No Origin: no CORS headers either (a same-origin or non-browser client).
      expect(accessControl(await get(url('web', key), AUTH))).toEqual({});
    });

    it('adds them to streamed responses (cold miss, ranged cold miss, object above max_object_size)', async () => {
      const key = fresh('cors-stream.mp4');
      const body = await upload(key, randomBytes(3 * MiB));
      const cold = await get(url('web', key), { ...AUTH, origin: ORIGIN });
      expectWhole(cold, body, 'hit=0');
      expectCors(cold, 'cold stream');

      const key2 = fresh('cors-stream-range.mp4');
      const body2 = await upload(key2, randomBytes(3 * MiB));
      const coldRange = await get(url('web', key2), { ...AUTH, origin: ORIGIN, range: 'bytes=1000-2999999' });
      expectPartial(coldRange, body2, 1000, 2_999_999, 'hit=0');
      expectCors(coldRange, 'cold range stream');

      const big = fresh('cors-big.mp4');
      const bigBody = await upload(big, randomBytes(5 * MiB));
      const whole = await get(url('web', big), { ...AUTH, origin: ORIGIN });
      expectWhole(whole, bigBody, 'hit=0');
      expectCors(whole, 'oversized stream');
      const ranged = await get(url('web', big), { ...AUTH, origin: ORIGIN, range: 'bytes=-1000' });
      expectPartial(ranged, bigBody, bigBody.length - 1000, bigBody.length - 1, 'hit=0');
      expectCors(ranged, 'oversized ranged stream');
      // And a disallowed origin gets none on the raw-stream path either.
      expect(accessControl(await get(url('web', big), { ...AUTH, origin: EVIL_ORIGIN, range: 'bytes=-1000' }))).toEqual({});
    });
  });

  describe('accounting', () => {
    it('counts 206 and streamed responses by their cache result, as X-CG-Status says (/stats)', async () => {
      const key = fresh('stats.bin');
      const body = await upload(key, randomBytes(2 * MiB));
      const stats = () => gw.gateway.metrics.stats();
      const before = stats();
      // A cold suffix range (streamed while the fill runs; the fill commits before the last
      // byte goes out, so what follows is a hit), then a 206 and a 200 from memory.
      const cold = await get(url('media', key), { ...AUTH, range: 'bytes=-1000' });
      expectPartial(cold, body, body.length - 1000, body.length - 1, 'hit=0');
      expectPartial(await get(url('media', key), { ...AUTH, range: 'bytes=0-99' }), body, 0, 99, 'hit=1');
      expectWhole(await get(url('media', key), AUTH), body, 'hit=1');
      // A request is recorded when its response has closed.
      expect(await eventually(async () => stats().requests_total >= before.requests_total + 3)).toBe(true);
      const after = stats();
      expect({ hits: after.cache_hit_total - before.cache_hit_total, misses: after.cache_miss_total - before.cache_miss_total }).toEqual({ hits: 2, misses: 1 });
    });
  });

  describe('HEAD ?prefetch', () => {
    it.each(['1', 'true', 'TRUE'])('prefetch=%s answers at once with metadata and warms the cache through the singleflight', async (value) => {
      const key = fresh('prefetch.bin');
      const body = await upload(key, randomBytes(3 * MiB + 1));
      const before = { ...media.calls };
      const res = await head(url('media', key, `?prefetch=${value}`), AUTH);
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(0);
      expect(res.headers['x-cg-status']).toBe('hit=0');
      expect(res.headers['content-length']).toBe(String(body.length));
      expect(res.headers.etag).toMatch(/^"[^"]+"$/);
      expect(res.headers['accept-ranges']).toBe('bytes');

      expect(await untilHit(url('media', key))).toBe(true);
      expectWhole(await get(url('media', key), AUTH), body, 'hit=1');
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 1 });
    });

    it('lets a GET right after a prefetch join its fill: one store GET in total', async () => {
      const key = fresh('prefetch-join.bin');
      const body = await upload(key, randomBytes(4 * MiB));
      const before = { ...media.calls };
      expect((await head(url('media', key, '?prefetch=1'), AUTH)).status).toBe(200);
      const [whole, part] = await Promise.all([
        get(url('media', key), AUTH),
        get(url('media', key), { ...AUTH, range: 'bytes=-10' }),
      ]);
      expectWhole(whole, body);
      // Joined the prefetch's fill (hit=0) or came after it finished (hit=1): either way no new GET.
      expectPartial(part, body, body.length - 10, body.length - 1, undefined);
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 1 });
    });

    it.each(['0', 'false'])('prefetch=%s does not warm the cache', async (value) => {
      const key = fresh('no-prefetch.bin');
      const body = await upload(key, randomBytes(MiB));
      const before = { ...media.calls };
      const res = await head(url('media', key, `?prefetch=${value}`), AUTH);
      expect(res.status).toBe(200);
      expect(res.headers['x-cg-status']).toBe('hit=0');
      expect(res.headers['content-length']).toBe(String(body.length));
      await new Promise((r) => setTimeout(r, 300));
      expect((await head(url('media', key), AUTH)).headers['x-cg-status']).toBe('hit=0');
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 0 });
    });

    it('refuses an invalid prefetch value with 400', async () => {
      const key = fresh('bad-prefetch.bin');
      await upload(key, randomBytes(1000));
      const before = { ...media.calls };
      for (const value of ['yes', '2', '', 'truee']) {
        expect((await head(url('media', key, `?prefetch=${value}`), AUTH)).status, value).toBe(400);
      }
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 0 });
    });

    it('does not fetch the body of an object above max_object_size', async () => {
      const key = fresh('prefetch-big.bin');
      await upload(key, randomBytes(5 * MiB));
      const before = { ...media.calls };
      const res = await head(url('media', key, '?prefetch=1'), AUTH);
      expect(res.status).toBe(200);
      expect(res.headers['content-length']).toBe(String(5 * MiB));
      await new Promise((r) => setTimeout(r, 300));
      expect(delta(media.calls, before)).toEqual({ get: 0, getRanged: 0 });
    });
  });
});
