/**
 * Running wrk, pinned to the load core, and reading the one JSON line bench/wrk/report.lua prints.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { groupCpuMs, withLoadMonitor } from './cpu.mjs';
import { runCommand } from './procs.mjs';

const WRK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'wrk');

/**
 * One wrk run. `path` may carry a query (a signed link). `keys` = {prefix, count, suffix} cycles
 * through many keys with keys.lua instead of one fixed path.
 */
export async function runWrk({ bin, core, base, path: urlPath, headers = {}, connections, duration, keys, serverPgid }) {
  const script = keys ? 'keys.lua' : 'report.lua';
  const args = ['-t1', `-c${connections}`, `-d${duration}`, '--timeout', '10s', '-s', path.join(WRK_DIR, script)];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(keys ? base : base + urlPath);
  if (keys) args.push('--', keys.prefix, String(keys.count), keys.suffix ?? '');
  const durationSec = parseDuration(duration);
  // Watch the machine from 1 s in to 0.5 s before the end: wrk and the server are both running.
  const cpuBefore = groupCpuMs(serverPgid);
  const r = await withLoadMonitor(() => runCommand(bin, args, { core, timeoutMs: (durationSec + 30) * 1000 }), {
    skipMs: Math.min(1000, durationSec * 200),
    windowMs: Math.max(200, durationSec * 1000 - Math.min(1000, durationSec * 200) - 500),
  });
  const cpuAfter = groupCpuMs(serverPgid);
  const line = r.stdout.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  if (!line) throw new Error(`wrk gave no result (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-500)}`);
  const s = JSON.parse(line.slice('BENCH_JSON '.length));
  const seconds = s.duration_us / 1e6;
  const errors = Object.values(s.errors).reduce((a, b) => a + b, 0);
  return {
    rps: s.requests / seconds,
    mbPerSec: s.bytes / 1e6 / seconds,
    requests: s.requests,
    bytes: s.bytes,
    seconds,
    errors,
    errorDetail: s.errors,
    foreignCores: r.foreignCores,
    stealCores: r.stealCores,
    // The server's own CPU per request (cpu.mjs groupCpuMs), when its process group is known.
    serverCpuUsPerReq: cpuBefore !== undefined && cpuAfter !== undefined && s.requests ? ((cpuAfter - cpuBefore) * 1000) / s.requests : undefined,
    latencyMs: {
      p50: s.latency_us.p50 / 1000,
      p90: s.latency_us.p90 / 1000,
      p99: s.latency_us.p99 / 1000,
      max: s.latency_us.max / 1000,
    },
  };
}

/** wrk's duration syntax: 10s, 1m, 500ms is not accepted by wrk; plain numbers are seconds. */
export function parseDuration(d) {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(String(d).trim());
  if (!m) throw new Error(`bad duration ${d}: use e.g. 10s or 1m`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] ?? 's'];
}
