#!/usr/bin/env node
/**
 * `npm run bench`: cachegate side by side with nginx proxy_cache, Varnish and a raw node:http
 * server, all in front of the same s3rver origin, on this machine, in one run.
 *
 * Servers run on core 0 and the load generator (wrk, or bench/client.mjs) on core 1, with
 * taskset when it exists. See BENCHMARKS.md for what each workload measures.
 *
 * Environment:
 *   BENCH_QUICK=1             smoke test: 1 run x 3s, fewer cold keys, a 640 MiB PUT; results go to
 *                             bench/results/tmp/ and BENCHMARKS.md is left alone
 *   BENCH_RUNS=3              runs per throughput figure (the median is reported)
 *   BENCH_DURATION=10s        length of one wrk run
 *   BENCH_WARMUP=2s           an unmeasured wrk run per peer and object first (JIT, connection pools)
 *   BENCH_CONNECTIONS=64      wrk connections (and cold-miss client concurrency)
 *   BENCH_COLD_KEYS=1000      distinct keys per cold-miss run
 *   BENCH_COLD_WARM=4000      distinct keys each peer misses on, unmeasured, before the cold-miss runs
 *                             (a Node process needs a few thousand misses before V8 has optimised
 *                             the miss path; the first BENCH_COLD_KEYS of them are reported apart)
 *   BENCH_HERD_CLIENTS=100    concurrent requests in the herd
 *   BENCH_HERD_DELAY_MS=100   origin delay during the herd
 *   BENCH_PUT_SIZE=1GiB       body of the PUT workload (KiB/MiB/GiB)
 *   BENCH_PUT_RUNS=3          PUT repetitions
 *   BENCH_ONLY=hits,disk,cold,herd,put,large   run only these workloads (results go to bench/results/tmp/;
 *                             BENCHMARKS.md, its large-object table included, only with BENCH_WRITE_DOC=1)
 *   BENCH_GATEWAY_LOG_LEVEL=warn   the gateway's LOG_LEVEL (info adds an access line per request)
 *   BENCH_PROFILE=1           also CPU-profile a fresh gateway under each of: 4 KiB bearer hits,
 *                             disk-tier hits, cold misses (of the workloads this run has);
 *                             BENCH_KEEP_PROFILES=<dir> keeps the .cpuprofile files
 *   BENCH_QUIET_WAIT=120      seconds (in all) the bench may wait, before measurements, for other
 *                             processes on the machine to go quiet (0: never wait; quick: 0)
 *   BENCH_WRITE_DOC=1         update BENCHMARKS.md even for a quick or partial run
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setQuietBudget, waitForQuiet, withForeignCheck, withServerCpu } from './lib/cpu.mjs';
import { analyzeProfile } from './lib/profile.mjs';
import { machineInfo, median, procMemory } from './lib/machine.mjs';
import { BUCKET, formatSize, GIB, keyPlan, KIB, MIB, objectBytes, sha256 } from './lib/objects.mjs';
import { DIST_MAIN, originS3, ROOT_DIR, startGateway, startNginx, startOrigin, startRaw, startRawProxy, startVarnish } from './lib/peers.mjs';
import { cleanupAll, cleanupAllSync, makeTempDir, runCommand, sleep, TASKSET, which } from './lib/procs.mjs';
import { evaluateTargets, printReport, updateBenchmarksMd } from './lib/report.mjs';
import { runWrk } from './lib/wrk.mjs';
import { largeObject, largeTable, updateLargeSection } from './lib/large.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

// The AWS SDK warns about Node 20 on first use; one bench line is enough.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name !== 'NodeVersionSupportWarning') process.stderr.write(`[bench] warning: ${w.name}: ${w.message}\n`);
});
const started = Date.now();

// ---------------------------------------------------------------------------------------------
// Options

function intEnv(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
}

function sizeEnv(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const m = /^(\d+)\s*(b|kib|mib|gib)?$/i.exec(v.trim());
  if (!m) throw new Error(`${name} must be like 1GiB or 256MiB, got ${v}`);
  return Number(m[1]) * { b: 1, kib: KIB, mib: MIB, gib: GIB }[(m[2] ?? 'b').toLowerCase()];
}

const QUICK = process.env.BENCH_QUICK === '1';
const WORKLOADS = ['hits', 'disk', 'cold', 'herd', 'put', 'large'];
const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
for (const w of only ?? []) if (!WORKLOADS.includes(w) && w !== 'profile') throw new Error(`BENCH_ONLY: unknown workload ${w} (known: ${WORKLOADS.join(', ')})`);

const opts = {
  quick: QUICK,
  runs: intEnv('BENCH_RUNS', QUICK ? 1 : 3),
  duration: process.env.BENCH_DURATION || (QUICK ? '3s' : '10s'),
  warmup: process.env.BENCH_WARMUP || (QUICK ? '1s' : '2s'),
  connections: intEnv('BENCH_CONNECTIONS', 64),
  coldKeys: intEnv('BENCH_COLD_KEYS', QUICK ? 300 : 1000),
  coldWarm: intEnv('BENCH_COLD_WARM', QUICK ? 300 : 4000),
  herdClients: intEnv('BENCH_HERD_CLIENTS', 100),
  herdDelayMs: intEnv('BENCH_HERD_DELAY_MS', 100),
  // Quick: still larger than the gateway's max_object_size (512 MiB), so it streams through uncached.
  putBytes: sizeEnv('BENCH_PUT_SIZE', QUICK ? 640 * MIB : GIB),
  putRuns: intEnv('BENCH_PUT_RUNS', QUICK ? 1 : 3),
  diskObjects: 64,
  diskMemory: '16MiB',
  workloads: WORKLOADS.filter((w) => !only || only.has(w)),
  profile: process.env.BENCH_PROFILE === '1',
  gatewayLogLevel: process.env.BENCH_GATEWAY_LOG_LEVEL || 'warn',
  quietWaitSec: process.env.BENCH_QUIET_WAIT === undefined ? (QUICK ? 0 : 120) : Number(process.env.BENCH_QUIET_WAIT),
};
const partial = QUICK || only !== undefined;
const writeDoc = !partial || process.env.BENCH_WRITE_DOC === '1';

const cores = os.cpus().length;
const SERVER_CORE = TASKSET && cores >= 2 ? 0 : undefined;
const LOAD_CORE = TASKSET && cores >= 2 ? 1 : undefined;

function log(msg) {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[bench ${s}s] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Cleanup on every way out

let shuttingDown;
function shutdown(code) {
  shuttingDown ??= cleanupAll()
    .catch(() => {})
    .finally(() => process.exit(code));
  return shuttingDown;
}
process.on('SIGINT', () => {
  process.stderr.write('\n[bench] interrupted: stopping every server\n');
  void shutdown(130);
});
process.on('SIGTERM', () => void shutdown(143));
process.on('SIGHUP', () => void shutdown(129));
process.on('exit', cleanupAllSync);
process.on('uncaughtException', (err) => {
  console.error(`[bench] ${err.stack ?? err}`);
  void shutdown(1);
});
process.on('unhandledRejection', (err) => {
  console.error(`[bench] ${err?.stack ?? err}`);
  void shutdown(1);
});

// ---------------------------------------------------------------------------------------------
// Small helpers

/** GET through a peer; returns status, cache header and the body's sha256. */
async function fetchObject(peer, urlPath) {
  const res = await fetch(peer.base + urlPath, { headers: peer.headers });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, cache: peer.cacheHeader ? res.headers.get(peer.cacheHeader) : undefined, sha: sha256(body), size: body.length };
}

