/**
 * The bench's node:http client, for the workloads wrk cannot time exactly. Run as a child pinned
 * to the load core: `node bench/client.mjs '<json spec>'`; prints one JSON line with the result.
 *
 * Modes:
 *   cold     every request a distinct path (paths[]), `concurrency` at a time: req/s, latency
 *   herd     open `concurrency` keep-alive sockets (with requests to `warmPath`), then send
 *            `concurrency` requests for `path` at once: per-request latency to the last byte
 *   latency  `n` sequential requests to `url`: median latency (the origin's own latency)
 *   put      one PUT of `size` bytes to `url`, streamed with backpressure: MB/s
 *   seek     `ranges` ([[start, end]…]) of `path` one after another: time to first byte and to
 *            the last byte of each (a viewer scrubbing a cold video)
 *   ranged   `concurrency` keep-alive clients asking ranges of `path` round-robin from `ranges`
 *            for `durationMs`: req/s and latency
 *   put-s3   the same bytes straight to the origin with the AWS SDK's multipart Upload, with
 *            the gateway's part size and queue (the reference for `put`): MB/s
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { RawConnection, requestBytes } from './lib/raw-http.mjs';

const spec = JSON.parse(process.argv[2]);
const CHUNK_BYTES = 1024 * 1024;

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function latencySummary(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1], min: s[0] };
}

/** GET a URL, drain the body; resolves with status, the cache header, bytes and ms to last byte. */
function get(agent, base, path, headers, cacheHeader) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request(new URL(path, base), { agent, headers }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () =>
        resolve({ status: res.statusCode, cache: cacheHeader ? res.headers[cacheHeader] : undefined, bytes, ms: performance.now() - t0 }),
      );
      res.on('error', (err) => resolve({ status: 0, error: err.message, bytes, ms: performance.now() - t0 }));
      res.on('aborted', () => resolve({ status: 0, error: 'aborted', bytes, ms: performance.now() - t0 }));
    });
    req.on('error', (err) => resolve({ status: 0, error: err.message, bytes: 0, ms: performance.now() - t0 }));
    req.end();
  });
}

function tally(results) {
  const statuses = {};
  const cache = {};
  for (const r of results) {
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    if (r.cache !== undefined) cache[r.cache] = (cache[r.cache] ?? 0) + 1;
  }
  return { statuses, cache };
}

/** 200 with the whole body (when the expected size is known). */
const isOk = (r, expectedBytes) => r.status === 200 && (expectedBytes === undefined || r.bytes === expectedBytes);

async function cold({ base, paths, headers = {}, concurrency = 64, cacheHeader, expectedBytes }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const results = new Array(paths.length);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < paths.length) {
        const i = next++;
        results[i] = await get(agent, base, paths[i], headers, cacheHeader);
      }
    }),
  );
  const elapsedMs = performance.now() - t0;
  agent.destroy();
  const ok = results.filter((r) => isOk(r, expectedBytes)).length;
  return { requests: results.length, ok, elapsedMs, rps: results.length / (elapsedMs / 1000), latencyMs: latencySummary(results.map((r) => r.ms)), ...tally(results) };
}

async function herd({ base, path, warmPath, headers = {}, concurrency = 100, cacheHeader, expectedBytes }) {
  // Raw sockets (lib/raw-http.mjs): node:http's per-response cost would dominate 100 responses.
  const u = new URL(base);
  const conns = await Promise.all(Array.from({ length: concurrency }, () => RawConnection.open(u.hostname, Number(u.port))));
  // One request on every socket first: the server has accepted them all and is warm.
  const warmReq = requestBytes(u.host, warmPath, headers);
  const warm = await Promise.all(conns.map((c) => c.request(warmReq)));
  const req = requestBytes(u.host, path, headers);
  const results = await Promise.all(conns.map((c) => c.request(req)));
  for (const c of conns) c.close();
  for (const r of results) r.cache = cacheHeader ? r.headers?.[cacheHeader] : undefined;
  return {
    requests: results.length,
    ok: results.filter((r) => isOk(r, expectedBytes)).length,
    warmOk: warm.filter((r) => r.status === 200).length,
    socketsOpened: conns.length,
    bytes: results.reduce((n, r) => n + r.bytes, 0),
    latencyMs: latencySummary(results.map((r) => r.ms)),
    errors: [...new Set(results.filter((r) => r.error).map((r) => r.error))].slice(0, 3),
    ...tally(results),
  };
}

async function latency({ url, n = 5, headers = {} }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const u = new URL(url);
  const ms = [];
  for (let i = 0; i < n; i++) ms.push((await get(agent, u.origin, u.pathname + u.search, headers)).ms);
  agent.destroy();
  return { latencyMs: latencySummary(ms) };
}

