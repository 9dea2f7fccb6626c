/**
 * The large-object workload (`BENCH_ONLY=large`): one 1 GiB object on the origin, read the way a
 * video player scrubs it, through the gateway (slices on disk, 64 MiB of memory), nginx with
 * `slice 8m` + proxy_cache, and Varnish (file storage). Each peer starts cold, with its own cache.
 *
 * For every peer, the same requests in the same order:
 *   1. cold seeks: `seeks` 1 MiB ranges at random offsets, one after another: time to first byte;
 *   2. warm-up: `warmRanges` more random 1 MiB ranges, one after another (they fill the cache);
 *   3. warm ranged req/s: 16 keep-alive clients asking those ranges (now cached) round-robin.
 * Store bytes are what the origin sent during 1 and 2 (client bytes: (seeks + warmRanges) MiB).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GIB, MIB } from './objects.mjs';
import { startGateway, startNginx, startVarnish } from './peers.mjs';
import { stopChild } from './procs.mjs';

export const LARGE_KEY = 'large/scrub-1g.bin';

function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomRanges(n, size, seed) {
  const rand = prng(seed);
  return Array.from({ length: n }, () => {
    const start = Math.floor(rand() * (size - MIB));
    return [start, start + MIB - 1];
  });
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

/** Run the workload; `client(spec)` runs bench/client.mjs on the load core. */
export async function largeObject({ origin, bins, root, core, client, log, quick, runs }) {
  const size = GIB;
  const seeks = quick ? 4 : 8;
  const warmRanges = quick ? 16 : 56;
  const durationMs = quick ? 3000 : 5000;
  const seekRanges = randomRanges(seeks, size, 11);
  const warm = randomRanges(warmRanges, size, 12);
  const all = [...seekRanges, ...warm];

  log(`large: uploading a ${size / GIB} GiB object to the origin`);
  const up = await client({ mode: 'put-s3', endpoint: `http://127.0.0.1:${origin.s3rverPort}`, bucket: 'bench', key: LARGE_KEY, size, partBytes: 8 * MIB, queueSize: 4 });
  if (up.status !== 200) throw new Error(`large: upload failed: ${up.error}`);

  const makers = [
    ['gateway', () => startGateway({ name: 'gateway-large', label: 'cachegate (slices, disk)', dir: path.join(root, 'gateway-large'), core, originPort: origin.port, cache: { max_memory: '64MiB', max_disk: '2GiB', disk_path: path.join(root, 'gateway-large', 'cache') } })],
    ...(bins.nginx ? [['nginx-slice', () => startNginx({ bin: bins.nginx, dir: path.join(root, 'nginx-slice'), core, originPort: origin.port, slice: '8m' })]] : []),
    ...(bins.varnishd ? [['varnish', () => startVarnish({ bin: bins.varnishd, dir: path.join(root, 'varnish-large'), core, originPort: origin.port, storage: `file,${path.join(root, 'varnish-large', 'storage.bin')},2G` })]] : []),
  ];
  const result = { size, seeks, warmRanges, clientBytes: all.length * MIB, peers: {} };
  for (const [id, make] of makers) {
    let peer;
    try {
      peer = await make();
    } catch (err) {
      log(`large: ${id} did not start: ${err.message}`);
      result.peers[id] = { error: err.message };
      continue;
    }
    try {
      const urlPath = `/bench/${LARGE_KEY}`;
      await origin.reset();
      const cold = await client({ mode: 'seek', base: peer.base, path: urlPath, headers: peer.headers, ranges: seekRanges });
      const warmed = await client({ mode: 'seek', base: peer.base, path: urlPath, headers: peer.headers, ranges: warm });
      // Fills may still be landing (read-ahead, Varnish fetching the whole object): let them.
      let stats = await origin.stats();
      for (let i = 0; i < 60; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const now = await origin.stats();
        if (now.bytes === stats.bytes) break;
        stats = now;
      }
      const rates = [];
      for (let r = 0; r < runs; r++) {
        rates.push(await client({ mode: 'ranged', base: peer.base, path: urlPath, headers: peer.headers, ranges: all, concurrency: 16, durationMs }));
      }
      const okAll = cold.ok === cold.requests && warmed.ok === warmed.requests && rates.every((x) => x.errors === 0);
      result.peers[id] = {
        label: peer.label,
        storeBytes: stats.bytes,
        storeRequests: stats.requests,
        coldTtfbMs: cold.ttfbMs,
        firstSeekTtfbMs: cold.ttfbMs.max,
        warmRps: median(rates.map((x) => x.rps)),
        warmMbPerSec: median(rates.map((x) => x.mbPerSec)),
        correct: okAll,
        statuses: { cold: cold.statuses, warm: warmed.statuses },
      };
      log(
        `large ${id}: store ${(stats.bytes / MIB).toFixed(0)} MiB in ${stats.requests} requests, cold-seek TTFB p50 ${cold.ttfbMs.p50.toFixed(1)} ms (max ${cold.ttfbMs.max.toFixed(1)}), warm ${Math.round(result.peers[id].warmRps)} req/s${okAll ? '' : ', ERRORS'}`,
      );
    } finally {
      await stopChild(peer.proc);
    }
  }
  return result;
}

