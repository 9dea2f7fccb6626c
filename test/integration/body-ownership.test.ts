/**
 * Every store body has one owner (issue 11): walk every error answer on GET and HEAD of an object
 * that is uncached, above max_object_size, or being filled, and check after each answer that no
 * store body is left open. The walk runs with a long `store_idle_timeout`, so only the owner's
 * release (never the deadline) can close a body. A child process with a short one shows the
 * reported crash is gone: fifty refused requests for an oversized object, then past the deadline
 * the process is alive, its descriptors back, and nothing was uncaught.
 */
import { createPrivateKey, randomBytes, sign as edSign } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Store } from '../../src/stores/s3.js';
import type { GetResult } from '../../src/stores/types.js';
import { countingStore, type CountingStore } from '../helpers/counting-store.js';
import { AUTH, TEST_TOKEN, startChildGateway, startGateway, type TestGateway } from '../helpers/gateway.js';
import { s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';
import { eventually } from '../helpers/eventually.js';
import { captureLog } from '../helpers/log-capture.js';

const KiB = 1024;
/** The child's deadline; the in-process walk uses WALK_IDLE so a deadline cannot hide a leak. */
const IDLE_MS = 400;
const WALK_IDLE = '60s';
const SEED = Buffer.alloc(32, 33);
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const PRIVATE_KEY = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, SEED]), format: 'der', type: 'pkcs8' });
const PUBLIC_KEY = (PRIVATE_KEY.export({ format: 'jwk' }) as { x: string }).x;

function link(claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, exp: Math.floor(Date.now() / 1000) + 600, m: 'GET', b: 'media', ...claims }));
  return `${payload.toString('base64url')}.${edSign(null, payload, PRIVATE_KEY).toString('base64url')}`;
}

/** One request; `leave` drops the connection as soon as the response headers arrive. */
function request(method: string, url: string, headers: Record<string, string>, leave = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      if (leave) {
        req.destroy();
        resolve(res.statusCode!);
        return;
      }
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
      res.on('error', reject);
    });
    req.on('error', (err) => (leave ? resolve(0) : reject(err)));
    req.end();
  });
}

interface Case {
  name: string;
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  sig?: Record<string, unknown>;
  status: number;
  leave?: boolean;
  missing?: boolean;
}

const CASES: Case[] = [
  { name: 'a refused rct override', method: 'GET', sig: { rct: 'not a type' }, status: 400 },
  { name: 'a refused rct override', method: 'HEAD', sig: { rct: 'not a type' }, status: 400 },
  { name: 'a link for another path', method: 'GET', sig: { p: 'elsewhere' }, status: 403 },
  { name: 'If-None-Match: *', method: 'GET', headers: { 'if-none-match': '*' }, status: 304 },
  { name: 'If-None-Match: *', method: 'HEAD', headers: { 'if-none-match': '*' }, status: 304 },
  { name: 'a failed If-Match', method: 'GET', headers: { 'if-match': '"nope"' }, status: 412 },
  { name: 'a failed If-Match', method: 'HEAD', headers: { 'if-match': '"nope"' }, status: 412 },
  { name: 'a failed If-Unmodified-Since', method: 'GET', headers: { 'if-unmodified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' }, status: 412 },
  { name: 'an unsatisfiable range', method: 'GET', headers: { range: 'bytes=999999999-' }, status: 416 },
  { name: 'a missing object', method: 'GET', status: 404, missing: true },
  { name: 'a missing object', method: 'HEAD', status: 404, missing: true },
  { name: 'a client that leaves', method: 'GET', status: 200, leave: true },
  { name: 'a client that leaves a range', method: 'GET', headers: { range: 'bytes=10-' }, status: 206, leave: true },
];

