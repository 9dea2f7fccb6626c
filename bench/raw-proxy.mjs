/**
 * The floor for a miss: a bare node:http server that answers `GET /bench/<key>` by asking the
 * origin for it through undici (a keep-alive pool, as the gateway's lean read path uses) and
 * sending the body on with the headers a gateway miss carries. No routing framework, no auth,
 * no request signing, no cache lookup or write, no access log or metrics: what any Node server
 * pays to turn one request into one origin request and back. The cold-miss table compares the
 * gateway with it, to tell Node's own cost from the gateway's.
 *
 * Usage: node bench/raw-proxy.mjs '<json: {"origin":"http://127.0.0.1:port"}>'
 * Prints {"port":…} when listening. Exits on SIGTERM/SIGINT or when stdin closes.
 */
import http from 'node:http';
import { serveChild } from './lib/serve-child.mjs';
import { Pool } from 'undici';

const { origin } = JSON.parse(process.argv[2] ?? '{}');
const pool = new Pool(origin, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 });
const host = new URL(origin).host;

const server = http.createServer(async (req, res) => {
  try {
    const up = await pool.request({ method: 'GET', path: req.url.split('?')[0], headers: { host } });
    const body = Buffer.from(await up.body.arrayBuffer());
    if (up.statusCode !== 200) {
      res.writeHead(up.statusCode === 404 ? 404 : 502, { 'content-type': 'application/json' });
      res.end(`{"error":"origin answered ${up.statusCode}"}`);
      return;
    }
    res.writeHead(200, {
      'content-type': up.headers['content-type'] ?? 'application/octet-stream',
      'content-length': String(body.length),
      etag: up.headers.etag,
      'last-modified': up.headers['last-modified'],
      'x-cg-status': 'miss',
      'accept-ranges': 'bytes',
      'cache-control': 'private, no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: String(err.message) }));
  }
});
serveChild(server, () => void pool.close());
