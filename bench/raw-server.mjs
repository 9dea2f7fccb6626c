/**
 * The ceiling: a bare node:http server answering `GET /bench/<key>` with the same bytes and the
 * same response headers as a gateway hit (Content-Type, Content-Length, ETag, Last-Modified,
 * X-CG-Status, and the Accept-Ranges and Cache-Control every object response must carry), from
 * Buffers in memory. No routing framework, no auth, no cache lookup. Node's cost per response
 * grows with the header count, so a ceiling with fewer headers would not be the same work.
 *
 * Usage: node bench/raw-server.mjs '<json: {"objects":[{"key":"hot/4k.bin","size":4096}]}>'
 * Prints {"port":…} when listening. Exits on SIGTERM/SIGINT or when stdin closes.
 */
import http from 'node:http';
import { serveChild } from './lib/serve-child.mjs';
import { BUCKET, objectBytes, sha256 } from './lib/objects.mjs';

const spec = JSON.parse(process.argv[2] ?? '{"objects":[]}');
const lastModified = new Date(Math.floor(Date.now() / 1000) * 1000).toUTCString();
const objects = new Map();
for (const { key, size } of spec.objects) {
  const body = objectBytes(key, size);
  objects.set(`/${BUCKET}/${key}`, {
    body,
    headers: {
      'content-type': 'application/octet-stream',
      'content-length': String(size),
      etag: `"${sha256(body).slice(0, 32)}"`,
      'x-cg-status': 'hit=1',
      'last-modified': lastModified,
      'accept-ranges': 'bytes',
      'cache-control': 'private, no-store',
    },
  });
}

const server = http.createServer((req, res) => {
  const q = req.url.indexOf('?');
  const obj = objects.get(q === -1 ? req.url : req.url.slice(0, q));
  if (!obj) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found","code":"GW_ERR_NOT_FOUND"}');
    return;
  }
  res.writeHead(200, obj.headers);
  res.end(req.method === 'HEAD' ? undefined : obj.body);
});
serveChild(server);
