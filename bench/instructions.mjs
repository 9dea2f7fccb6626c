/**
 * Instructions per request, counted by valgrind's callgrind: a figure that does not move with the
 * host's speed, for changes too small for the timed bench to see on a shared machine (where the
 * same build's CPU per 4 KiB hit moves by 20 % from one minute to the next).
 *
 *   apt-get install -y valgrind
 *   node bench/instructions.mjs hits     # 4 KiB memory hits: the gateway and raw node:http
 *   node bench/instructions.mjs cold     # 4 KiB cold misses: the gateway and the miss floor
 *
 * Each server runs under callgrind with instrumentation off; it is warmed up (BENCH_INSTR_WARM
 * requests), then instrumentation is switched on for BENCH_INSTR_N requests (bench/client.mjs, 64
 * at a time, on the load core) and the counts are dumped. The origin and the client are not
 * counted. Per server, instructions per request in all and by where they went:
 *   - run: everything else (JS, builtins, Node's C++, libc);
 *   - compile: V8's optimizing compilers (should be near 0 once warm: if not, warm up longer);
 *   - gc: the collector;
 *   - slow-props: V8 defining properties in its runtime (map transitions and migrations), the
 *     path http/tick-shape.ts keeps Node's tick objects out of.
 *
 * Env: BENCH_INSTR_N (hits 10000, cold 2000), BENCH_INSTR_WARM (hits 20000, cold 6000),
 * BENCH_INSTR_MAINS (comma-separated gateway entry points to compare; default dist/main.js),
 * BENCH_PEER_NODE (the node the servers run on, as for `npm run bench`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { BUCKET, objectBytes } from './lib/objects.mjs';
import { DIST_MAIN, originS3, startGateway, startOrigin, startRaw, startRawProxy } from './lib/peers.mjs';
import { cleanupAll, makeTempDir, runCommand, which } from './lib/procs.mjs';

const CLIENT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'client.mjs');

const MODE = process.argv[2] ?? 'hits';
if (MODE !== 'hits' && MODE !== 'cold') {
  console.error('usage: node bench/instructions.mjs [hits|cold]');
  process.exit(2);
}
for (const tool of ['valgrind', 'callgrind_control', 'callgrind_annotate']) {
  if (!which(tool)) {
    console.error(`bench/instructions: ${tool} is missing (apt-get install -y valgrind)`);
    process.exit(2);
  }
}
const N = Number(process.env.BENCH_INSTR_N ?? (MODE === 'hits' ? 10_000 : 2_000));
const WARM = Number(process.env.BENCH_INSTR_WARM ?? (MODE === 'hits' ? 20_000 : 6_000));
const MAINS = (process.env.BENCH_INSTR_MAINS ?? DIST_MAIN).split(',').filter(Boolean);
const SERVER_CORE = 0;
const LOAD_CORE = 1;
/** bench/client.mjs takes its paths as one argument: this many per run. */
const CHUNK = 5_000;
const HOT_KEY = 'hot/4k.bin';
const SIZE = 4096;

const root = makeTempDir('cachegate-instr-');
const outDir = path.join(root, 'callgrind');
const wrap = {
  cmd: 'valgrind',
  args: ['--tool=callgrind', '--instr-atstart=no', '--dump-line=no', `--callgrind-out-file=${outDir}/cg.%p`, '--smc-check=all-non-file'],
  timeoutMs: 180_000,
};
mkdirSync(outDir, { recursive: true });

const client = async (spec) => {
  const r = await runCommand(process.execPath, [CLIENT, JSON.stringify(spec)], { core: LOAD_CORE, timeoutMs: 1_800_000 });
  const line = r.stdout.trim().split('\n').pop();
  if (!line) throw new Error(`client gave no result: ${r.stderr.slice(-500)}`);
  return JSON.parse(line);
};