/** Fetch until the peer says hit (at most 4 times), checking the bytes. Throws when it never does. */
async function warm(peer, urlPath, expected) {
  let r;
  for (let i = 0; i < 4; i++) {
    r = await fetchObject(peer, urlPath);
    if (r.status !== 200) throw new Error(`${peer.label}: ${urlPath.split('?')[0]} answered ${r.status}`);
    if (r.sha !== expected.sha) throw new Error(`${peer.label}: ${urlPath.split('?')[0]} served wrong bytes (${r.size} bytes)`);
    if (peer.isHit(r.cache)) return r;
  }
  throw new Error(`${peer.label}: ${urlPath.split('?')[0]} is not a hit after 4 requests (cache header: ${r.cache})`);
}

/** Run bench/client.mjs on the load core. */
async function client(spec, timeoutMs = 600_000) {
  return withForeignCheck(async () => {
    const r = await runCommand(process.execPath, [path.join(BENCH_DIR, 'client.mjs'), JSON.stringify(spec)], { core: LOAD_CORE, timeoutMs });
    const line = r.stdout.trim().split('\n').pop();
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`client ${spec.mode} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-500)}`);
    }
  });
}

/** ", 0.4 cores busy elsewhere" when something else used the machine during a measurement. */
const busyNote = (r) => (r?.foreignCores > BUSY_WARN_CORES ? `, ${r.foreignCores} cores busy elsewhere` : '');

const objPath = (key) => `/${BUCKET}/${key}`;

/** Other work on the machine above this (in cores) during a measurement makes it suspect. */
const BUSY_WARN_CORES = 0.1;

/** Before a measurement: give other work on the machine a moment to finish (within the budget). */
async function quiet() {
  if (opts.quietWaitSec <= 0) return;
  const q = await waitForQuiet({ thresholdCores: BUSY_WARN_CORES });
  if (q.waitedMs > 1000) log(`  waited ${(q.waitedMs / 1000).toFixed(0)} s for the machine to go quiet (now ${q.foreignCores} cores busy elsewhere)`);
}

function summarize(runs) {
  const ok = runs.filter((r) => !r.error);
  return {
    serverCpuUsPerReq: median(ok.map((r) => r.serverCpuUsPerReq).filter((x) => typeof x === 'number')),
    foreignCoresMax: Math.max(0, ...ok.map((r) => r.foreignCores ?? 0)),
    rps: median(ok.map((r) => r.rps)),
    mbPerSec: median(ok.map((r) => r.mbPerSec)),
    p50Ms: median(ok.map((r) => r.latencyMs?.p50)),
    p99Ms: median(ok.map((r) => r.latencyMs?.p99)),
    errors: runs.reduce((n, r) => n + (r.errors ?? 0) + (r.error ? 1 : 0), 0),
    runs,
  };
}

async function upload(s3, key, body) {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'application/octet-stream' }));
}