/** The markdown table of a large-object result, ratios against nginx-slice and Varnish. */
export function largeTable(r, date) {
  const g = r.peers.gateway;
  const rows = Object.entries(r.peers).filter(([, p]) => !p.error);
  const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : 'n/a');
  const lines = [
    `### Large object (1 GiB, random 1 MiB ranges) — ${date}`,
    '',
    `Each peer starts cold: ${r.seeks} cold seeks one after another, then ${r.warmRanges} more ranges (client bytes: ${r.clientBytes / MIB} MiB), then 16 clients asking those ranges, now cached. Store bytes: what the origin sent during the seeks and the warm-up.`,
    '',
    '| peer | store bytes | store requests | cold-seek TTFB p50 | cold-seek TTFB max | warm ranged req/s | correct |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map(
      ([, p]) =>
        `| ${p.label} | ${(p.storeBytes / MIB).toFixed(0)} MiB | ${p.storeRequests} | ${p.coldTtfbMs.p50.toFixed(1)} ms | ${p.coldTtfbMs.max.toFixed(1)} ms | ${Math.round(p.warmRps)} | ${p.correct ? 'yes' : 'NO'} |`,
    ),
    '',
  ];
  if (g && !g.error) {
    for (const [id, p] of rows) {
      if (id === 'gateway') continue;
      lines.push(
        `- gateway / ${p.label}: store bytes ${ratio(g.storeBytes, p.storeBytes)}×, cold-seek TTFB p50 ${ratio(g.coldTtfbMs.p50, p.coldTtfbMs.p50)}×, warm req/s ${ratio(g.warmRps, p.warmRps)}× (target: store bytes ≤ 1, TTFB ≤ 1 against nginx-slice).`,
      );
    }
  }
  for (const [id, p] of Object.entries(r.peers)) if (p.error) lines.push(`- ${id}: did not run (${p.error})`);
  return lines.join('\n');
}

const START = '<!-- large-object:start -->';
const END = '<!-- large-object:end -->';

/** Put the table in BENCHMARKS.md between its markers (added before the analysis when absent). */
export function updateLargeSection(file, markdown) {
  const doc = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const block = `${START}\n${markdown}\n${END}`;
  let out;
  if (doc.includes(START) && doc.includes(END)) out = doc.slice(0, doc.indexOf(START)) + block + doc.slice(doc.indexOf(END) + END.length);
  else if (doc.includes('\n## Analysis')) out = doc.replace('\n## Analysis', `\n${block}\n\n## Analysis`);
  else out = `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, out);
}
