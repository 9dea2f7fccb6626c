/**
 * Starting every server the bench measures, each as a child process pinned to the server core:
 * the origin (s3rver behind a counting, delaying proxy), the gateway from dist/, nginx with
 * proxy_cache, Varnish, and the raw node:http ceiling.
 *
 * A started peer is { name, label, base, headers, cacheHeader, isHit(value), proc }.
 *
 * The Node servers under test (the gateway, raw node:http and the miss floor) run on `PEER_NODE`;
 * the origin, like the load generator, runs on the bench's own Node. `npm run bench:node24`
 * changes only the first, so a Node 24 run measures the gateway on Node 24 with the same
 * instruments as a run on the system Node (the herd's client alone took 15-18 ms to take in 100
 * answers from memory on Node 20 and 19-30 ms on Node 24, which the herd figure charged to
 * whichever peer it measured).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, jsonLine, startChild } from './procs.mjs';

const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT_DIR = path.resolve(BENCH_DIR, '..');
export const DIST_MAIN = path.join(ROOT_DIR, 'dist', 'main.js');
/** The Node the gateway and the raw node:http peers run on: `BENCH_PEER_NODE`, else the bench's own. */
export const PEER_NODE = process.env.BENCH_PEER_NODE || process.execPath;
export const BEARER_TOKEN = 'bench-token-0123456789abcdef';
const HOST = '127.0.0.1';

