/**
 * Operating a gateway: /metrics and /stats count exactly what happened, /health and /ready say
 * what an orchestrator needs, SIGTERM drains in-flight downloads and exits 0, no log line holds
 * a signature or a token, and the server's own timeouts close slow or stalled connections.
 * Real gateways on real sockets, fs stores in temporary directories, child processes for signals.
 */
import type { GatewayStats } from '../../src/metrics/metrics.js';
import { createHash, createPrivateKey, randomBytes, sign as edSign } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getMetricsFromIterator, type PromData, type PromHistogramData, type PromMetrics } from 'prom2javascript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTRY_OVERHEAD_BYTES } from '../../src/cache/memory-tier.js';
import { cacheKey } from '../../src/core/object-service.js';
import { createFsStore } from '../../src/stores/fs.js';
import { AUTH, TEST_TOKEN, startChildGateway, startGateway, type ChildGateway, type TestGateway } from '../helpers/gateway.js';
import { eventually } from '../helpers/eventually.js';

const KiB = 1024;
const MiB = 2 ** 20;
/** The memory tier charges an entry its measured overhead (ENTRY_OVERHEAD_BYTES) plus its strings (key, ETag, type). */
const MAX_ENTRY_OVERHEAD_BYTES = ENTRY_OVERHEAD_BYTES + 400;

const SEED = Buffer.alloc(32, 11);
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const PRIVATE_KEY = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, SEED]), format: 'der', type: 'pkcs8' });
const PUBLIC_KEY = (PRIVATE_KEY.export({ format: 'jwk' }) as { x: string }).x;

/** An independent link signer (node:crypto), cachegate's format: `<payload>.<signature>`. */
function signLink(claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, m: 'GET', exp: Math.floor(Date.now() / 1000) + 600, ...claims }));
  return `${payload.toString('base64url')}.${edSign(null, payload, PRIVATE_KEY).toString('base64url')}`;
}

const tempDirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A store root below a regular file: every access fails (ENOTDIR), which is an outage, not "absent". */
async function brokenRoot(dir: string): Promise<string> {
  const file = path.join(dir, 'a-regular-file');
  await writeFile(file, 'not a directory');
  return path.join(file, 'root');
}

/** Write `size` bytes to `file` in 1 MiB pieces (each piece distinct); returns the sha256. */
async function writeBigFile(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  const base = randomBytes(MiB);
  for (let done = 0, i = 0; done < size; done += MiB, i++) {
    const chunk = Buffer.from(base.subarray(0, Math.min(MiB, size - done)));
    chunk.writeUInt32BE(i, 0);
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return hash.digest('hex');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolve with `value` after `ms`, or with the promise's value if it settles first. */
function within<T, U>(promise: Promise<T>, ms: number, value: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<U>((r) => (timer = setTimeout(() => r(value), ms)))]).finally(() => clearTimeout(timer));
}

/** Whether a new TCP connection to `url` is refused. */
function connectRefused(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/**
 * Whether a connection to `url` is refused by the gateway whose `X-CG-Node` is `nodeId`. A
 * connection that is accepted is asked for /health: answered by that gateway, it was not refused;
 * answered by anything else (the freed port taken by another test's server on a busy machine), or
 * reset before that gateway answered, it was. The answer is given in the result for the failure
 * message.
 */
function refusedBy(url: string, nodeId: string): Promise<{ refused: boolean; answer: string }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    let answer = '';
    const done = () => {
      s.destroy();
      resolve({ refused: !answer.toLowerCase().includes(`x-cg-node: ${nodeId}`), answer: answer.slice(0, 300) });
    };
    s.once('connect', () => {
      s.write('GET /health HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n');
      setTimeout(done, 3_000).unref();
    });
    s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    s.once('close', done);
    // Refused outright (ECONNREFUSED), or reset before the gateway answered: the kernel resets a
    // connection still in the accept backlog when the listener closes, which is what a probe that
    // connects in the tick between the 'shutting down' line and the close() sees. Either way the
    // draining gateway did not serve it.
    s.once('error', (err: NodeJS.ErrnoException) => {
      const served = answer.toLowerCase().includes(`x-cg-node: ${nodeId}`);
      resolve({ refused: !served, answer: `${err.code ?? err.message}${answer ? ` after ${answer.slice(0, 200)}` : ''}` });
    });
  });
}

/** A raw connection: everything the server sent, and a promise for when the server closed it. */
interface RawConn {
  socket: net.Socket;
  text(): string;
  closed: Promise<void>;
}
async function rawConnect(url: string): Promise<RawConn> {
  const u = new URL(url);
  const socket = net.connect(Number(u.port), u.hostname);
  await once(socket, 'connect');
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, text: () => text, closed };
}