async function uploadAll(s3, items, concurrency = 16) {
  let next = 0;
  let done = 0;
  let lastLog = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const { key, size } = items[next++];
        await upload(s3, key, objectBytes(key, size));
        done++;
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          log(`  uploaded ${done}/${items.length}`);
        }
      }
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  if (!existsSync(DIST_MAIN)) {
    console.error(`bench: ${path.relative(process.cwd(), DIST_MAIN) || DIST_MAIN} is missing. Build first: npm ci (or npm run build).`);
    return 2;
  }
  const bins = { wrk: which('wrk'), nginx: which('nginx'), varnishd: which('varnishd'), taskset: TASKSET };
  if (!bins.wrk) {
    console.error('bench: wrk is not installed (apt-get install -y wrk); it is the load generator for every throughput figure.');
    return 2;
  }
  const machine = machineInfo({ rootDir: ROOT_DIR, bins });
  log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, node ${machine.node}${machine.benchNode !== machine.node ? ` (load generator and origin: ${machine.benchNode})` : ''}`);
  log(`peers found: nginx ${machine.nginx ?? 'NOT FOUND (apt-get install nginx)'}, varnish ${machine.varnish ?? 'NOT FOUND (apt-get install varnish)'}, wrk ${machine.wrk}`);
  log(
    SERVER_CORE === undefined
      ? `taskset ${TASKSET ? 'found' : 'NOT FOUND'}, ${cores} cores: servers and load are NOT pinned`
      : `pinning: servers on core ${SERVER_CORE}, load (wrk, client) on core ${LOAD_CORE}`,
  );
  log(`options: ${JSON.stringify({ ...opts, putBytes: formatSize(opts.putBytes) })}`);

  setQuietBudget(opts.quietWaitSec * 1000);
  const root = makeTempDir('cachegate-bench-');
  const plan = keyPlan({ coldKeys: opts.coldKeys, coldWarm: opts.coldWarm, runs: opts.runs, diskObjects: opts.diskObjects, herdRuns: opts.runs });
  const results = {
    version: 1,
    date: new Date().toISOString(),
    quick: QUICK,
    partial,
    options: { ...opts, serverCore: SERVER_CORE ?? null, loadCore: LOAD_CORE ?? null },
    machine,
    peers: {},
    notes: [],
  };
  const wants = (w) => opts.workloads.includes(w);

  // --- origin and objects
  log('starting the origin (s3rver + counting proxy)');
  const origin = await startOrigin({ dir: root, core: SERVER_CORE });
  results.peers.origin = { available: true };
  const s3 = await originS3(origin);
  const items = [plan.hot4k, plan.hot1m];
  if (wants('cold')) {
    for (let i = 0; i < plan.cold.warmCount; i++) items.push({ key: plan.cold.warmKey(i), size: plan.cold.size });
    for (let r = 0; r < opts.runs; r++) for (let i = 0; i < opts.coldKeys; i++) items.push({ key: plan.cold.key(r, i), size: plan.cold.size });
  }
  if (wants('disk')) for (let i = 0; i < opts.diskObjects; i++) items.push({ key: plan.disk.key(i), size: plan.disk.size });
  if (wants('herd')) for (let r = 0; r < opts.runs; r++) items.push({ key: plan.herd.key('all', r), size: plan.herd.size });
  log(`uploading ${items.length} objects to the origin with the AWS SDK`);
  await uploadAll(s3, items);
  s3.destroy();

  // --- peers
  const { generateKeypair, signLink } = await import(pathToFileURL(path.join(ROOT_DIR, 'dist', 'sign', 'index.js')).href);
  const keypair = await generateKeypair();
  const peers = {};
  const tryStart = async (name, fn) => {
    try {
      peers[name] = await fn();
      results.peers[name] = { available: true };
      log(`  ${name}: ${peers[name].base}`);
    } catch (err) {
      results.peers[name] = { available: false, reason: err.message.split('\n')[0] };
      log(`  ${name}: FAILED TO START, skipped: ${err.message}`);
    }
  };
  log('starting peers');
  await tryStart('gateway', () =>
    startGateway({ name: 'gateway', label: 'cachegate (bearer)', dir: path.join(root, 'gateway'), core: SERVER_CORE, originPort: origin.port, logLevel: opts.gatewayLogLevel, cache: { max_memory: '512MiB' }, publicKey: keypair.publicKey }),
  );
  if (bins.nginx) await tryStart('nginx', () => startNginx({ bin: bins.nginx, dir: path.join(root, 'nginx'), core: SERVER_CORE, originPort: origin.port }));
  else results.peers.nginx = { available: false, reason: 'nginx not installed' };
  if (bins.varnishd) await tryStart('varnish', () => startVarnish({ bin: bins.varnishd, dir: path.join(root, 'varnish'), core: SERVER_CORE, originPort: origin.port }));
  else results.peers.varnish = { available: false, reason: 'varnishd not installed' };
  const rawObjects = [
    plan.hot4k,
    plan.hot1m,
    // The herd objects too: the raw server answering the same herd from memory is the client's floor.
    ...(wants('herd') ? Array.from({ length: opts.runs }, (_, r) => ({ key: plan.herd.key('all', r), size: plan.herd.size })) : []),
  ];
  await tryStart('raw', () => startRaw({ core: SERVER_CORE, objects: rawObjects }));
  if (wants('cold')) await tryStart('raw-proxy', () => startRawProxy({ core: SERVER_CORE, originPort: origin.port }));
  if (!peers.gateway) throw new Error(`the gateway did not start: ${results.peers.gateway.reason}`);

  const gw = peers.gateway;
  const signedPeer = { ...gw, name: 'signed', label: 'cachegate (signed link)', headers: {} };
  const signedPath = async (key) => {
    const link = await signLink({ baseUrl: gw.base, bucket: BUCKET, path: key, expiresIn: 24 * 3600, privateKey: keypair.privateKey });
    return link.slice(gw.base.length);
  };

  // --- hits
  if (wants('hits')) {
    results.hits = {};
    for (const obj of [plan.hot4k, plan.hot1m]) {
      const expected = { sha: sha256(objectBytes(obj.key, obj.size)) };
      const targets = [
        { id: 'gateway', peer: gw, path: objPath(obj.key) },
        { id: 'signed', peer: signedPeer, path: await signedPath(obj.key) },
        { id: 'nginx', peer: peers.nginx, path: objPath(obj.key) },
        { id: 'varnish', peer: peers.varnish, path: objPath(obj.key) },
        { id: 'raw', peer: peers.raw, path: objPath(obj.key) },
      ].filter((t) => t.peer);
      const live = [];
      for (const t of targets) {
        try {
          await warm(t.peer, t.path, expected);
          live.push(t);
        } catch (err) {
          log(`  ${t.id}: warm-up failed, skipped: ${err.message}`);
          results.notes.push(`${formatSize(obj.size)} hits, ${t.id}: ${err.message}`);
        }
      }
      // An unmeasured wrk run first: JIT warm-up, so the first measured peer is not penalized.
      for (const t of live) {
        log(`warm-up ${formatSize(obj.size)}: ${t.id} (${opts.warmup})`);
        await runWrk({ bin: bins.wrk, core: LOAD_CORE, base: t.peer.base, path: t.path, headers: t.peer.headers, connections: opts.connections, duration: opts.warmup }).catch(() => {});
      }
      results.hits[obj.size] = { object: obj.key, size: obj.size, label: `${formatSize(obj.size)} hits`, targets: Object.fromEntries(live.map((t) => [t.id, []])) };
    }
    for (let run = 0; run < opts.runs; run++) {
      for (const obj of [plan.hot4k, plan.hot1m]) {
        const entry = results.hits[obj.size];
        const ids = Object.keys(entry.targets);
        // Rotate the order each run, so no peer always goes first.
        const order = ids.map((_, i) => ids[(i + run) % ids.length]);
        for (const id of order) {
          const t =
            id === 'signed'
              ? { peer: signedPeer, path: await signedPath(obj.key) }
              : { peer: id === 'gateway' ? gw : peers[id], path: objPath(obj.key) };
          log(`hits ${formatSize(obj.size)} run ${run + 1}/${opts.runs}: ${id}`);
          await quiet();
          try {
            const r = await runWrk({ bin: bins.wrk, core: LOAD_CORE, base: t.peer.base, path: t.path, headers: t.peer.headers, connections: opts.connections, duration: opts.duration, serverPgid: t.peer.proc?.pid });
            entry.targets[id].push(r);
            log(`  ${Math.round(r.rps)} req/s, ${r.mbPerSec.toFixed(0)} MB/s, p99 ${r.latencyMs.p99.toFixed(2)} ms${r.errors ? `, ${r.errors} ERRORS` : ''}${busyNote(r)}`);
          } catch (err) {
            entry.targets[id].push({ error: err.message });
            log(`  failed: ${err.message}`);
          }
          await sleep(300);
        }
      }
    }
    for (const entry of Object.values(results.hits)) {
      entry.targets = Object.fromEntries(Object.entries(entry.targets).map(([id, runs]) => [id, summarize(runs)]));
    }
  }

  // --- profile (optional): the gateway's CPU under 4 KiB hits, disk hits and cold misses
  if (opts.profile || only?.has('profile')) {
    results.profile = await profileGateway({ bins, root, origin, workload: 'hits', obj: plan.hot4k });
    results.profiles = { hits: results.profile };
    if (wants('disk')) results.profiles.disk = await profileGateway({ bins, root, origin, workload: 'disk', plan });
    // Keys of the last measured run's prefix are cold for a fresh gateway.
    if (wants('cold')) results.profiles.cold = await profileGateway({ bins, root, origin, workload: 'cold', plan });
  }

  // --- disk tier
  if (wants('disk')) {
    results.disk = await diskTier({ bins, root, origin, peers, plan });
  }

  // --- cold misses
  if (wants('cold')) {
    results.cold = { size: plan.cold.size, keysPerRun: opts.coldKeys, targets: {} };
    const targets = [
      ['gateway', gw],
      ['nginx', peers.nginx],
      ['varnish', peers.varnish],
      ['raw-proxy', peers['raw-proxy']],
      ['origin', origin],
    ].filter(([, p]) => p);
    for (const [id] of targets) results.cold.targets[id] = [];
    // Every peer misses on the warm-up keys first. Only its first misses are measured (`fresh`):
    // what a process that has just started pays, apart from the steady state measured below.
    results.cold.fresh = { keys: plan.cold.freshCount, warmKeys: plan.cold.warmCount, targets: {} };
    for (const [id, peer] of targets) {
      log(`cold misses warm-up: ${id} (${plan.cold.warmCount} keys, the first ${plan.cold.freshCount} measured)`);
      const paths = Array.from({ length: plan.cold.warmCount }, (_, i) => objPath(plan.cold.warmKey(i)));
      try {
        await quiet();
        const first = await withServerCpu(
          peer.proc?.pid,
          () => client({ mode: 'cold', base: peer.base, paths: paths.slice(0, plan.cold.freshCount), headers: peer.headers, concurrency: opts.connections }),
          (out) => out.requests,
        );
        results.cold.fresh.targets[id] = { rps: first.rps, serverCpuUsPerReq: first.serverCpuUsPerReq, errors: first.requests - first.ok };
        log(`  first ${plan.cold.freshCount}: ${Math.round(first.rps)} req/s, ${Math.round(first.serverCpuUsPerReq ?? NaN)} µs CPU per miss`);
        if (paths.length > plan.cold.freshCount) await client({ mode: 'cold', base: peer.base, paths: paths.slice(plan.cold.freshCount), headers: peer.headers, concurrency: opts.connections });
      } catch (err) {
        log(`  failed: ${err.message}`);
      }
    }
    for (let run = 0; run < opts.runs; run++) {
      for (const [id, peer] of targets.map((_, i) => targets[(i + run) % targets.length])) {
        log(`cold misses run ${run + 1}/${opts.runs}: ${id} (${opts.coldKeys} distinct keys)`);
        await quiet();
        try {
          const paths = Array.from({ length: opts.coldKeys }, (_, i) => objPath(plan.cold.key(run, i)));
          // The server's own CPU per miss (the origin's is not in it, except for the origin itself).
          const r = await withServerCpu(
            peer.proc?.pid,
            () => client({ mode: 'cold', base: peer.base, paths, headers: peer.headers, concurrency: opts.connections, cacheHeader: peer.cacheHeader, expectedBytes: plan.cold.size }),
            (out) => out.requests,
          );
          const hits = Object.entries(r.cache ?? {}).reduce((n, [v, c]) => n + (peer.isHit(v) ? c : 0), 0);
          const errors = r.requests - r.ok;
          results.cold.targets[id].push({ ...r, hits, errors });
          log(`  ${Math.round(r.rps)} req/s, p50 ${r.latencyMs.p50.toFixed(1)} ms${errors ? `, ${errors} ERRORS ${JSON.stringify(r.statuses)}` : ''}${hits ? `, ${hits} unexpected hits` : ''}${busyNote(r)}`);
        } catch (err) {
          results.cold.targets[id].push({ error: err.message });
          log(`  failed: ${err.message}`);
        }
      }
    }
    results.cold.targets = Object.fromEntries(Object.entries(results.cold.targets).map(([id, runs]) => [id, summarize(runs)]));
  }

  // --- herd
  if (wants('herd')) {
    results.herd = await herd({ origin, peers, plan });
  }

  // --- PUT
  if (wants('put')) {
    results.put = await putWorkload({ root, origin });
  }

  // --- large object: 1 GiB, random 1 MiB ranges, against nginx slice and Varnish
  if (wants('large')) {
    await quiet();
    results.large = await largeObject({ origin, bins, root, core: SERVER_CORE, client, log, quick: QUICK, runs: opts.runs });
  }

  results.durationSec = Math.round((Date.now() - started) / 1000);
  results.busyElsewhere = busySummary(results);
  results.targets = evaluateTargets(results);

  log('stopping servers');
  await cleanupAll();

  printReport(results);
  const stamp = results.date.replace(/[:.]/g, '-');
  const outDir = partial ? path.join(BENCH_DIR, 'results', 'tmp') : path.join(BENCH_DIR, 'results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${stamp}.json`);
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  writeFileSync(path.join(outDir, 'latest.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(`\nresults: ${path.relative(ROOT_DIR, file)} (and ${path.relative(ROOT_DIR, path.join(outDir, 'latest.json'))})`);
  if (writeDoc) {
    updateBenchmarksMd(path.join(ROOT_DIR, 'BENCHMARKS.md'), results);
    console.log('BENCHMARKS.md updated');
  } else {
    console.log('BENCHMARKS.md left alone (quick or partial run; BENCH_WRITE_DOC=1 to update it)');
  }
  if (results.large) {
    // Its own section of BENCHMARKS.md, written by the same rule as the rest: a partial run
    // (BENCH_ONLY=large) writes it only with BENCH_WRITE_DOC=1, so the Targets table and the
    // large-object table always come from one run.
    const table = largeTable(results.large, results.date.slice(0, 10));
    if (writeDoc) updateLargeSection(path.join(ROOT_DIR, 'BENCHMARKS.md'), table);
    console.log(`\n${table}\n${writeDoc ? 'BENCHMARKS.md: large-object table updated' : 'BENCHMARKS.md: large-object table left alone'}`);
  }
  console.log(`total ${results.durationSec}s`);
  return 0;
}

/** Every measurement's foreign load: how many were taken while the machine was busy elsewhere. */
function busySummary(results) {
  const all = [];
  const walk = (o) => {
    if (!o || typeof o !== 'object') return;
    if (typeof o.foreignCores === 'number') all.push(o.foreignCores);
    for (const v of Object.values(o)) if (v && typeof v === 'object') walk(v);
  };
  for (const k of ['hits', 'disk', 'cold', 'herd', 'put']) walk(results[k]);
  const busy = all.filter((f) => f > BUSY_WARN_CORES);
  return { measurements: all.length, busy: busy.length, maxCores: Math.max(0, ...all), medianCores: median(all), thresholdCores: BUSY_WARN_CORES };
}

// ---------------------------------------------------------------------------------------------
// Workloads that need their own servers

/** Disk-tier hits: a working set 4x the memory tier. Reports "not available" when no disk tier answers hit=1. */
async function diskTier({ bins, root, origin, peers, plan }) {
  const out = { workingSet: opts.diskObjects * plan.disk.size, objects: opts.diskObjects, size: plan.disk.size, maxMemory: opts.diskMemory };
  let gd;
  try {
    log(`disk tier: gateway with max_memory ${opts.diskMemory}, max_disk 2GiB, working set ${formatSize(out.workingSet)}`);
    gd = await startGateway({
      name: 'gateway-disk',
      label: 'cachegate (disk tier)',
      dir: path.join(root, 'gateway-disk'),
      core: SERVER_CORE,
      originPort: origin.port, logLevel: opts.gatewayLogLevel,
      cache: { max_memory: opts.diskMemory, max_disk: '2GiB', disk_path: path.join(root, 'gateway-disk', 'cache') },
    });
  } catch (err) {
    log(`  the gateway refused the disk config: ${err.message.split('\n')[0]}`);
    return { ...out, available: false, reason: `gateway did not start with cache.max_disk: ${err.message.split('\n')[0]}` };
  }
  try {
    const keys = Array.from({ length: opts.diskObjects }, (_, i) => plan.disk.key(i));
    // Two passes fill memory and (if it exists) disk; the third counts hits. With an LRU memory
    // tier a quarter the working set's size, a sequential pass never hits memory.
    for (let pass = 0; pass < 2; pass++) for (const k of keys) await fetchObject(gd, objPath(k));
    let hits = 0;
    for (const k of keys) {
      const r = await fetchObject(gd, objPath(k));
      if (r.status === 200 && gd.isHit(r.cache) && r.sha === sha256(objectBytes(k, plan.disk.size))) hits++;
    }
    out.hitRatioAfterWarmup = hits / keys.length;
    if (hits < keys.length * 0.9) {
      log(`  disk tier not available: ${hits}/${keys.length} hits after warm-up`);
      return { ...out, available: false, reason: `${hits}/${keys.length} X-CG-Status hit=1 after two warm-up passes (no disk tier in this build)` };
    }
    out.available = true;
    // The raw ceiling for 1 MiB bodies is in the hits table already.
    const targets = [
      ['gateway', gd],
      ['nginx', peers.nginx],
    ].filter(([, p]) => p);
    for (const [id, p] of targets) if (id === 'nginx') for (let pass = 0; pass < 2; pass++) for (const k of keys) await fetchObject(p, objPath(k));
    out.targets = Object.fromEntries(targets.map(([id]) => [id, []]));
    for (let run = 0; run < opts.runs; run++) {
      for (const [id, p] of targets) {
        log(`disk-tier hits run ${run + 1}/${opts.runs}: ${id}`);
        await quiet();
        try {
          const r = await runWrk({ bin: bins.wrk, core: LOAD_CORE, base: p.base, headers: p.headers, connections: opts.connections, duration: opts.duration, keys: { prefix: `/${BUCKET}/disk/`, count: opts.diskObjects, suffix: '.bin' }, serverPgid: p.proc?.pid });
          out.targets[id].push(r);
          log(`  ${Math.round(r.rps)} req/s, ${r.mbPerSec.toFixed(0)} MB/s${r.errors ? `, ${r.errors} ERRORS` : ''}${busyNote(r)}`);
        } catch (err) {
          out.targets[id].push({ error: err.message });
        }
      }
    }
    out.targets = Object.fromEntries(Object.entries(out.targets).map(([id, runs]) => [id, summarize(runs)]));
    return out;
  } finally {
    await gd.proc.stop();
  }
}

/** 100 concurrent requests for one cold object behind a slow origin. */
async function herd({ origin, peers, plan }) {
  const out = { clients: opts.herdClients, delayMs: opts.herdDelayMs, size: plan.herd.size, runs: [], targets: {} };
  const targets = [
    ['gateway', peers.gateway],
    ['nginx', peers.nginx],
    ['varnish', peers.varnish],
    ['raw', peers.raw],
  ].filter(([, p]) => p);
  await origin.setDelay(opts.herdDelayMs);
  try {
    for (let run = 0; run < opts.runs; run++) {
      const key = plan.herd.key('all', run);
      const lat = await client({ mode: 'latency', url: origin.base + objPath(key), n: 3 });
      const originLatencyMs = lat.latencyMs.p50;
      const r = { key, originLatencyMs, targets: {} };
      for (const [id, p] of targets) {
        await origin.reset();
        log(`herd run ${run + 1}/${opts.runs}: ${id} (${opts.herdClients} clients, origin ${originLatencyMs.toFixed(0)} ms)`);
        await quiet();
        try {
          const h = await client({ mode: 'herd', base: p.base, path: objPath(key), warmPath: objPath(plan.hot4k.key), headers: p.headers, concurrency: opts.herdClients, cacheHeader: p.cacheHeader, expectedBytes: plan.herd.size });
          const stats = await origin.stats();
          const originGets = stats.byKey[`GET ${objPath(key)}`] ?? 0;
          const originHeads = stats.byKey[`HEAD ${objPath(key)}`] ?? 0;
          r.targets[id] = { ...h, originGets, originHeads, originRequests: originGets + originHeads };
          log(`  origin requests ${originGets + originHeads}, p50 ${h.latencyMs.p50.toFixed(0)} ms, p99 ${h.latencyMs.p99.toFixed(0)} ms, ${h.ok}/${h.requests} ok${h.errors?.length ? ` (${h.errors.join('; ')})` : ''}${busyNote(h)}`);
        } catch (err) {
          r.targets[id] = { error: err.message };
          log(`  failed: ${err.message}`);
        }
      }
      out.runs.push(r);
    }
  } finally {
    await origin.setDelay(0);
  }
  out.originLatencyMs = median(out.runs.map((r) => r.originLatencyMs));
  for (const [id] of targets) {
    const rs = out.runs.map((r) => r.targets[id]).filter((t) => t && !t.error);
    out.targets[id] = {
      originRequestsMedian: median(rs.map((t) => t.originRequests)),
      originRequestsMax: Math.max(...rs.map((t) => t.originRequests)),
      p50Ms: median(rs.map((t) => t.latencyMs.p50)),
      p99Ms: median(rs.map((t) => t.latencyMs.p99)),
      foreignCoresMax: Math.max(0, ...rs.map((t) => t.foreignCores ?? 0)),
      ok: rs.reduce((n, t) => n + t.ok, 0),
      requests: rs.reduce((n, t) => n + t.requests, 0),
      runs: rs.length,
    };
  }
  return out;
}

/** A large PUT through a fresh gateway: MB/s and peak RSS growth; the same PUT straight to the origin as reference. */
async function putWorkload({ root, origin }) {
  const out = { size: opts.putBytes, runs: [] };
  // The reference upload uses the gateway's own multipart settings when dist/ exports them.
  const partSettings = { partBytes: 8 * MIB, queueSize: 4 };
  try {
    const s3mod = await import(pathToFileURL(path.join(ROOT_DIR, 'dist', 'stores', 's3.js')).href);
    if (s3mod.MULTIPART_PART_BYTES) partSettings.partBytes = s3mod.MULTIPART_PART_BYTES;
    if (s3mod.MULTIPART_QUEUE_SIZE) partSettings.queueSize = s3mod.MULTIPART_QUEUE_SIZE;
  } catch {
    // keep the defaults
  }
  out.referencePartBytes = partSettings.partBytes;
  out.referenceQueueSize = partSettings.queueSize;
  const gp = await startGateway({
    name: 'gateway-put',
    label: 'cachegate (PUT)',
    dir: path.join(root, 'gateway-put'),
    core: SERVER_CORE,
    originPort: origin.port, logLevel: opts.gatewayLogLevel,
    cache: { max_memory: '512MiB' },
  });
  try {
    // Warm the code paths (SDK, multipart) with a small PUT before taking the baseline.
    const w = await client({ mode: 'put', url: `${gp.base}/${BUCKET}/put/warm.bin`, size: 16 * MIB, headers: gp.headers });
    if (w.status !== 200) throw new Error(`warm-up PUT answered ${w.status}: ${w.body ?? w.error}`);
    for (let run = 0; run < opts.putRuns; run++) {
      await quiet();
      // Reset VmHWM to the current RSS (Linux clear_refs 5), so the peak is this PUT's own.
      let hwmReset = true;
      try {
        writeFileSync(`/proc/${gp.proc.pid}/clear_refs`, '5');
      } catch {
        hwmReset = false;
      }
      const before = procMemory(gp.proc.pid);
      log(`PUT ${formatSize(opts.putBytes)} run ${run + 1}/${opts.putRuns} through the gateway (RSS ${(before.rss / MIB).toFixed(0)} MiB)`);
      const r = await client({ mode: 'put', url: `${gp.base}/${BUCKET}/put/big-${run}.bin`, size: opts.putBytes, headers: gp.headers });
      const after = procMemory(gp.proc.pid);
      const base = hwmReset ? before.rss : before.hwm;
      const growth = after.hwm - base;
      out.runs.push({ ...r, rssBefore: before.rss, hwmBefore: before.hwm, hwmAfter: after.hwm, rssAfter: after.rss, peakRssGrowth: growth, hwmReset });
      log(`  status ${r.status}, ${r.mbPerSec.toFixed(0)} MB/s, peak RSS growth ${(growth / MIB).toFixed(0)} MiB${busyNote(r)}`);
      if (r.status !== 200) log(`  PUT failed: ${r.body ?? r.error}`);
      if (run > 0) continue; // the reference is the origin's speed: once is enough
      await quiet();
      log(`PUT ${formatSize(opts.putBytes)} straight to the origin, SDK multipart (reference)`);
      const d = await client({ mode: 'put-s3', endpoint: origin.base, bucket: BUCKET, key: `put/direct-${run}.bin`, size: opts.putBytes, ...partSettings });
      out.runs[out.runs.length - 1].direct = d;
      log(`  status ${d.status}, ${d.mbPerSec.toFixed(0)} MB/s`);
    }
  } finally {
    await gp.proc.stop();
  }
  const ok = out.runs.filter((r) => r.status === 200);
  out.mbPerSec = median(ok.map((r) => r.mbPerSec));
  out.directMbPerSec = median(out.runs.filter((r) => r.direct?.status === 200).map((r) => r.direct.mbPerSec));
  out.peakRssGrowthMax = ok.length ? Math.max(...ok.map((r) => r.peakRssGrowth)) : NaN;
  out.peakRssGrowthMedian = median(ok.map((r) => r.peakRssGrowth));
  out.failed = out.runs.length - ok.length;
  out.foreignCoresMax = Math.max(0, ...out.runs.map((r) => r.foreignCores ?? 0));
  return out;
}

/**
 * CPU-profile a fresh gateway under one workload and summarize self time, over the measured run
 * only: `hits` (4 KiB bearer hits, wrk), `disk` (1 MiB disk-tier hits, wrk over the disk keys,
 * memory a quarter of the working set), `cold` (distinct 4 KiB keys, 64 at a time, the client).
 */
async function profileGateway({ bins, root, origin, workload, obj, plan }) {
  const dir = path.join(root, `profile-${workload}`);
  mkdirSync(dir, { recursive: true });
  log(`profile: gateway with --cpu-prof under ${workload}`);
  const cache =
    workload === 'disk' ? { max_memory: opts.diskMemory, max_disk: '2GiB', disk_path: path.join(dir, 'cache') } : { max_memory: '512MiB' };
  const gp = await startGateway({
    name: `gateway-prof-${workload}`,
    label: `cachegate (profiled, ${workload})`,
    dir,
    core: SERVER_CORE,
    originPort: origin.port, logLevel: opts.gatewayLogLevel,
    cache,
    nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir],
  });
  let r;
  let tLoad;
  let tLoadEnd;
  try {
    if (workload === 'hits') {
      await warm(gp, objPath(obj.key), { sha: sha256(objectBytes(obj.key, obj.size)) });
      await runWrk({ bin: bins.wrk, core: LOAD_CORE, base: gp.base, path: objPath(obj.key), headers: gp.headers, connections: opts.connections, duration: opts.warmup });
      tLoad = performance.now();
      r = await runWrk({ bin: bins.wrk, core: LOAD_CORE, base: gp.base, path: objPath(obj.key), headers: gp.headers, connections: opts.connections, duration: opts.duration });
      tLoadEnd = performance.now();
    } else if (workload === 'disk') {
      const keys = Array.from({ length: opts.diskObjects }, (_, i) => plan.disk.key(i));
      for (let pass = 0; pass < 2; pass++) for (const k of keys) await fetchObject(gp, objPath(k));
      const wrkKeys = { prefix: `/${BUCKET}/disk/`, count: opts.diskObjects, suffix: '.bin' };
      await runWrk({ bin: bins.wrk, core: LOAD_CORE, base: gp.base, headers: gp.headers, connections: opts.connections, duration: opts.warmup, keys: wrkKeys });
      tLoad = performance.now();
      r = await runWrk({ bin: bins.wrk, core: LOAD_CORE, base: gp.base, headers: gp.headers, connections: opts.connections, duration: opts.duration, keys: wrkKeys });
      tLoadEnd = performance.now();
    } else {
      const warmPaths = Array.from({ length: plan.cold.warmCount }, (_, i) => objPath(plan.cold.warmKey(i)));
      await client({ mode: 'cold', base: gp.base, paths: warmPaths, headers: gp.headers, concurrency: opts.connections });
      const paths = Array.from({ length: opts.coldKeys }, (_, i) => objPath(plan.cold.key(opts.runs - 1, i)));
      tLoad = performance.now();
      r = await client({ mode: 'cold', base: gp.base, paths, headers: gp.headers, concurrency: opts.connections, cacheHeader: gp.cacheHeader, expectedBytes: plan.cold.size });
      tLoadEnd = performance.now();
    }
  } finally {
    await gp.proc.stop();
  }
  const tExit = performance.now();
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return { error: 'no .cpuprofile written' };
  const profile = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
  if (process.env.BENCH_KEEP_PROFILES) {
    mkdirSync(process.env.BENCH_KEEP_PROFILES, { recursive: true });
    writeFileSync(path.join(process.env.BENCH_KEEP_PROFILES, `${workload}.cpuprofile`), JSON.stringify(profile));
  }
  // Only the measured run: not startup, not the warm-up, not shutdown (the load's own start-up trimmed).
  const summary = analyzeProfile(profile, { rootDir: ROOT_DIR, top: 25, window: { fromEndUs: (tExit - tLoad - 300) * 1000, toEndUs: (tExit - tLoadEnd + 100) * 1000 } });
  log(`  ${Math.round(r.rps)} req/s under the profiler; top self time: ${summary.functions.slice(0, 6).map((f) => `${f.name} ${f.pct.toFixed(1)}%`).join(', ')}`);
  log(`  by area: ${summary.areas.slice(0, 6).map((a) => `${a.area} ${a.pct.toFixed(1)}%`).join(', ')}`);
  return { workload, rpsUnderProfiler: r.rps, ...summary };
}

main().then(
  (code) => shutdown(code),
  (err) => {
    console.error(`[bench] failed: ${err.stack ?? err}`);
    return shutdown(1);
  },
);