function put({ url, size, headers = {} }) {
  const chunk = randomBytes(CHUNK_BYTES);
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request(url, {
      method: 'PUT',
      headers: { ...headers, 'content-length': String(size), 'content-type': 'application/octet-stream' },
    });
    let sent = 0;
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      const elapsedMs = performance.now() - t0;
      resolve({ ...r, size, sent, elapsedMs, mbPerSec: size / 1e6 / (elapsedMs / 1000) });
    };
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => finish({ status: res.statusCode, body: body.slice(0, 500), etag: res.headers.etag }));
    });
    req.on('error', (err) => finish({ status: 0, error: err.message }));
    const write = () => {
      while (sent < size) {
        const n = Math.min(CHUNK_BYTES, size - sent);
        sent += n;
        if (!req.write(n === CHUNK_BYTES ? chunk : chunk.subarray(0, n))) {
          req.once('drain', write);
          return;
        }
      }
      req.end();
    };
    write();
  });
}

/** A Readable of `size` bytes made of one repeated random chunk. */
async function bodyStream(size) {
  const { Readable } = await import('node:stream');
  const chunk = randomBytes(CHUNK_BYTES);
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) return this.push(null);
      const n = Math.min(CHUNK_BYTES, size - sent);
      sent += n;
      this.push(n === CHUNK_BYTES ? chunk : chunk.subarray(0, n));
    },
  });
}

async function putS3({ endpoint, bucket, key, size, partBytes, queueSize }) {
  const { S3Client } = await import('@aws-sdk/client-s3');
  const { Upload } = await import('@aws-sdk/lib-storage');
  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const t0 = performance.now();
  try {
    const upload = new Upload({
      client: s3,
      params: { Bucket: bucket, Key: key, Body: await bodyStream(size), ContentType: 'application/octet-stream' },
      partSize: partBytes,
      queueSize,
      leavePartsOnError: false,
    });
    await upload.done();
    const elapsedMs = performance.now() - t0;
    return { status: 200, size, elapsedMs, mbPerSec: size / 1e6 / (elapsedMs / 1000) };
  } catch (err) {
    return { status: 0, error: err.message, size, elapsedMs: performance.now() - t0 };
  } finally {
    s3.destroy();
  }
}

/** One ranged GET: status, bytes, time to the first body byte and to the last. */
function getRange(agent, base, path, headers, [start, end]) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let ttfb;
    const req = http.request(new URL(path, base), { agent, headers: { ...headers, range: `bytes=${start}-${end}` } }, (res) => {
      let bytes = 0;
      res.on('data', (c) => {
        ttfb ??= performance.now() - t0;
        bytes += c.length;
      });
      res.on('end', () => resolve({ status: res.statusCode, bytes, ttfbMs: ttfb ?? performance.now() - t0, ms: performance.now() - t0, ok: res.statusCode === 206 && bytes === end - start + 1 }));
      res.on('error', (err) => resolve({ status: 0, error: err.message, bytes, ms: performance.now() - t0, ok: false }));
    });
    req.on('error', (err) => resolve({ status: 0, error: err.message, bytes: 0, ms: performance.now() - t0, ok: false }));
    req.end();
  });
}

async function seek({ base, path, headers = {}, ranges }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const results = [];
  for (const r of ranges) results.push(await getRange(agent, base, path, headers, r));
  agent.destroy();
  return {
    requests: results.length,
    ok: results.filter((r) => r.ok).length,
    ttfbMs: latencySummary(results.map((r) => r.ttfbMs)),
    latencyMs: latencySummary(results.map((r) => r.ms)),
    statuses: tally(results).statuses,
  };
}

async function ranged({ base, path, headers = {}, ranges, concurrency = 16, durationMs = 5000 }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const ms = [];
  let next = 0;
  let ok = 0;
  let bytes = 0;
  const until = performance.now() + durationMs;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const r = await getRange(agent, base, path, headers, ranges[next++ % ranges.length]);
        ms.push(r.ms);
        bytes += r.bytes;
        if (r.ok) ok++;
      }
    }),
  );
  const elapsedMs = performance.now() - t0;
  agent.destroy();
  return { requests: ms.length, ok, errors: ms.length - ok, elapsedMs, rps: ms.length / (elapsedMs / 1000), mbPerSec: bytes / 1e6 / (elapsedMs / 1000), latencyMs: latencySummary(ms) };
}

const modes = { cold, herd, latency, put, 'put-s3': putS3, seek, ranged };
const fn = modes[spec.mode];
if (!fn) {
  console.error(`client: unknown mode ${spec.mode}`);
  process.exit(2);
}
const result = await fn(spec);
const cpu = process.cpuUsage();
console.log(JSON.stringify({ ...result, cpuUs: cpu.user + cpu.system }));
process.exit(0);