try {
  const origin = await startOrigin({ dir: root, core: SERVER_CORE });
  const s3 = await originS3(origin);
  const put = (key) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: objectBytes(key, SIZE), ContentType: 'application/octet-stream' }));
  let nextKey = 0;
  /** Paths for `n` requests: the hot object `n` times, or `n` fresh objects, put on the origin first. */
  const paths = async (n) => {
    if (MODE === 'hits') return Array(n).fill(`/${BUCKET}/${HOT_KEY}`);
    const keys = Array.from({ length: n }, () => `cold/i${nextKey++}.bin`);
    for (let i = 0; i < keys.length; i += 32) await Promise.all(keys.slice(i, i + 32).map(put));
    return keys.map((k) => `/${BUCKET}/${k}`);
  };
  await put(HOT_KEY);

  const peers = [];
  for (const [i, main] of MAINS.entries()) {
    peers.push(
      await startGateway({ name: `gateway-${i}`, label: `cachegate ${path.relative(process.cwd(), main) || main}`, dir: path.join(root, `gw${i}`), core: SERVER_CORE, originPort: origin.port, cache: { max_memory: '512MiB' }, main, wrap }),
    );
  }
  const ceiling = MODE === 'hits' ? await startRaw({ core: SERVER_CORE, objects: [{ key: HOT_KEY, size: SIZE }], wrap }) : await startRawProxy({ core: SERVER_CORE, originPort: origin.port, wrap });
  peers.push(ceiling);

  /** The paths of `n` requests in client-sized batches (cold objects are put before anything is counted). */
  const batches = async (n) => {
    const out = [];
    for (let done = 0; done < n; done += CHUNK) out.push(await paths(Math.min(CHUNK, n - done)));
    return out;
  };
  const run = async (p, list) => {
    let ok = 0;
    for (const b of list) ok += (await client({ mode: 'cold', base: p.base, paths: b, headers: p.headers ?? {}, concurrency: 64 })).ok;
    return ok;
  };
  console.log(`instructions per request, ${MODE === 'hits' ? '4 KiB memory hits' : '4 KiB cold misses'}: ${WARM} to warm up, ${N} counted`);
  for (const p of peers) {
    await run(p, await batches(WARM));
    const counted = await batches(N);
    const pid = String(p.proc.pid);
    execFileSync('callgrind_control', ['-z', pid], { stdio: 'ignore' });
    execFileSync('callgrind_control', ['-i', 'on', pid], { stdio: 'ignore' });
    const ok = await run(p, counted);
    execFileSync('callgrind_control', ['-i', 'off', pid], { stdio: 'ignore' });
    execFileSync('callgrind_control', ['-d', pid], { stdio: 'ignore' });
    const dump = readdirSync(outDir).filter((f) => f.startsWith(`cg.${pid}.`)).sort().pop();
    const b = buckets(path.join(outDir, dump));
    const per = (x) => Math.round(x / N).toLocaleString('en-US');
    console.log(
      `${p.label.padEnd(40)} ${per(b.total).padStart(9)} in all: run ${per(b.run)}, compile ${per(b.compile)}, gc ${per(b.gc)}, slow-props ${per(b.slowProps)}${ok === N ? '' : `  (${N - ok} requests failed)`}`,
    );
  }
} finally {
  await cleanupAll();
}

/** Instruction counts of one callgrind dump, by bucket (see the header). */
function buckets(file) {
  const out = execFileSync('callgrind_annotate', ['--threshold=100', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const b = { total: 0, run: 0, compile: 0, gc: 0, slowProps: 0 };
  let listing = false;
  for (const line of out.split('\n')) {
    if (line.includes('file:function')) {
      listing = true;
      continue;
    }
    const m = listing && /^\s*([\d,]+)\s+\([^)]*\)\s+(.*)$/.exec(line);
    if (!m) continue;
    const n = Number(m[1].replaceAll(',', ''));
    const fn = m[2];
    b.total += n;
    if (/compiler::|turboshaft|maglev|Compile/i.test(fn)) b.compile += n;
    else if (/DefineKeyedOwnPropertyInLiteral|MigrateToMap|LookupIterator|Transition|UpdateDescriptorForValue|AddDataProperty|DefineOwnPropertyIgnoreAttributes/.test(fn)) b.slowProps += n;
    else if (/Mark|Sweep|Scaveng|heap::|Heap::|Evacuat|ConcurrentMarking|MemoryChunk|ArrayBufferSweeper|BodyDescriptor|RememberedSet/.test(fn)) b.gc += n;
    else b.run += n;
  }
  return b;
}