describe('store bodies are released on every error answer', () => {
  let srv: S3rverInstance;
  let store: CountingStore;
  let gw: TestGateway;
  let open = 0;
  let hold: Promise<void> | undefined;
  let n = 0;
  /** The gateway's warnings and the held store bodies' errors, quoted when an in-flight GET fails. */
  const logs = captureLog('warn');

  beforeAll(async () => {
    srv = await startS3rver({ buckets: ['own'] });
    const inner = createS3Store('media', s3StoreConfig(srv, 'own'));
    store = countingStore(inner);
    // Count every store body from its birth to its 'close'; optionally hold its bytes back.
    store.tap = async (_key, _opts, real) => {
      const res = await real();
      if (!res) return res;
      open++;
      let body = res.body;
      if (hold) {
        const gate = hold;
        const held = new PassThrough();
        res.body.on('error', (err) => {
          logs.log.warn({ err }, 'held store body failed');
          held.destroy(err);
        });
        void gate.then(() => res.body.pipe(held));
        held.on('close', () => res.body.destroy());
        body = held;
      }
      body.once('close', () => open--);
      return { ...res, body } as GetResult;
    };
    gw = await startGateway(
      {
        auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
        cache: { max_memory: '8MiB', max_object_size: '256KiB' },
        limits: { store_idle_timeout: WALK_IDLE },
      },
      [store],
      { log: logs.log },
    );
  });
  afterAll(async () => {
    await gw?.close();
    await srv?.stop();
  });

  const put = async (key: string, bytes: number) => {
    const res = await fetch(`${gw.url}/media/${key}`, { method: 'PUT', headers: AUTH, body: new Uint8Array(randomBytes(bytes)) });
    expect(res.status).toBe(200);
  };

  /** A fresh key in the store, uncached in the gateway (written to the store directly). */
  const fresh = async (bytes: number) => {
    const key = `own/${n++}.bin`;
    const { Readable } = await import('node:stream');
    await store.put(key, Readable.from([randomBytes(bytes)]), { contentLength: bytes });
    return key;
  };

  const ask = (c: Case, key: string) => {
    const target = c.missing ? `${key}.missing` : key;
    const query = c.sig ? `?sig=${link({ p: target, ...c.sig })}` : '';
    return request(c.method, `${gw.url}/media/${target}${query}`, { ...(c.sig ? {} : AUTH), ...c.headers }, c.leave);
  };

  it.each(CASES)('uncached: $method with $name', async (c) => {
    const key = await fresh(64 * KiB);
    expect(await ask(c, key)).toBe(c.status);
    expect(await eventually(() => open === 0), `open store bodies: ${open}`).toBe(true);
  });

  it.each(CASES)('above max_object_size: $method with $name', async (c) => {
    const key = await fresh(1024 * KiB);
    expect(await ask(c, key)).toBe(c.status);
    expect(await eventually(() => open === 0), `open store bodies: ${open}`).toBe(true);
  });

  it.each(CASES.filter((c) => !c.missing))('in flight: $method with $name', async (c) => {
    const key = await fresh(64 * KiB);
    let release!: () => void;
    const logged = logs.text().length;
    hold = new Promise<void>((r) => (release = r));
    try {
      // The first GET starts the fill and waits for its held bytes; the case joins that fill.
      const first = request('GET', `${gw.url}/media/${key}`, AUTH);
      await eventually(() => open === 1);
      hold = undefined;
      const answer = ask(c, key);
      await new Promise((r) => setTimeout(r, 50));
      release();
      expect(await answer).toBe(c.status);
      expect(await first, logs.text().slice(logged)).toBe(200);
    } finally {
      hold = undefined;
      release();
    }
    expect(await eventually(() => open === 0), `open store bodies: ${open}`).toBe(true);
  });

  it('leaves every body released after the walk, and a later write and read work', async () => {
    await put('own/alive.txt', 10);
    expect((await fetch(`${gw.url}/media/own/alive.txt`, { headers: AUTH })).status).toBe(200);
    expect(open).toBe(0);
  });
});

describe('the reported crash, in a child process', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-own-'));
    await writeFile(path.join(dir, 'big.bin'), randomBytes(2 * 1024 * KiB));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fifty refused rct overrides of an oversized object: alive after store_idle_timeout, descriptors back', async () => {
    const child = await startChildGateway({
      auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
      cache: { max_memory: '1MiB', max_object_size: '512KiB' },
      limits: { store_idle_timeout: `${IDLE_MS}ms` },
      stores: { media: { type: 'fs', root: dir } },
    });
    try {
      const fds = async () => (await readdir(`/proc/${child.child.pid}/fd`)).length;
      expect(await request('GET', `${child.url}/media/big.bin`, AUTH)).toBe(200);
      await new Promise((r) => setTimeout(r, 200));
      const baseline = await fds();
      const sig = link({ p: 'big.bin', rct: 'not a type' });
      const statuses = await Promise.all(Array.from({ length: 50 }, () => request('GET', `${child.url}/media/big.bin?sig=${sig}`, {})));
      expect(new Set(statuses)).toEqual(new Set([400]));
      await new Promise((r) => setTimeout(r, IDLE_MS * 3));
      expect(child.child.exitCode).toBeNull();
      expect(await request('GET', `${child.url}/health`, {})).toBe(200);
      expect(await fds()).toBeLessThanOrEqual(baseline + 2);
      expect(child.stdout() + child.stderr()).not.toContain('uncaught');
    } finally {
      expect(await child.stop()).toBe(0);
    }
  });
});
