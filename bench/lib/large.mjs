/**
 * The large-object workload (`BENCH_ONLY=large`): one 1 GiB object on the origin, read the way a
 * video player scrubs it, through the gateway (slices on disk, 64 MiB of memory), nginx with
 * `slice 8m` + proxy_cache, and Varnish (file storage). Each peer starts cold, with its own cache.
 *
 * For every peer, the same requests in the same order:
 *   0. process warm-up, on a second object (256 MiB) the measured one shares no byte with: the same
 *      cold seeks and ranges as 1 and 2 below. A gateway runs for days, so a seek into an uncached
 *      object meets a process whose code is compiled; the first requests a Node process ever
 *      serves also pay V8's compilation (nginx, in C, has none). The cold seeks of this phase are
 *      reported too, as "fresh process".
 *   1. cold seeks: `seeks` 1 MiB ranges at random offsets, one after another: time to first byte;
 *   2. warm-up: `warmRanges` more random 1 MiB ranges, one after another (they fill the cache);
 *   3. warm ranged req/s: 16 keep-alive clients asking those ranges (now cached) round-robin.
 * Store bytes are what the origin sent during 1 and 2 (client bytes: (seeks + warmRanges) MiB).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GIB, MIB } from './objects.mjs';
import { prng } from './prng.mjs';
import { startGateway, startNginx, startVarnish } from './peers.mjs';
import { stopChild } from './procs.mjs';

export const LARGE_KEY = 'large/scrub-1g.bin';
/** The object of the process warm-up (phase 0): other bytes, so the measured object stays cold. */
export const WARMUP_KEY = 'large/warmup-256m.bin';
const WARMUP_SIZE = 256 * MIB;

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

/** Wait until the origin has sent nothing for 0.5 s (fills landing, read-ahead, Varnish fetching the whole object); its counters then. */
async function originQuiet(origin) {
  let stats = await origin.stats();
  for (let i = 0; i < 60; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await origin.stats();
    if (now.bytes === stats.bytes) break;
    stats = now;
  }
  return stats;
}

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
  const upWarm = await client({ mode: 'put-s3', endpoint: `http://127.0.0.1:${origin.s3rverPort}`, bucket: 'bench', key: WARMUP_KEY, size: WARMUP_SIZE, partBytes: 8 * MIB, queueSize: 4 });
  if (upWarm.status !== 200) throw new Error(`large: warm-up object upload failed: ${upWarm.error}`);
  const warmupSeeks = randomRanges(seeks, WARMUP_SIZE, 21);
  const warmupRanges = randomRanges(warmRanges, WARMUP_SIZE, 22);

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
      // 0. The process warm-up on the other object; its cold seeks are the fresh process's.
      const fresh = await client({ mode: 'seek', base: peer.base, path: `/bench/${WARMUP_KEY}`, headers: peer.headers, ranges: warmupSeeks });
      const freshWarm = await client({ mode: 'seek', base: peer.base, path: `/bench/${WARMUP_KEY}`, headers: peer.headers, ranges: warmupRanges });
      await originQuiet(origin);
      await origin.reset();
      const waitsBefore = id === 'gateway' ? await budgetWaits(peer) : undefined;
      const cold = await client({ mode: 'seek', base: peer.base, path: urlPath, headers: peer.headers, ranges: seekRanges });
      const waitsAfter = id === 'gateway' ? await budgetWaits(peer) : undefined;
      const warmed = await client({ mode: 'seek', base: peer.base, path: urlPath, headers: peer.headers, ranges: warm });
      const stats = await originQuiet(origin);
      const rates = [];
      for (let r = 0; r < runs; r++) {
        rates.push(await client({ mode: 'ranged', base: peer.base, path: urlPath, headers: peer.headers, ranges: all, concurrency: 16, durationMs }));
      }
      const okAll = [fresh, freshWarm, cold, warmed].every((x) => x.ok === x.requests) && rates.every((x) => x.errors === 0);
      result.peers[id] = {
        label: peer.label,
        storeBytes: stats.bytes,
        storeRequests: stats.requests,
        coldTtfbMs: cold.ttfbMs,
        freshTtfbMs: fresh.ttfbMs,
        warmRps: median(rates.map((x) => x.rps)),
        warmMbPerSec: median(rates.map((x) => x.mbPerSec)),
        correct: okAll,
        statuses: { cold: cold.statuses, warm: warmed.statuses },
        // The gateway's fills that waited for max_fill_memory during the cold seeks (its /metrics).
        ...(waitsBefore && waitsAfter ? { coldBudgetWaits: { count: waitsAfter.count - waitsBefore.count, ms: (waitsAfter.sum - waitsBefore.sum) * 1000 } } : {}),
      };
      log(
        `large ${id}: store ${(stats.bytes / MIB).toFixed(0)} MiB in ${stats.requests} requests, cold-seek TTFB p50 ${cold.ttfbMs.p50.toFixed(1)} ms (max ${cold.ttfbMs.max.toFixed(1)}; fresh process p50 ${fresh.ttfbMs.p50.toFixed(1)}), warm ${Math.round(result.peers[id].warmRps)} req/s${result.peers[id].coldBudgetWaits ? `, ${result.peers[id].coldBudgetWaits.count} fill-budget waits in the cold seeks (${result.peers[id].coldBudgetWaits.ms.toFixed(0)} ms)` : ''}${okAll ? '' : ', ERRORS'}`,
      );
    } finally {
      await stopChild(peer.proc);
    }
  }
  return result;
}

