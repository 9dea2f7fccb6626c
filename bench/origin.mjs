/**
 * The bench origin, run as a child process: s3rver on a temp dir with the bucket `bench`, and in
 * front of it a tiny counting proxy that can add a delay before forwarding each request. Every
 * peer (gateway, nginx, Varnish) talks to the proxy, so the bench can count origin requests and
 * make the origin slow for the herd workload.
 *
 * Prints one JSON line when ready: {"s3rverPort":…, "port":…} (`port` is the proxy).
 * Exits on SIGTERM/SIGINT or when its stdin closes (the bench died), removing the temp dir.
 *
 * Control endpoints on the proxy (never forwarded; `__bench` is not a valid bucket name):
 *   GET  /__bench/stats            {"requests": n, "bytes": n, "byKey": {"GET /bench/key": n, …}}
 *   POST /__bench/reset            zero the counters
 *   POST /__bench/delay?ms=N       delay every forwarded request by N ms (0: none)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');

const HOST = '127.0.0.1';
const dir = mkdtempSync(path.join(process.env.BENCH_TMP ?? tmpdir(), 'origin-'));
const s3rver = new S3rver({ address: HOST, port: 0, silent: true, directory: dir, configureBuckets: [{ name: 'bench' }] });

let delayMs = 0;
let requests = 0;
/** Body bytes the origin sent back (GET answers), for "store bytes" per peer. */
let bytes = 0;
let byKey = new Map();
const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function control(req, res) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/__bench/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ requests, bytes, byKey: Object.fromEntries(byKey), delayMs }));
  } else if (url.pathname === '/__bench/reset' && req.method === 'POST') {
    requests = 0;
    bytes = 0;
    byKey = new Map();
    res.writeHead(204).end();
  } else if (url.pathname === '/__bench/delay' && req.method === 'POST') {
    delayMs = Math.max(0, Number(url.searchParams.get('ms')) || 0);
    res.writeHead(204).end();
  } else {
    res.writeHead(404).end();
  }
}

function startProxy(s3rverPort) {
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/__bench/')) return control(req, res);
    requests++;
    const id = `${req.method} ${req.url.split('?')[0]}`;
    byKey.set(id, (byKey.get(id) ?? 0) + 1);
    const forward = (attempt = 0) => {
      // Headers go through unchanged: the gateway's SigV4 signature covers Host.
      const up = http.request(
        { host: HOST, port: s3rverPort, method: req.method, path: req.url, headers: req.headers, agent: upstreamAgent },
        (upRes) => {
          res.writeHead(upRes.statusCode, upRes.rawHeaders);
          if (req.method === 'GET') upRes.on('data', (c) => (bytes += c.length));
          upRes.pipe(res);
        },
      );
      up.on('error', (err) => {
        // A reused keep-alive socket that s3rver closed meanwhile: retry a bodiless request once,
        // so the proxy never turns its own race into a 502 that a peer would be blamed for.
        const bodiless = req.method === 'GET' || req.method === 'HEAD';
        if (bodiless && attempt === 0 && !res.headersSent && up.reusedSocket && err.code === 'ECONNRESET') return forward(1);
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      res.on('close', () => {
        if (!res.writableFinished) up.destroy();
      });
      if (req.readableEnded) up.end();
      else req.pipe(up);
    };
    if (delayMs > 0) setTimeout(forward, delayMs);
    else forward();
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server));
  });
}

let proxy;
let stopping = false;
async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  try {
    proxy?.closeAllConnections();
    proxy?.close();
    const closed = s3rver.close();
    s3rver.httpServer?.closeAllConnections();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
  } catch {
    // exiting anyway
  }
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.stdin.on('end', () => shutdown(0));
process.stdin.on('error', () => shutdown(0));
process.stdin.resume();

try {
  const { port: s3rverPort } = await s3rver.run();
  // s3rver keeps idle sockets 5 s (Node's default); the proxy's pool must not outlive them.
  if (s3rver.httpServer) {
    s3rver.httpServer.keepAliveTimeout = 120_000;
    s3rver.httpServer.headersTimeout = 125_000;
  }
  proxy = await startProxy(s3rverPort);
  console.log(JSON.stringify({ s3rverPort, port: proxy.address().port, dir }));
} catch (err) {
  console.error(`origin: ${err.message}`);
  await shutdown(1);
}