/** Split one raw HTTP/1.1 response (Content-Length framed) into status, headers and body. */
function parseRawResponse(text: string): { status: number; headers: Record<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  expect(end, `a complete response head in ${JSON.stringify(text.slice(0, 200))}`).toBeGreaterThan(0);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const rest = text.slice(end + 4);
  const len = headers['content-length'] === undefined ? rest.length : Number(headers['content-length']);
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1]), headers, body: rest.slice(0, len) };
}

/** Parse /metrics with a real Prometheus text parser (it also checks count = +Inf bucket per histogram). */
async function parseMetrics(text: string): Promise<PromMetrics> {
  const lines = text.split('\n');
  // prom-client writes NaN as `Nan` (event-loop lag gauges before their first sample); Prometheus
  // reads that, this parser does not. No cachegate series may ever be NaN.
  const nan = lines.filter((line) => / Nan$/.test(line));
  expect(nan.filter((line) => line.startsWith('cachegate_'))).toEqual([]);
  return getMetricsFromIterator(lines.filter((line) => !nan.includes(line))[Symbol.iterator]());
}

function labelKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

/** Every sample of a counter or gauge, as `label=value,…` → value. */
function samples(metrics: PromMetrics, name: string, type: 'counter' | 'gauge'): Record<string, number> {
  const f = metrics[name];
  expect(f, `${name} is exposed`).toBeDefined();
  expect(f?.type).toBe(type);
  const out: Record<string, number> = {};
  for (const d of (f?.data ?? []) as PromData[]) out[labelKey(d.labels)] = d.value;
  return out;
}

/** Every histogram series' count, as `label=value,…` → count. */
function histogramCounts(metrics: PromMetrics, name: string): Record<string, number> {
  const f = metrics[name];
  expect(f, `${name} is exposed`).toBeDefined();
  expect(f?.type).toBe('histogram');
  const out: Record<string, number> = {};
  for (const d of (f?.data ?? []) as PromHistogramData[]) out[labelKey(d.labels)] = d.count;
  return out;
}

const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

/** cachegate's /stats JSON. */
type StatsJson = GatewayStats;