/** The gateway's fill-budget waits so far, from its /metrics: how many, and their total seconds. */
async function budgetWaits(peer) {
  try {
    const text = await (await fetch(`${peer.base}/metrics`)).text();
    const sum = (name) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    return { count: sum('cachegate_fill_budget_wait_seconds_count'), sum: sum('cachegate_fill_budget_wait_seconds_sum') };
  } catch {
    return undefined;
  }
}

/** The markdown table of a large-object result, ratios against nginx-slice and Varnish. */
export function largeTable(r, date) {
  const g = r.peers.gateway;
  const rows = Object.entries(r.peers).filter(([, p]) => !p.error);
  const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : 'n/a');
  const lines = [
    `### Large object (1 GiB, random 1 MiB ranges) — ${date}`,
    '',
    `Each peer starts with an empty cache, and first serves the same seeks and ranges of another object (256 MiB), so its process is warm: the "fresh process" column is that phase's cold seeks. Then on the 1 GiB object, still cold: ${r.seeks} cold seeks one after another, then ${r.warmRanges} more ranges (client bytes: ${r.clientBytes / MIB} MiB), then 16 clients asking those ranges, now cached. Store bytes: what the origin sent during the seeks and the ranges of the 1 GiB object.`,
    '',
    '| peer | store bytes | store requests | cold-seek TTFB p50 | cold-seek TTFB max | fresh process: cold-seek TTFB p50 (max) | warm ranged req/s | correct |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map(
      ([, p]) =>
        `| ${p.label} | ${(p.storeBytes / MIB).toFixed(0)} MiB | ${p.storeRequests} | ${p.coldTtfbMs.p50.toFixed(1)} ms | ${p.coldTtfbMs.max.toFixed(1)} ms | ${p.freshTtfbMs ? `${p.freshTtfbMs.p50.toFixed(1)} ms (${p.freshTtfbMs.max.toFixed(1)} ms)` : 'n/a'} | ${Math.round(p.warmRps)} | ${p.correct ? 'yes' : 'NO'} |`,
    ),
    '',
  ];
  if (g && !g.error) {
    for (const [id, p] of rows) {
      if (id === 'gateway') continue;
      lines.push(
        `- gateway / ${p.label}: store bytes ${ratio(g.storeBytes, p.storeBytes)}×, cold-seek TTFB p50 ${ratio(g.coldTtfbMs.p50, p.coldTtfbMs.p50)}× (fresh process ${ratio(g.freshTtfbMs?.p50, p.freshTtfbMs?.p50)}×), warm req/s ${ratio(g.warmRps, p.warmRps)}× (target: store bytes ≤ 1, TTFB ≤ 1 against nginx-slice).`,
      );
    }
  }
  if (g?.coldBudgetWaits) {
    lines.push(
      `- The gateway's fills that waited for room in \`max_fill_memory\` during the ${r.seeks} cold seeks (its \`cachegate_fill_budget_wait_seconds\`): ${g.coldBudgetWaits.count}, ${g.coldBudgetWaits.ms.toFixed(0)} ms in all.`,
    );
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