function tcpProbe(port) {
  return new Promise((resolve) => {
    const s = connect({ host: HOST, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** s3rver + the counting/delaying proxy, in one child process. */
export async function startOrigin({ dir, core }) {
  const proc = await startChild({
    name: 'origin',
    cmd: process.execPath,
    args: [path.join(BENCH_DIR, 'origin.mjs')],
    env: { ...process.env, BENCH_TMP: dir, NODE_NO_WARNINGS: '1' },
    core,
    ready: (out) => jsonLine(out),
  });
  const { port, s3rverPort } = proc.info;
  const base = `http://${HOST}:${port}`;
  const control = async (method, p) => {
    const res = await fetch(`${base}/__bench/${p}`, { method });
    if (!res.ok) throw new Error(`origin control ${p}: ${res.status}`);
    return res.status === 204 ? undefined : res.json();
  };
  return {
    name: 'origin',
    label: 'origin (s3rver, no cache)',
    base,
    port,
    s3rverPort,
    headers: {},
    cacheHeader: undefined,
    isHit: () => false,
    proc,
    stats: () => control('GET', 'stats'),
    reset: () => control('POST', 'reset'),
    setDelay: (ms) => control('POST', `delay?ms=${ms}`),
  };
}

/**
 * An AWS SDK client for the origin's s3rver (path style, `WHEN_REQUIRED` checksums: with the
 * defaults the SDK's aws-chunked framing would be stored as object bytes).
 */
export async function originS3(origin) {
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client({
    endpoint: `http://${HOST}:${origin.s3rverPort}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** The gateway from dist/, with a generated config. `cache` is the config's `cache:` block. */
export async function startGateway({ name, label, dir, core, originPort, cache, publicKey, nodeArgs = [], auth = 'bearer', logLevel = 'warn', main = DIST_MAIN, wrap }) {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'gateway.yaml');
  // A fixed port rather than 0: at LOG_LEVEL=warn the gateway prints no "listening" line.
  const port = await freePort();
  const yaml = [
    `listen: "${HOST}:${port}"`,
    'auth:',
    `  bearer_token: "${BEARER_TOKEN}"`,
    ...(publicKey ? [`  public_key: "${publicKey}"`] : []),
    'cache:',
    ...Object.entries(cache).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
    'stores:',
    '  bench:',
    '    type: s3',
    '    bucket: bench',
    '    region: us-east-1',
    '    access_key: S3RVER',
    '    secret_key: S3RVER',
    `    endpoint: "${HOST}:${originPort}"`,
    '    allow_http: true',
    '',
  ].join('\n');
  writeFileSync(file, yaml);
  const proc = await startChild({
    name,
    ...launch(wrap, [...nodeArgs, main, '--config', file]),
    cwd: dir,
    // warn: no access line per request (nginx runs with access_log off too).
    env: { PATH: process.env.PATH, LOG_LEVEL: logLevel, NODE_NO_WARNINGS: '1' },
    core,
    probe: () => tcpProbe(port),
  });
  return {
    name,
    label,
    base: `http://${HOST}:${port}`,
    headers: auth === 'bearer' ? { authorization: `Bearer ${BEARER_TOKEN}` } : {},
    cacheHeader: 'x-cg-status',
    isHit: (v) => v === 'hit=1',
    proc,
    configFile: file,
  };
}

/**
 * nginx with proxy_cache in front of the origin: 1 worker, proxy_cache_lock on. With `slice`
 * (e.g. '8m'), the slice module caches fixed-size ranges, each its own entry (nginx's answer to
 * large objects): the cache key and the upstream Range carry $slice_range.
 */
export async function startNginx({ bin, dir, core, originPort, slice }) {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `# generated by bench/lib/peers.mjs
worker_processes 1;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=bench:64m max_size=4g inactive=1h use_temp_path=off;
  upstream origin { server ${HOST}:${originPort}; keepalive 64; }
  server {
    listen ${HOST}:${port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # s3rver takes a non-IP Host as a virtual-hosted bucket name.
      proxy_set_header Host ${HOST}:${originPort};
      proxy_cache bench;
${
  slice
    ? `      slice ${slice};
      proxy_cache_key $uri$slice_range;
      proxy_set_header Range $slice_range;
      proxy_cache_valid 200 206 1h;`
    : `      proxy_cache_key $uri;
      proxy_cache_valid 200 1h;`
}
      proxy_cache_lock on;
      proxy_cache_lock_timeout 30s;
      proxy_cache_lock_age 30s;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      add_header X-Cache-Status $upstream_cache_status;
    }
  }
}
`,
  );
  const proc = await startChild({
    name: 'nginx',
    cmd: bin,
    args: ['-p', dir, '-c', conf, '-g', 'daemon off;'],
    core,
    probe: () => tcpProbe(port),
  });
  return {
    name: 'nginx',
    label: slice ? `nginx slice ${slice} + proxy_cache` : 'nginx proxy_cache',
    base: `http://${HOST}:${port}`,
    headers: {},
    cacheHeader: 'x-cache-status',
    isHit: (v) => v === 'HIT',
    proc,
  };
}

/** Varnish with a VCL that caches every 200 for an hour and says HIT/MISS. */
export async function startVarnish({ bin, dir, core, originPort, storage = 'malloc,512m' }) {
  mkdirSync(dir, { recursive: true });
  // As root, varnishd's worker runs as the unprivileged vcache user: it must reach its workdir.
  chmodSync(dir, 0o755);
  chmodSync(path.dirname(dir), 0o755);
  const port = await freePort();
  const vcl = path.join(dir, 'bench.vcl');
  writeFileSync(
    vcl,
    `vcl 4.1;
# generated by bench/lib/peers.mjs
backend origin { .host = "${HOST}"; .port = "${originPort}"; }
sub vcl_backend_response { set beresp.ttl = 1h; }
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
`,
  );
  chmodSync(vcl, 0o644);
  const args = ['-F', '-a', `${HOST}:${port}`, '-f', vcl, '-n', path.join(dir, 'work'), '-s', storage];
  // Not root: no privilege separation is possible, so run without a jail.
  if (process.getuid && process.getuid() !== 0) args.push('-j', 'none');
  const proc = await startChild({
    name: 'varnish',
    cmd: bin,
    args,
    core,
    probe: () => tcpProbe(port),
    timeoutMs: 60_000, // compiling the VCL takes a few seconds
  });
  return {
    name: 'varnish',
    label: 'Varnish',
    base: `http://${HOST}:${port}`,
    headers: {},
    cacheHeader: 'x-cache',
    isHit: (v) => v === 'HIT',
    proc,
  };
}

/**
 * The command that runs a peer on PEER_NODE with `args`: straight, or under `wrap`
 * ({cmd, args, timeoutMs}: a tool such as valgrind that runs the node command it is given).
 */
function launch(wrap, args) {
  if (!wrap) return { cmd: PEER_NODE, args };
  return { cmd: wrap.cmd, args: [...wrap.args, PEER_NODE, ...args], ...(wrap.timeoutMs ? { timeoutMs: wrap.timeoutMs } : {}) };
}

/** One of the bench's own node:http servers (bench/<script>), run as a child on `core`. */
async function startNodeServer({ name, label, script, spec, core, wrap }) {
  const proc = await startChild({
    name,
    ...launch(wrap, [path.join(BENCH_DIR, script), JSON.stringify(spec)]),
    core,
    ready: (out) => jsonLine(out),
  });
  return {
    name,
    label,
    base: `http://${HOST}:${proc.info.port}`,
    headers: {},
    cacheHeader: 'x-cg-status',
    isHit: (v) => v === 'hit=1',
    proc,
  };
}

/** The raw node:http ceiling, serving `objects` ([{key, size}]) from memory. */
export function startRaw({ core, objects, wrap }) {
  return startNodeServer({ name: 'raw', label: 'raw node:http', script: 'raw-server.mjs', spec: { objects }, core, wrap });
}

/** The miss floor (bench/raw-proxy.mjs): node:http in front of the origin through undici, nothing else. */
export function startRawProxy({ core, originPort, wrap }) {
  return startNodeServer({ name: 'raw-proxy', label: 'raw node:http + undici (no cache)', script: 'raw-proxy.mjs', spec: { origin: `http://${HOST}:${originPort}` }, core, wrap });
}