async function getStats(url: string): Promise<StatsJson> {
  const res = await fetch(`${url}/stats`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return (await res.json()) as StatsJson;
}

describe('/metrics counts exactly what happened', () => {
  // A distinctive key fragment: it must never show up in the metrics text.
  const CANARY = 'qx7zv-canary';
  const keys = { a: `${CANARY}/a.txt`, b: `${CANARY}/b.txt`, c: `${CANARY}/c.txt`, d: `${CANARY}/d.txt`, put: `${CANARY}/put.txt` };
  const bodies = { a: randomBytes(1000), b: randomBytes(2000), c: randomBytes(3000), d: randomBytes(4000), put: randomBytes(500) };
  let gw: TestGateway;

  beforeAll(async () => {
    const dir = await tempDir('cg-ops-metrics-');
    const root = path.join(dir, 'media');
    await mkdir(path.join(root, CANARY), { recursive: true });
    for (const k of ['a', 'b', 'c', 'd'] as const) await writeFile(path.join(root, keys[k]), bodies[k]);
    gw = await startGateway({
      stores: { media: { type: 'fs', root }, broken: { type: 'fs', root: await brokenRoot(dir) } },
    });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('parses with a Prometheus text parser and matches a known sequence of requests, label by label', async () => {
    const get = (key: string, headers: Record<string, string> = AUTH, bucket = 'media') =>
      fetch(`${gw.url}/${bucket}/${key}`, { headers }).then(async (r) => ({ status: r.status, cg: r.headers.get('x-cg-status'), body: Buffer.from(await r.arrayBuffer()) }));
    const head = (key: string) => fetch(`${gw.url}/media/${key}`, { method: 'HEAD', headers: AUTH }).then((r) => ({ status: r.status, cg: r.headers.get('x-cg-status') }));

    // 3 GET misses, then 5 GET hits.
    for (const k of ['a', 'b', 'c'] as const) {
      const r = await get(keys[k]);
      expect(r).toMatchObject({ status: 200, cg: 'hit=0' });
      expect(r.body.equals(bodies[k])).toBe(true);
    }
    for (const k of ['a', 'a', 'b', 'b', 'c'] as const) expect(await get(keys[k])).toMatchObject({ status: 200, cg: 'hit=1' });
    // 2 HEAD: one answered from the cache, one from the store (a HEAD never caches a body).
    expect(await head(keys.a)).toEqual({ status: 200, cg: 'hit=1' });
    expect(await head(keys.d)).toEqual({ status: 200, cg: 'hit=0' });
    // 2 without credentials, 1 with a wrong bearer token: 401, and never a store call.
    expect((await get(keys.a, {})).status).toBe(401);
    expect((await get(keys.b, {})).status).toBe(401);
    expect((await get(keys.a, { authorization: 'Bearer not-the-token' })).status).toBe(401);
    // 1 missing object, 1 failing store, 1 PUT.
    expect((await get(`${CANARY}/missing.txt`)).status).toBe(404);
    expect((await get(`${CANARY}/x.txt`, AUTH, 'broken')).status).toBe(502);
    const put = await fetch(`${gw.url}/media/${keys.put}`, { method: 'PUT', headers: { ...AUTH, 'content-type': 'text/plain' }, body: new Uint8Array(bodies.put) });
    expect(put.status).toBe(200);
    await put.arrayBuffer();

    // A request is recorded when its response has closed: wait until all 16 are in.
    const TOTAL = 16;
    expect(await eventually(() => gw.gateway.metrics.stats().requests_total === TOTAL)).toBe(true);

    const res = await fetch(`${gw.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).not.toContain(CANARY);
    expect(text).not.toContain('qx7zv');
    const p = await parseMetrics(text);

    // The scrape itself is recorded once its response closes: after its own text was made, but
    // account for it either way.
    const requests = samples(p, 'cachegate_requests_total', 'counter');
    const scrapeCounted = (requests['method=GET,status=200'] ?? 0) - 8;
    expect([0, 1]).toContain(scrapeCounted);
    expect.soft(requests).toEqual({
      'method=GET,status=200': 8 + scrapeCounted,
      'method=HEAD,status=200': 2,
      'method=GET,status=401': 3,
      'method=GET,status=404': 1,
      'method=GET,status=502': 1,
      'method=PUT,status=200': 1,
    });
    expect.soft(samples(p, 'cachegate_auth_fail_total', 'counter'), 'auth failures').toEqual({ 'method=GET': 3 });
    expect.soft(samples(p, 'cachegate_cache_hit_total', 'counter'), 'cache hits').toEqual({ 'method=GET': 5, 'method=HEAD': 1 });
    expect.soft(samples(p, 'cachegate_cache_miss_total', 'counter'), 'cache misses').toEqual({ 'method=GET': 3, 'method=HEAD': 1 });
    // Store calls: 3 GET fills, 1 HEAD, 1 PUT succeed; a GET of a missing key and a GET on the
    // broken store fail. Readiness probes and the PUT's existence check are not client traffic.
    expect.soft(samples(p, 'cachegate_upstream_ok_total', 'counter'), 'upstream ok').toEqual({ 'method=GET': 3, 'method=HEAD': 1, 'method=PUT': 1 });
    expect.soft(samples(p, 'cachegate_upstream_err_total', 'counter'), 'upstream errors').toEqual({
      'error_kind=not_found,method=GET': 1,
      'error_kind=other,method=GET': 1,
    });
    expect.soft(histogramCounts(p, 'cachegate_upstream_latency_ms'), 'upstream latency counts').toEqual({ 'method=GET': 5, 'method=HEAD': 1, 'method=PUT': 1 });

    const durations = histogramCounts(p, 'cachegate_http_request_duration_seconds');
    expect.soft(sum(Object.values(durations)), 'every request has a duration').toBe(TOTAL + scrapeCounted);
    expect.soft(durations, 'durations by method, status and cache result').toEqual({
      'cache=miss,method=GET,status=200': 3,
      'cache=hit,method=GET,status=200': 5,
      ...(scrapeCounted ? { 'cache=none,method=GET,status=200': 1 } : {}),
      'cache=hit,method=HEAD,status=200': 1,
      'cache=miss,method=HEAD,status=200': 1,
      'cache=none,method=GET,status=401': 3,
      'cache=none,method=GET,status=404': 1,
      'cache=none,method=GET,status=502': 1,
      'cache=none,method=PUT,status=200': 1,
    });

    // The memory tier holds a, b, c (read through) and the PUT body (write-through).
    const memory = gw.gateway.memory.stats();
    expect(memory.entries).toBe(4);
    expect(samples(p, 'cachegate_cache_entries', 'gauge')).toEqual({ 'tier=memory': 4 });
    expect(samples(p, 'cachegate_cache_bytes', 'gauge')).toEqual({ 'tier=memory': memory.bytes });
    expect(memory.bytes).toBe(sum(gw.gateway.memory.sizes()));
    const cachedBodies = bodies.a.length + bodies.b.length + bodies.c.length + bodies.put.length;
    expect(memory.bytes).toBeGreaterThanOrEqual(cachedBodies);
    expect(memory.bytes).toBeLessThanOrEqual(cachedBodies + 4 * MAX_ENTRY_OVERHEAD_BYTES);

    // The next scrape has seen the first one: GET 200 went up by exactly one, nothing else moved.
    expect(await eventually(() => gw.gateway.metrics.stats().requests_total === TOTAL + 1)).toBe(true);
    const again = samples(await parseMetrics(await (await fetch(`${gw.url}/metrics`)).text()), 'cachegate_requests_total', 'counter');
    expect(again).toEqual({ ...requests, 'method=GET,status=200': 9 + scrapeCounted });
  });
});

describe('/stats', () => {
  const MAX_MEMORY = MiB;
  // Eight distinct objects of 150–290 KiB: together about 1.7 MiB, so they cannot all stay in 1 MiB.
  const objects = Array.from({ length: 8 }, (_, i) => ({ key: `stats/o${i}.bin`, body: randomBytes((150 + 20 * i) * KiB) }));
  let gw: TestGateway;

  beforeAll(async () => {
    const root = path.join(await tempDir('cg-ops-stats-'), 'media');
    await mkdir(path.join(root, 'stats'), { recursive: true });
    for (const o of objects) await writeFile(path.join(root, o.key), o.body);
    gw = await startGateway({ cache: { max_memory: MAX_MEMORY }, stores: { media: { type: 'fs', root } } });
  });
  afterAll(async () => {
    await gw?.close();
  });

  const fetchObject = async (key: string) => {
    const res = await fetch(`${gw.url}/media/${key}`, { headers: AUTH });
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  };
  /** The bodies the memory tier holds now, by asking it (not the gateway's counters). */
  const heldBodies = () => objects.filter((o) => gw.gateway.memory.has(cacheKey('media', o.key)));

  /** /stats.cache agrees with the tier, and its bytes are the held bodies plus bounded bookkeeping. */
  async function expectTrueCacheSize(): Promise<StatsJson> {
    const stats = await getStats(gw.url);
    const tier = gw.gateway.memory.stats();
    const held = heldBodies();
    expect(stats.cache).toEqual({ entries: tier.entries, bytes: tier.bytes });
    expect(stats.cache.bytes).toBe(sum(gw.gateway.memory.sizes()));
    expect(stats.cache.entries).toBe(held.length);
    const bodyBytes = sum(held.map((o) => o.body.length));
    expect(stats.cache.bytes).toBeGreaterThanOrEqual(bodyBytes);
    expect(stats.cache.bytes).toBeLessThanOrEqual(bodyBytes + held.length * MAX_ENTRY_OVERHEAD_BYTES);
    expect(stats.cache.bytes).toBeLessThanOrEqual(MAX_MEMORY);
    return stats;
  }

  it("has cachegate's fields, and cache entries/bytes are the memory tier's true current size", async () => {
    const empty = await getStats(gw.url);
    for (const field of ['requests_total', 'auth_fail_total', 'cache_hit_total', 'cache_miss_total', 'upstream_ok_total', 'upstream_err_total'] as const) {
      expect(typeof empty[field], field).toBe('number');
    }
    expect(empty.cache).toEqual({ entries: 0, bytes: 0 });

    // Two objects: both held.
    for (const o of objects.slice(0, 2)) expect((await fetchObject(o.key)).equals(o.body)).toBe(true);
    await fetchObject(objects[0]!.key); // a hit adds nothing
    const two = await expectTrueCacheSize();
    expect(two.cache.entries).toBe(2);

    // All eight: the first ones are evicted, and the numbers are current values, not running sums.
    for (const o of objects.slice(2)) expect((await fetchObject(o.key)).equals(o.body)).toBe(true);
    const all = await expectTrueCacheSize();
    expect(all.cache.entries).toBeGreaterThan(0);
    expect(all.cache.entries).toBeLessThan(objects.length);
    expect(all.cache.bytes).toBeLessThan(sum(objects.map((o) => o.body.length)));
    expect(gw.gateway.memory.has(cacheKey('media', objects[0]!.key))).toBe(false);
    expect(gw.gateway.memory.has(cacheKey('media', objects[7]!.key))).toBe(true);

    // The request counters do run on: 1 + 3 + 6 object reads and one /stats in between.
    expect(await eventually(async () => (await getStats(gw.url)).requests_total >= 11)).toBe(true);
    const last = await getStats(gw.url);
    expect(last.auth_fail_total).toBe(0);
    expect(last.upstream_err_total).toBe(0);
    expect(last.upstream_ok_total).toBe(8);
  });
});

describe('/health and /ready', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('cg-ops-ready-');
  });

  const ready = async (url: string) => {
    const res = await fetch(`${url}/ready`);
    return { status: res.status, body: (await res.json()) as { ready: boolean; stores: Record<string, boolean> }, cacheControl: res.headers.get('cache-control') };
  };

  it("/health answers 200 'OK'; /ready turns 200 once every store answered its probe", async () => {
    const gw = await startGateway({ stores: { media: { type: 'fs', root: path.join(dir, 'ok') } } });
    try {
      const health = await fetch(`${gw.url}/health`);
      expect(health.status).toBe(200);
      expect(await health.text()).toBe('OK');
      expect(await eventually(async () => (await ready(gw.url)).status === 200)).toBe(true);
      expect(await ready(gw.url)).toEqual({ status: 200, body: { ready: true, stores: { media: true } }, cacheControl: 'no-store' });
    } finally {
      await gw.close();
    }
  });

  it('/ready is 503 and names the store while a store is broken', async () => {
    const gw = await startGateway({
      stores: { media: { type: 'fs', root: path.join(dir, 'ok2') }, broken: { type: 'fs', root: await brokenRoot(dir) } },
    });
    try {
      // Wait for the first probe round (the healthy store turns true), then the broken one is false.
      expect(await eventually(async () => (await ready(gw.url)).body.stores.media === true)).toBe(true);
      const r = await ready(gw.url);
      expect(r.status).toBe(503);
      expect(r.body).toEqual({ ready: false, stores: { media: true, broken: false } });
      // Liveness does not depend on the stores.
      expect((await fetch(`${gw.url}/health`)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  it('/ready is 503 during shutdown, also on a connection opened before it, while a slow download finishes', async () => {
    const root = path.join(dir, 'drain');
    await mkdir(root, { recursive: true });
    const sha = await writeBigFile(path.join(root, 'big.bin'), 48 * MiB);
    const gw = await startGateway({ cache: { max_object_size: '1MiB' }, stores: { media: { type: 'fs', root } } });
    try {
      expect(await eventually(async () => (await ready(gw.url)).status === 200)).toBe(true);

      // A download that reads a little, then stops reading until told to go on.
      let release!: () => void;
      const resumed = new Promise<void>((r) => (release = r));
      let firstBytes!: () => void;
      const started = new Promise<void>((r) => (firstBytes = r));
      const download = new Promise<{ status: number; bytes: number; sha: string }>((resolve, reject) => {
        http
          .get(`${gw.url}/media/big.bin`, { headers: AUTH, agent: false }, (res) => {
            const hash = createHash('sha256');
            let bytes = 0;
            let paused = false;
            res.on('data', (c: Buffer) => {
              bytes += c.length;
              hash.update(c);
              if (!paused && bytes >= 2 * MiB) {
                paused = true;
                res.pause();
                firstBytes();
                void resumed.then(() => res.resume());
              }
            });
            res.on('end', () => resolve({ status: res.statusCode!, bytes, sha: hash.digest('hex') }));
            res.on('error', reject);
          })
          .on('error', reject);
      });
      await started;

      // A connection that has begun a /ready request is not idle: shutdown lets it finish.
      const conn = await rawConnect(gw.url);
      conn.socket.write('GET /ready HTTP/1.1\r\nHost: gateway\r\n');
      await sleep(100);

      const shutdown = gw.gateway.shutdown();
      expect(gw.gateway.readiness.ready().ready).toBe(false);
      expect(await connectRefused(gw.url)).toBe(true);

      conn.socket.write('\r\n');
      await eventually(() => conn.text().includes('\r\n\r\n') && conn.text().includes('}'));
      const r = parseRawResponse(conn.text());
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body)).toEqual({ ready: false, stores: { media: true } });

      release();
      const got = await download;
      expect(got).toEqual({ status: 200, bytes: 48 * MiB, sha });
      await shutdown;
      await conn.closed;
    } finally {
      await gw.close();
    }
  });
});

describe('graceful shutdown of a gateway process', () => {
  const BIG_BYTES = 200 * MiB;
  let root: string;
  let bigSha: string;

  beforeAll(async () => {
    root = path.join(await tempDir('cg-ops-shutdown-'), 'root');
    await mkdir(root, { recursive: true });
    bigSha = await writeBigFile(path.join(root, 'big.bin'), BIG_BYTES);
  });

  it('SIGTERM: an in-flight slow download completes byte-exact, idle keep-alive sockets close, new connections are refused, exit 0', async () => {
    // A long keep-alive timeout: the idle socket must be closed by the shutdown, not by the 5 s
    // default firing first on a loaded machine (then the listener is still open, and the check
    // that new connections are refused would race the signal).
    const nodeId = `sigterm-${process.pid}-${Date.now()}`;
    const gw: ChildGateway = await startChildGateway({
      cache: { max_object_size: '1MiB' },
      server: { keep_alive_timeout: '120s', node_id: nodeId, node_header: true },
      stores: { local: { type: 'fs', root } },
    });
    const events: string[] = [];
    gw.child.once('exit', () => events.push('exit'));

    // An idle keep-alive connection, parked in an agent's pool.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let idleAnswered!: () => void;
    const answered = new Promise<void>((r) => (idleAnswered = r));
    const idleClosed = new Promise<void>((resolve, reject) => {
      const req = http.get(`${gw.url}/health`, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          events.push('idle');
          idleAnswered();
        });
      });
      req.on('error', reject);
      req.once('socket', (socket) =>
        socket.once('close', () => {
          events.push('idle-closed');
          resolve();
        }),
      );
    });
    await answered;

    let exitCode: Promise<number | null> | undefined;
    const got = await new Promise<{ status: number; bytes: number; sha: string }>((resolve, reject) => {
      http
        .get(`${gw.url}/local/big.bin`, { headers: AUTH, agent: false }, (res) => {
          const hash = createHash('sha256');
          let bytes = 0;
          let paused = false;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            hash.update(c);
            if (paused || bytes < 2 * MiB) return;
            paused = true;
            res.pause();
            // The download is in flight (and stalled by us): SIGTERM now, then read on after 1 s.
            exitCode = gw.stop('SIGTERM');
            const resumeAt = Date.now() + 1000;
            void (async () => {
              await within(idleClosed, 30_000, undefined);
              events.push(`alive-after-idle-close:${gw.child.exitCode === null}`);
              // The listener closes in the same tick as the 'shutting down' line is written: once
              // that line is here, a new connection must be refused (asked before it, the check
              // would race the child handling the signal on a loaded machine).
              await eventually(() => gw.stdout().includes('shutting down'), 30_000);
              const probe = await refusedBy(gw.url, nodeId);
              events.push(probe.refused ? 'refused:true' : `refused:false (answered: ${probe.answer})`);
              await sleep(Math.max(0, resumeAt - Date.now()));
              res.resume();
            })().catch(reject);
          });
          res.on('end', () => resolve({ status: res.statusCode!, bytes, sha: hash.digest('hex') }));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    agent.destroy();

    expect(got).toEqual({ status: 200, bytes: BIG_BYTES, sha: bigSha });
    expect(exitCode).toBeDefined();
    expect(await exitCode).toBe(0);
    expect(events).toEqual(['idle', 'idle-closed', 'alive-after-idle-close:true', 'refused:true', 'exit']);
    expect(gw.stdout()).toContain('shutting down');
  });

  it('with shutdown_timeout 1s, a client that stopped reading does not keep the process alive: exit 0', async () => {
    const gw = await startChildGateway({
      cache: { max_object_size: '1MiB' },
      server: { shutdown_timeout: '1s' },
      stores: { local: { type: 'fs', root } },
    });
    const conn = await rawConnect(gw.url);
    conn.socket.pause(); // reads nothing, ever
    conn.socket.write(`GET /local/big.bin HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`);
    // Let the server start the response and fill the socket buffers.
    await sleep(300);
    expect(await gw.stop('SIGTERM')).toBe(0);
    // The server cut the connection (a paused socket still sees the close once the peer resets it).
    conn.socket.resume();
    await conn.closed;
    expect(gw.stdout()).toContain('shutdown timeout');
  });
});

describe('logs never hold a signature or a token', () => {
  it('access lines for every request, with none of the sig values, their halves, or bearer tokens', async () => {
    const dir = await tempDir('cg-ops-logs-');
    const root = path.join(dir, 'media');
    await mkdir(root, { recursive: true });
    const body = randomBytes(5000);
    await writeFile(path.join(root, 'clip.txt'), body);
    const BAD_TOKEN = 'wrong-bearer-token-5d1c0ffee';

    const gw = await startChildGateway(
      {
        auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
        stores: { media: { type: 'fs', root }, broken: { type: 'fs', root: await brokenRoot(dir) } },
      },
      { LOG_LEVEL: 'debug' },
    );
    const sigs = {
      valid: signLink({ b: 'media', p: 'clip.txt' }),
      expired: signLink({ b: 'media', p: 'clip.txt', exp: Math.floor(Date.now() / 1000) - 3600 }),
      otherPath: signLink({ b: 'media', p: 'other.txt' }),
      broken: signLink({ b: 'broken', p: 'clip.txt' }),
    };
    interface Case {
      id: string;
      path: string;
      headers: Record<string, string>;
      status: number;
      bucket: string;
      cache: 'hit' | 'miss' | 'none';
      /** The body length an access line must report, for 200s. */
      bytes?: number;
    }
    const cases: Case[] = [
      { id: 'req-valid-link', path: `/media/clip.txt?sig=${sigs.valid}`, headers: {}, status: 200, bucket: 'media', cache: 'miss', bytes: body.length },
      { id: 'req-expired-link', path: `/media/clip.txt?sig=${sigs.expired}`, headers: {}, status: 401, bucket: 'media', cache: 'none' },
      { id: 'req-other-path', path: `/media/clip.txt?sig=${sigs.otherPath}`, headers: {}, status: 403, bucket: 'media', cache: 'none' },
      { id: 'req-bad-bearer', path: '/media/clip.txt', headers: { authorization: `Bearer ${BAD_TOKEN}` }, status: 401, bucket: 'media', cache: 'none' },
      { id: 'req-good-bearer', path: '/media/clip.txt', headers: AUTH, status: 200, bucket: 'media', cache: 'hit', bytes: body.length },
      { id: 'req-store-502', path: '/broken/clip.txt', headers: AUTH, status: 502, bucket: 'broken', cache: 'none' },
      { id: 'req-link-502', path: `/broken/clip.txt?sig=${sigs.broken}`, headers: {}, status: 502, bucket: 'broken', cache: 'none' },
    ];
    let code: number | null;
    try {
      for (const c of cases) {
        const res = await fetch(`${gw.url}${c.path}`, { headers: { ...c.headers, 'x-request-id': c.id } });
        await res.arrayBuffer();
        expect(res.status, c.id).toBe(c.status);
        expect(res.headers.get('x-request-id')).toBe(c.id);
      }
      // Access lines are written when each response has closed.
      await eventually(() => cases.every((c) => gw.stdout().includes(`"req_id":"${c.id}"`)));
    } finally {
      code = await gw.stop('SIGTERM');
    }
    expect(code).toBe(0);

    const output = gw.stdout() + gw.stderr();
    for (const [name, sig] of Object.entries(sigs)) {
      const [payload, signature] = sig.split('.') as [string, string];
      expect(output.includes(sig), `sig ${name} in the log`).toBe(false);
      expect(output.includes(payload), `payload of sig ${name} in the log`).toBe(false);
      expect(output.includes(signature), `signature of sig ${name} in the log`).toBe(false);
    }
    expect(output.includes(TEST_TOKEN), 'the bearer token in the log').toBe(false);
    expect(output.includes(BAD_TOKEN), 'a wrong bearer token in the log').toBe(false);

    const lines = gw
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const c of cases) {
      const access = lines.filter((l) => l.req_id === c.id && l.msg === 'request');
      expect(access, `one access line for ${c.id}`).toHaveLength(1);
      const line = access[0]!;
      expect.soft(line, c.id).toMatchObject({ method: 'GET', bucket: c.bucket, key: 'clip.txt', status: c.status, cache: c.cache, req_id: c.id });
      expect(typeof line.duration_ms, `${c.id} duration_ms`).toBe('number');
      expect(typeof line.bytes, `${c.id} bytes`).toBe('number');
      if (c.bytes !== undefined) expect.soft(line.bytes, `${c.id} bytes`).toBe(c.bytes);
    }
  });
});

describe('server timeouts', () => {
  let gw: TestGateway;
  let idleGw: TestGateway;
  let idleRoot: string;

  beforeAll(async () => {
    const dir = await tempDir('cg-ops-timeouts-');
    idleRoot = path.join(dir, 'idle');
    gw = await startGateway({
      server: { headers_timeout: '1s', keep_alive_timeout: '500ms', max_header_size: '4KiB' },
      stores: { media: { type: 'fs', root: path.join(dir, 'media') } },
    });
    idleGw = await startGateway({ server: { idle_timeout: '1s' }, stores: { media: { type: 'fs', root: idleRoot } } });
  });
  afterAll(async () => {
    await gw?.close();
    await idleGw?.close();
  });

  it('headers_timeout: a client trickling its headers is cut off (408 or a plain close)', async () => {
    const conn = await rawConnect(gw.url);
    conn.socket.write('GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: ');
    // One byte every 250 ms: the connection is never idle, but the headers never end.
    const trickle = setInterval(() => {
      if (!conn.socket.destroyed) conn.socket.write('a');
    }, 250);
    try {
      // 1 s configured; allow ample slack, but not Node's 30 s default check interval.
      expect(await within(conn.closed.then(() => 'closed'), 8_000, 'still open'), 'the server closed the connection').toBe('closed');
    } finally {
      clearInterval(trickle);
      conn.socket.destroy();
    }
    const text = conn.text();
    if (text !== '') expect(text.slice(0, 12)).toBe('HTTP/1.1 408');
  });

  it('idle_timeout: a PUT that stalls half way is cut off, and no object is created', async () => {
    const conn = await rawConnect(idleGw.url);
    const announced = 2 * MiB;
    conn.socket.write(
      `PUT /media/stalled.bin HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${announced}\r\n\r\n`,
    );
    conn.socket.write(randomBytes(announced / 2));
    expect(await within(conn.closed.then(() => 'closed'), 10_000, 'still open')).toBe('closed');
    expect(conn.text()).not.toMatch(/^HTTP\/1\.1 2/);

    const store = createFsStore('media', { root: idleRoot });
    // The aborted upload is cleaned up asynchronously: no object, and no leftover temporary file.
    expect(await eventually(async () => (await readdir(path.join(idleRoot, '.cachegate-tmp')).catch(() => [])).length === 0)).toBe(true);
    expect(await store.head('stalled.bin')).toBeUndefined();
    const res = await fetch(`${idleGw.url}/media/stalled.bin`, { headers: AUTH });
    expect(res.status).toBe(404);
    await res.arrayBuffer();
  });

  it('idle_timeout: a GET whose client stops reading is cut off; a slow reader that keeps reading is not', async () => {
    await mkdir(idleRoot, { recursive: true });
    await writeFile(path.join(idleRoot, 'big.bin'), randomBytes(32 * MiB));
    // Reads the head, then nothing: once the socket buffers are full no byte moves either way.
    const stalled = await rawConnect(idleGw.url);
    stalled.socket.write(`GET /media/big.bin HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`);
    await eventually(() => stalled.text().includes('\r\n\r\n'));
    stalled.socket.pause();
    // Reads a chunk, waits 300 ms (under the 1 s timeout), reads the next: slow, never idle for 1 s.
    let slowBytes = 0;
    let slowEnded = false;
    const slowReq = http.get(`${idleGw.url}/media/big.bin`, { headers: AUTH, agent: false }, (res) => {
      res.on('data', (c: Buffer) => {
        slowBytes += c.length;
        res.pause();
        setTimeout(() => res.resume(), 300);
      });
      res.on('close', () => (slowEnded = true));
    });
    slowReq.on('error', () => (slowEnded = true));
    try {
      // A paused socket does not see the server's close: read on after the timeout has passed.
      // Cut, the connection ends short of the body; not cut, all 32 MiB arrive and it stays open.
      await sleep(3_000);
      stalled.socket.resume();
      expect(await within(stalled.closed.then(() => 'closed'), 10_000, 'still open')).toBe('closed');
      expect(stalled.text().length).toBeLessThan(32 * MiB);
      expect(slowEnded, 'the slow reader kept its connection').toBe(false);
      expect(slowBytes).toBeGreaterThan(0);
      expect(slowBytes).toBeLessThan(32 * MiB);
    } finally {
      stalled.socket.destroy();
      slowReq.destroy();
    }
  });

  it('max_header_size: an 8 KiB header is answered 431 with a one-line JSON body', async () => {
    const conn = await rawConnect(gw.url);
    conn.socket.write(`GET /health HTTP/1.1\r\nHost: gateway\r\nX-Big: ${'b'.repeat(8 * KiB)}\r\n\r\n`);
    await within(conn.closed, 5_000, undefined);
    conn.socket.destroy();
    const r = parseRawResponse(conn.text());
    expect(r.status).toBe(431);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.body).not.toContain('\n');
    expect(JSON.parse(r.body)).toMatchObject({ error: expect.any(String), code: expect.stringMatching(/^GW_ERR_/) });
  });

  it('keep_alive_timeout: an idle keep-alive connection is closed by the server', async () => {
    const conn = await rawConnect(gw.url);
    conn.socket.write('GET /health HTTP/1.1\r\nHost: gateway\r\nConnection: keep-alive\r\n\r\n');
    expect(await eventually(() => conn.text().endsWith('OK'))).toBe(true);
    const r = parseRawResponse(conn.text());
    expect(r.status).toBe(200);
    expect(r.headers.connection).toBe('keep-alive');
    // 500 ms configured; the server, not this client, ends the connection.
    expect(await within(conn.closed.then(() => 'closed'), 5_000, 'still open')).toBe('closed');
  });
});
